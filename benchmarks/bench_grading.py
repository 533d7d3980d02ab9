"""Issue 18: the cost of grading HumanEval answers under bubblewrap, against the Python guard.

(a) Grading throughput: the 164 canonical solutions graded by moa_cli.bench.sandbox.grade at
    --concurrency 1, 2 and 8 (programs in flight): under bwrap in warm sandboxes (as `moa bench`
    runs them, `sandbox.sandboxes(n)`), under bwrap with a new sandbox per program (the first
    design), and under the guard; items/s and the CPU one grading costs. CPU is read from a
    cpuacct cgroup holding this script and everything it starts (bwrap reaps its sandboxes
    inside their own PID namespace, so the usual child accounting never sees them); where no
    such cgroup can be made (not root, no cgroup v1 cpuacct) it says n/a.
(b) bwrap's start-up cost per program: `bwrap <moa's flags> /bin/true` against `/bin/true`, and
    the harness (`python -I -S`, an empty program) inside bwrap against outside; medians.
(c) End to end: `moa bench humaneval --limit 164` with a 2-reference mix whose models answer
    every problem with its canonical solution at once (820 calls, 492 gradings), this tree
    against an older revision's code (unpacked from git into a temporary directory), the two
    interleaved run by run, median of RUNS runs each.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import MOA, ROOT, Server, machine, median, moa_env, table, update_section  # noqa: E402

from moa_cli.bench import sandbox  # noqa: E402
from moa_cli.bench.suites import humaneval_data_file  # noqa: E402

PROBLEMS = [json.loads(line) for line in gzip.open(humaneval_data_file(), "rt", encoding="utf-8")]
CONFIG = '[mixes.duo]\nlayers = [["openai:r1", "openai:r2"]]\naggregator = "openai:agg"\n'
STARTS = 30


class CpuMeter:
    """CPU seconds used by this process and everything it starts, from a cpuacct cgroup it moves
    itself into (root and cgroup v1 only); `seconds()` is None where none could be made."""

    ROOT = Path("/sys/fs/cgroup/cpuacct")

    def __init__(self):
        self.group = self.ROOT / f"moa-bench-cpu-{os.getpid()}"
        try:
            self.group.mkdir(exist_ok=True)
            (self.group / "cgroup.procs").write_text(str(os.getpid()))
        except OSError:
            self.group = None

    def seconds(self) -> float | None:
        if self.group is None:
            return None
        return int((self.group / "cpuacct.usage").read_text()) / 1e9

    def close(self) -> None:
        if self.group is not None:
            (self.ROOT / "cgroup.procs").write_text(str(os.getpid()))
            for _ in range(50):  # the sandboxes' last processes leave it as they are reaped
                try:
                    self.group.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


METER = CpuMeter()
# name -> (isolation, whether the programs run in warm sandboxes)
MODES = {"bwrap, warm sandboxes": ("bwrap", True), "bwrap, a sandbox per program": ("bwrap", False),
         "guard": ("guard", False)}


def grading_pass(mode: str, concurrency: int) -> tuple[float, float | None, int]:
    """(items/s, CPU ms per grading or None, passed) for the 164 canonical solutions."""
    kind, warm = MODES[mode]

    async def run_all():
        limit = asyncio.Semaphore(concurrency)

        async def one(problem):
            async with limit:
                return await sandbox.grade(problem, problem["canonical_solution"], isolation_kind=kind)

        if warm:
            async with sandbox.sandboxes(concurrency):
                return await asyncio.gather(*(one(p) for p in PROBLEMS))
        return await asyncio.gather(*(one(p) for p in PROBLEMS))

    cpu, start = METER.seconds(), time.perf_counter()
    runs = asyncio.run(run_all())
    wall, after = time.perf_counter() - start, METER.seconds()
    cpu_ms = None if cpu is None else (after - cpu) * 1000 / len(PROBLEMS)
    return len(PROBLEMS) / wall, cpu_ms, sum(r.passed for r in runs)


def throughput() -> list[list]:
    rows = []
    for mode in MODES:
        for concurrency in (1, 2, 8):
            rate, cpu_ms, passed = grading_pass(mode, concurrency)
            rows.append([mode, concurrency, f"{rate:.1f}", "n/a" if cpu_ms is None else f"{cpu_ms:.1f} ms",
                         f"{passed}/164"])
    return rows


def timed(command: list[str], stdin: bytes = b"") -> float:
    start = time.perf_counter()
    subprocess.run(command, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def startup() -> list[list]:
    prefix = list(sandbox.bwrap_prefix())
    python = [os.path.realpath(sys.executable), "-I", "-S", "-B", "-c", "pass"]
    pairs = {"/bin/true": (["/bin/true"], [*prefix, "/bin/true"]),
             "python -I -S (empty program)": (python, [*prefix, *python])}
    rows = []
    for name, (bare, boxed) in pairs.items():
        bare_s = median([timed(bare) for _ in range(STARTS)])
        boxed_s = median([timed(boxed) for _ in range(STARTS)])
        rows.append([name, f"{bare_s * 1000:.1f} ms", f"{boxed_s * 1000:.1f} ms", f"{(boxed_s - bare_s) * 1000:.1f} ms"])
    return rows


RUNS = 3
CONCURRENCIES = (1, 4, 16, 64)


def end_to_end(baseline: str) -> list[list]:
    replies = {p["prompt"][-300:]: f"```python\n{p['prompt']}{p['canonical_solution']}```" for p in PROBLEMS}
    walls: dict[tuple[str, int], list[float]] = {}
    outcome: dict[tuple[str, int], tuple] = {}
    with tempfile.TemporaryDirectory() as tmp, Server({"*": {"replies": replies}}) as server:
        home = Path(tmp, "home")
        home.mkdir()
        (home / "config.toml").write_text(CONFIG)
        old = Path(tmp, "old")
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", baseline, "moa_cli"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        env = moa_env(server.url, str(home))
        trees = {"this tree": ([MOA], env, tmp), baseline: ([sys.executable, "-m", "moa_cli"], {**env, "PYTHONPATH": str(old)}, old)}
        for run in range(RUNS):
            for concurrency in CONCURRENCIES:
                for name, (command, run_env, cwd) in trees.items():  # interleaved: both see the same load
                    out = Path(tmp, f"out-{run}-{concurrency}-{name.replace(' ', '-')}")
                    start = time.perf_counter()
                    done = subprocess.run([*command, "bench", "humaneval", "--mix", "duo", "--limit", "164",
                                           "--concurrency", str(concurrency), "--out", str(out)],
                                          env=run_env, cwd=cwd, capture_output=True, text=True)
                    walls.setdefault((name, concurrency), []).append(time.perf_counter() - start)
                    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else {}
                    outcome[(name, concurrency)] = (done.returncode, [row.get("passed") for row in report.get("systems", [])])
    rows = []
    for name in trees:
        for concurrency in CONCURRENCIES:
            wall = median(walls[(name, concurrency)])
            old_wall = median(walls[(baseline, concurrency)])
            rows.append([name, concurrency, f"{wall:.1f} s", f"{164 / wall:.1f}", f"{old_wall / wall:.2f}x",
                         *outcome[(name, concurrency)]])
    return rows


E2E_HEADER = ["code", "--concurrency", "wall (median)", "items/s", "vs the old code", "exit", "passed"]


BEFORE = "7a0e7c3"  # the tree before issue 18's work: the old Python guard, a process per program


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    loads = [load()]
    g_rows = throughput()
    s_rows = startup()
    loads.append(load())
    e_rows = end_to_end(BEFORE)
    loads.append(load())
    METER.close()
    body = f"""## Issue 18: grading under bubblewrap (`benchmarks/bench_grading.py`)

Setup: {machine()}. Load averages (1/5/15 min) at the start, after (a)-(b) and at the end:
{", ".join(loads)}.

(a) Grading the 164 canonical HumanEval solutions (each one `prompt + completion + test +
check()`), all 164 in flight through a semaphore of `--concurrency`. "warm sandboxes" is how
`moa bench` grades: `--concurrency` warm bubblewrap sandboxes, each program in a fresh fork of the
harness inside one, the sandbox made as new after it. "a sandbox per program" starts bwrap and
a Python for every program (the first bubblewrap design). CPU per grading: everything this
script and its children used during the pass (a cpuacct cgroup), divided by 164.

{table(["isolation", "--concurrency", "items/s", "CPU per grading", "passed"], g_rows)}

(b) bwrap's start-up cost per program (median of {STARTS}): user, PID, network, IPC, UTS and
mount namespaces, read-only binds, a new /proc, three tmpfs.

{table(["program", "bare", "under bwrap", "bwrap's cost"], s_rows)}

(c) End to end: `moa bench humaneval --limit 164 --mix duo` (2 references + aggregator, every
model answering instantly with the canonical solution, streamed a word per chunk: 820 calls,
492 gradings), whole-process wall time, this tree against the tree before issue 18
({BEFORE}), interleaved run by run, median of {RUNS} runs each. `passed` is per system (mix,
r1, r2).

{table(E2E_HEADER, e_rows)}
"""
    print(body)
    update_section("grading", body)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--end-to-end-against"]:  # only (c), against any revision: print the rows
        print(table(E2E_HEADER, end_to_end(sys.argv[2])))
        METER.close()
    else:
        main()
