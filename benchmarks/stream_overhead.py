"""moa's CPU per streamed chunk: the path every chunk of every answer takes, in one process.

Setup: turns of a 2-reference mix plus an aggregator (openai provider) run in-process through
`TurnService` (store=None, no listeners: as `moa bench` runs them), 4 turns in flight, against
the fake server in its own process, which streams one word per server-sent event with no delay.
Every answer is the same HumanEval-like code block (indented code splits into many
whitespace-only chunks, as real tokens do). The API key is registered as a secret, so every
chunk goes through the stream redactor as in `moa bench`.

Measured: the worker process's own CPU time (`time.process_time()`, the fake server excluded)
over all calls after one warm-up turn, divided by the chunks streamed. This tree and `main`
(`git archive main moa_cli` into a temporary directory; `--against REV` for another revision)
run as separate worker processes, interleaved, several rounds each; medians and their ratio.

    python benchmarks/stream_overhead.py            # measure and rewrite the BENCHMARKS.md section
    python benchmarks/stream_overhead.py --against REV --no-write
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, Server, machine, median, table, update_section

TURNS, IN_FLIGHT, ROUNDS = 60, 4, 5
KEY = "sk-bench-" + "7f3a9c0d5e1b2468"  # not a real key: what the redactor must look for


def reply_text() -> str:
    """A code answer like a HumanEval reply: the first three canonical solutions, fenced."""
    sys.path.insert(0, str(ROOT))
    from moa_cli.bench.suites import humaneval_data_file

    with gzip.open(humaneval_data_file(), "rt", encoding="utf-8") as lines:
        problems = [json.loads(line) for _, line in zip(range(3), lines)]
    return "Here is the function:\n```python\n" + "".join(p["prompt"] + p["canonical_solution"] for p in problems) + "```"


WORKER = r"""
import asyncio, json, sys, time
from moa_cli.config import Overrides, resolve
from moa_cli.secrets import register_secrets
from moa_cli.service import TurnService

url, key, turns, in_flight = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
env = {"OPENAI_API_KEY": key, "OPENAI_BASE_URL": url + "/v1"}
settings = resolve(Overrides(references=("openai:r1", "openai:r2"), aggregator="openai:agg", concurrency=8), env, {})
register_secrets(key)

async def main():
    service = TurnService(settings)
    try:
        await service.run("warm-up", history=[])
        gate = asyncio.Semaphore(in_flight)
        async def one(n):
            async with gate:
                return await service.run(f"question {n}", history=[])
        cpu, wall = time.process_time(), time.perf_counter()
        outcomes = await asyncio.gather(*(one(n) for n in range(turns)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await service.aclose()
    results = [r for o in outcomes for rnd in o.turn.rounds for r in rnd] + [o.turn.aggregate for o in outcomes]
    print(json.dumps({"cpu": cpu, "wall": wall, "chunks": sum(r.chunks for r in results),
                      "ok": sum(o.ok for o in outcomes), "calls": len(results)}))

asyncio.run(main())
"""


def worker(url: str, pythonpath: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not (k.endswith(("_API_KEY", "_BASE_URL")) or k.startswith("MOA_"))}
    with tempfile.TemporaryDirectory() as home:
        env["MOA_HOME"] = home
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
        done = subprocess.run([sys.executable, "-c", WORKER, url, KEY, str(TURNS), str(IN_FLIGHT)], env=env,
                              cwd=pythonpath or str(ROOT), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    result = json.loads(done.stdout.splitlines()[-1])
    if result["ok"] != TURNS:
        raise RuntimeError(f"only {result['ok']} of {TURNS} turns answered")
    return result


def main() -> None:
    against = sys.argv[sys.argv.index("--against") + 1] if "--against" in sys.argv else "main"
    reply = reply_text()
    load_before = "/".join(f"{x:.1f}" for x in os.getloadavg())
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", against], capture_output=True,
                            text=True, check=True).stdout.strip()
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp, Server({"*": {"reply": reply}}) as server:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", against, "moa_cli"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        trees = {"this tree": None, against: tmp}
        for _ in range(ROUNDS):  # interleaved: drift in machine speed hits both trees alike
            for name, path in trees.items():
                results.setdefault(name, []).append(worker(server.url, path))
    rows, per_chunk = [], {}
    for name, runs in results.items():
        per_chunk[name] = median([r["cpu"] / r["chunks"] for r in runs])
        chunks = runs[0]["chunks"]
        rows.append([name, f"{per_chunk[name] * 1e6:.1f} µs", f"{median([r['cpu'] for r in runs]):.2f} s",
                     f"{median([r['wall'] for r in runs]):.2f} s", chunks, runs[0]["calls"]])
    ratio = per_chunk[against] / per_chunk["this tree"]
    result = table(["code", "CPU per chunk (median)", "CPU", "wall", "chunks", "calls"], rows)
    print(result, f"\n{against} / this tree, CPU per chunk: {ratio:.2f}x")
    if "--no-write" in sys.argv:
        return
    update_section("stream-overhead", f"""
## CPU per streamed chunk (`benchmarks/stream_overhead.py`)

Setup: {TURNS} turns of a 2-reference mix plus an aggregator ({results['this tree'][0]['calls']} calls), {IN_FLIGHT} turns in flight,
in-process through `TurnService` (store=None, no listeners, the API key registered as a secret:
as `moa bench` runs them) against the fake server in its own process streaming one word per
event with no delay. CPU is the moa process's own (`time.process_time()`), after a warm-up turn;
median of {ROUNDS} runs of each tree, interleaved. {machine()}, shared with other developers' work
(load average {load_before} before the run).

{result}

`{against}` (then {commit}) / this tree, CPU per chunk: **{ratio:.2f}x**.
""")


if __name__ == "__main__":
    main()
