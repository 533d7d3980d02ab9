"""Issue 20: `moa bench humaneval --search` over a pool of 4 instant fake models.

Setup: the fake server in its own process answers every call at once (no delay) with a fixed,
model-specific reply; the pool is m1..m4; every proposer set of 2-4 models with every model as
aggregator, one round: 4 solo rows + 44 mixes = 48 configurations on the 164 HumanEval items.
The real `moa bench` command runs the search (answers through the answer ledger, every final
answer graded in bench's test sandbox, each distinct answer once).

Reported: the configurations run; calls made / calls if every configuration ran alone (goal
<= 0.35); wall time of the whole command; items x configurations per second.
`--limit N` runs fewer items (a quick check); the figures in BENCHMARKS.md are for all 164.
"""

from __future__ import annotations

import argparse
import os
import json
import tempfile
from pathlib import Path

from common import Server, machine, moa_env, ok, run_moa, table, update_section

POOL = [f"m{n}" for n in range(1, 5)]
GOAL = 0.35


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    script = {m: {"reply": f"```python\ndef solution(*args):\n    return {n}\n```"} for n, m in enumerate(POOL)}
    with tempfile.TemporaryDirectory() as home, Server(script) as server:
        env = moa_env(server.url, home)
        out = Path(home) / "search"
        command = ["bench", "humaneval", "--search", ",".join(f"openai:{m}" for m in POOL), "--proposers", "2-4",
                   "--concurrency", str(args.concurrency), "--out", str(out)]
        if args.limit:
            command += ["--limit", str(args.limit)]
        _, _, wall, proc = run_moa(command, env)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        report = json.loads((out / "search.json").read_text())
        grades = [json.loads(line) for line in (out / "grades.jsonl").read_text().splitlines()]
    requests = len(server.chat_requests())
    calls = report["calls"]
    items, configs = report["items"], report["configurations"]
    ratio = calls["made"] / calls["without_sharing"]
    sandbox_runs = sum(1 for g in grades if "shared_with" not in g)
    rows = [
        ["configurations run", f"{configs} ({POOL.__len__()} solo + {configs - len(POOL)} mixes)", "", ""],
        ["items", str(items), "", ""],
        ["calls made (server log)", f"{requests:,}", "", ""],
        ["calls made / calls without sharing", f"{calls['made']:,} / {calls['without_sharing']:,} = {ratio:.3f}",
         f"<= {GOAL}", ok(ratio, GOAL)],
        ["sandbox runs (distinct answers graded)", f"{sandbox_runs:,} of {len(grades):,} grades", "", ""],
        ["wall time of `moa bench --search`", f"{wall:.1f} s", "", ""],
        ["items x configurations per second", f"{items * configs / wall:,.1f}", "", ""],
    ]
    print(table(["measure", "value", "goal", ""], rows))
    if args.limit:
        return  # a quick check: BENCHMARKS.md keeps the full run's figures
    body = (
        "## Searching a pool of models (`benchmarks/bench_search.py`)\n\n"
        f"Setup: 4 instant fake models (fixed replies, no delay; fake server in its own process), "
        f"`moa bench humaneval --search m1,m2,m3,m4 --proposers 2-4 --concurrency {args.concurrency}`: every "
        "proposer set of 2-4 models, any model as aggregator, one round, on all 164 HumanEval items; every final "
        "answer graded in bench's test sandbox (each distinct answer once). One run, on 2 cores shared with "
        f"other developers' work (load average {os.getloadavg()[0]:.0f} at the end), so wall times are noisy. "
        f"{machine()}.\n\n"
        + table(["measure", "value", "goal", ""], rows) + "\n"
    )
    update_section("bench_search", body)


if __name__ == "__main__":
    main()
