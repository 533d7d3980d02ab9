"""Issue 18: the cost of grading HumanEval answers under bubblewrap, against the Python guard.

(a) Grading throughput: the 164 canonical solutions graded by moa_cli.bench.sandbox.grade, under
    bwrap and under the guard, --concurrency 1, 2 and 8 (programs in flight); items/s and the
    CPU time one grading costs (children's user + system time, over the whole pass).
(b) bwrap's start-up cost per program: `bwrap <moa's flags> /bin/true` against `/bin/true`, and
    the harness (`python -I -S`, an empty program) inside bwrap against outside; medians.
(c) End to end: `moa bench humaneval --limit 164` with a 2-reference mix whose models answer
    every problem with its canonical solution at once (820 calls, 492 gradings), this tree
    against `main`'s code (unpacked from git into a temporary directory) in the same run.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import resource
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


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def grading_pass(kind: str, concurrency: int) -> tuple[float, float, int]:
    """(items/s, CPU ms per grading, passed) for the 164 canonical solutions."""
    async def run_all():
        limit = asyncio.Semaphore(concurrency)

        async def one(problem):
            async with limit:
                return await sandbox.grade(problem, problem["canonical_solution"], isolation_kind=kind)

        return await asyncio.gather(*(one(p) for p in PROBLEMS))

    cpu, start = children_cpu(), time.perf_counter()
    runs = asyncio.run(run_all())
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu
    return len(PROBLEMS) / wall, cpu * 1000 / len(PROBLEMS), sum(r.passed for r in runs)


def throughput() -> list[list]:
    rows = []
    for kind in ("bwrap", "guard"):
        for concurrency in (1, 2, 8):
            rate, cpu_ms, passed = grading_pass(kind, concurrency)
            # bwrap's inner processes are reaped inside its PID namespace: RUSAGE_CHILDREN never sees them.
            cpu = f"{cpu_ms:.1f} ms" if kind == "guard" else "n/a"
            rows.append([kind, concurrency, f"{rate:.1f}", cpu, f"{passed}/164"])
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


def end_to_end(baseline: str = "main") -> list[list]:
    replies = {p["prompt"][-300:]: f"```python\n{p['prompt']}{p['canonical_solution']}```" for p in PROBLEMS}
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Server({"*": {"replies": replies}}) as server:
        home = Path(tmp, "home")
        home.mkdir()
        (home / "config.toml").write_text(CONFIG)
        old = Path(tmp, "main")
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", baseline, "moa_cli"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        env = moa_env(server.url, str(home))
        trees = {"this tree": ([MOA], env), baseline: ([sys.executable, "-m", "moa_cli"], {**env, "PYTHONPATH": str(old)})}
        for name, (command, run_env) in trees.items():
            for concurrency in (1, 4, 16):
                out = Path(tmp, f"out-{name.replace(' ', '-')}-{concurrency}")
                start = time.perf_counter()
                done = subprocess.run([*command, "bench", "humaneval", "--mix", "duo", "--limit", "164",
                                       "--concurrency", str(concurrency), "--out", str(out)],
                                      env=run_env, cwd=old if name == baseline else tmp, capture_output=True, text=True)
                wall = time.perf_counter() - start
                report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else {}
                passed = [row.get("passed") for row in report.get("systems", [])]
                rows.append([name, concurrency, f"{wall:.1f} s", f"{164 / wall:.1f}", done.returncode, passed])
    return rows


def main() -> None:
    g_rows = throughput()
    s_rows = startup()
    e_rows = end_to_end()
    body = f"""## Issue 18: grading under bubblewrap (`benchmarks/bench_grading.py`)

Setup: {machine()}. The 2 cores were shared with other developers' work (test suites and
benchmarks of up to 8 people, load average around 15 during these runs), so absolute figures
are noisy and low; compare rows measured in the same run.

(a) Grading the 164 canonical HumanEval solutions (each one `prompt + completion + test +
check()` in its own sandbox), all 164 in flight through a semaphore of `--concurrency`.
CPU per grading: the children's user + system time over the pass, divided by 164 (guard only:
under bwrap the programs are reaped inside its PID namespace, out of this process's accounting).

{table(["isolation", "--concurrency", "items/s", "CPU per grading", "passed"], g_rows)}

(b) bwrap's start-up cost per program (median of {STARTS}): user, PID, network, IPC, UTS and
mount namespaces, read-only binds, a new /proc, two tmpfs.

{table(["program", "bare", "under bwrap", "bwrap's cost"], s_rows)}

(c) End to end: `moa bench humaneval --limit 164 --mix duo` (2 references + aggregator, every
model answering instantly with the canonical solution: 820 calls, 492 gradings), whole process
wall time, this branch against `main`'s code in the same run (one run each). `passed` is per
system (mix, r1, r2).

{table(["code", "--concurrency", "wall", "items/s", "exit", "passed"], e_rows)}
"""
    print(body)
    update_section("grading", body)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--end-to-end-against"]:  # only (c), against any revision: print the rows
        print(table(["code", "--concurrency", "wall", "items/s", "exit", "passed"], end_to_end(sys.argv[2])))
    else:
        main()
