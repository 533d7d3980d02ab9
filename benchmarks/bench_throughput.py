"""Issue 13: `moa bench` throughput with instant backends, and the cost of the test sandbox.

(a) Items per second: the real `moa bench FILE.jsonl` against tests/fakeserver.py (its own
    process, replies with no delay), a mix of three references and an aggregator, so each item
    is four answers (the mix and each reference alone) and seven model calls. --concurrency 16
    against 1 in the same run.
(b) Sandbox overhead per HumanEval item: each of the 164 canonical solutions run through the
    sandbox (a fresh process with limits, as `moa bench humaneval` grades), against the same
    program exec'd in this process. Every canonical solution must pass in the sandbox.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import Server, machine, median, moa_env, run_moa, table, update_section  # noqa: E402

ITEMS = 100
RUNS = 3
CONFIG = '[mixes.trio]\nlayers = [["openai:r1", "openai:r2", "openai:r3"]]\naggregator = "openai:agg"\n'


def bench_run(env: dict, prompts: Path, out: Path, concurrency: int) -> float:
    *_, wall, _ = run_moa(["bench", str(prompts), "--mix", "trio", "--concurrency", str(concurrency),
                           "--out", str(out)], env)
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == ITEMS * 4, len(lines)
    return wall


def throughput() -> list[list]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Server({"*": {"reply": "ok " * 20}}) as server:
        home = Path(tmp, "home")
        home.mkdir()
        (home / "config.toml").write_text(CONFIG)
        prompts = Path(tmp, "prompts.jsonl")
        prompts.write_text("".join(json.dumps({"instruction": f"question number {i}"}) + "\n" for i in range(ITEMS)))
        env = moa_env(server.url, str(home))
        walls = {1: [], 16: []}
        for run in range(RUNS + 1):  # the first run warms caches and is not counted
            for concurrency in (16, 1):
                wall = bench_run(env, prompts, Path(tmp, f"out-{concurrency}-{run}"), concurrency)
                if run:
                    walls[concurrency].append(wall)
        for concurrency in (16, 1):
            wall = median(walls[concurrency])
            rows.append([concurrency, f"{wall:.2f} s", f"{ITEMS / wall:.1f}", f"{ITEMS * 4 / wall:.1f}",
                         f"{median(walls[1]) / wall:.2f}x"])
    return rows


def sandbox_overhead() -> tuple[list[list], int]:
    from moa_cli.bench.extract import program_for
    from moa_cli.bench.sandbox import run_program
    from moa_cli.bench.suites import humaneval_data_file

    import gzip

    with gzip.open(humaneval_data_file(), "rt") as handle:
        problems = [json.loads(line) for line in handle]
    programs = [program_for(p, p["canonical_solution"]) for p in problems]

    async def sandboxed() -> tuple[list[float], int]:
        times, passed = [], 0
        for program in programs:  # one at a time: the per-item cost, not the machine's parallelism
            t0 = time.perf_counter()
            run = await run_program(program)
            times.append(time.perf_counter() - t0)
            passed += run.passed
        return times, passed

    sandbox_times, passed = asyncio.run(sandboxed())
    direct_times = []
    for program in programs:
        t0 = time.perf_counter()
        exec(compile(program, "<canonical>", "exec"), {"__name__": "__bench__"})
        direct_times.append(time.perf_counter() - t0)
    s, d = median(sandbox_times), median(direct_times)
    rows = [["in the sandbox (fresh process, limits, guards)", f"{s * 1000:.1f} ms", f"{sum(sandbox_times):.1f} s"],
            ["exec'd in this process", f"{d * 1000:.2f} ms", f"{sum(direct_times):.2f} s"],
            ["overhead per item", f"{(s - d) * 1000:.1f} ms", f"{sum(sandbox_times) - sum(direct_times):.1f} s"]]
    return rows, passed


def main() -> None:
    t_rows = throughput()
    s_rows, passed = sandbox_overhead()
    body = f"""## Issue 13: `moa bench` throughput and sandbox overhead (`benchmarks/bench_throughput.py`)

Setup: {machine()}.

(a) `moa bench` on {ITEMS} instructions, mix `trio` (3 references + aggregator, all answering
instantly from the fake server in its own process), so {ITEMS * 4} answers and {ITEMS * 7} model
calls per run; whole process wall time including start-up and the report (chart included),
median of {RUNS} runs after a warm-up.

{table(["--concurrency", "wall", "items/s", "answers/s", "speed-up vs 1"], t_rows)}

(b) Grading the 164 HumanEval canonical solutions one at a time ({passed}/164 passed in the
sandbox); medians per item.

{table(["how the tests ran", "median per item", "all 164"], s_rows)}
"""
    print(body)
    update_section("bench", body)


if __name__ == "__main__":
    main()
