"""Issue 2: how close one `moa ask` turn gets to its ideal critical path.

Setup: three references that each answer 1.0 s after the request arrives, an aggregator that
answers after 0.2 s, all on the fake server in its own process. The ideal turn is 1.2 s.

Measures (a) the turn's own time (`--json` timings.elapsed) / ideal, (b) the gap between the
last reference finishing and the aggregator's request arriving (server clock), (c) the whole
process's wall time / ideal, (d) `moa --help` wall time; and which SDKs the process imports.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile

from common import MOA, Server, in_window, machine, median, mix_args, moa_env, ok, run_moa, table, update_section

REF_DELAY, AGG_DELAY, RUNS = 1.0, 0.2, 7
IDEAL = REF_DELAY + AGG_DELAY
REPLY = "a short answer of about ten words to keep streaming out of it"


def main() -> None:
    script = {m: {"delay": REF_DELAY, "reply": REPLY} for m in ("r1", "r2", "r3")}
    script["agg"] = {"delay": AGG_DELAY, "reply": REPLY}
    args = ["ask", *mix_args(["r1", "r2", "r3"]), "--json", "What is a Mixture-of-Agents?"]
    runs = []
    with tempfile.TemporaryDirectory() as home, Server(script) as server:
        env = moa_env(server.url, home)
        run_moa(args, env)  # warm the OS file cache; not counted
        for _ in range(RUNS):
            start, end, wall, proc = run_moa(args, env)
            runs.append((start, end, wall, json.loads(proc.stdout)["timings"]["elapsed"]))
        # Which modules the pipe path imports (one more run under -X importtime).
        imports = subprocess.run([sys.executable, "-X", "importtime", MOA, *args], env=env,
                                 capture_output=True, text=True, stdin=subprocess.DEVNULL).stderr
    gaps = []
    for start, end, _, _ in runs[:]:
        calls = in_window(server.log, start, end)
        last_ref = max(r["finished"] for r in calls if r["model"] != "agg")
        agg = [r for r in calls if r["model"] == "agg"][0]
        gaps.append(agg["received"] - last_ref)

    help_walls = []
    with tempfile.TemporaryDirectory() as home:
        env = moa_env(None, home)
        for _ in range(RUNS + 3):
            help_walls.append(run_moa(["--help"], env)[2])

    turn = median([r[3] for r in runs])
    wall = median([r[2] for r in runs])
    gap_ms = median(gaps) * 1000
    help_s = median(help_walls)
    cumulative = _import_costs(imports)
    sdks = [name for name in ("openai", "together", "llama_cpp", "rich", "prompt_toolkit") if name in cumulative]

    rows = [
        ["(a) turn time / ideal", f"{turn:.3f} s / {IDEAL:.1f} s = {turn / IDEAL:.3f}", "<= 1.01", ok(turn / IDEAL, 1.01)],
        ["(b) last reference done -> aggregator request", f"{gap_ms:.1f} ms", "<= 5 ms", ok(gap_ms, 5)],
        ["(c) whole `moa ask` process / ideal", f"{wall:.3f} s / {IDEAL:.1f} s = {wall / IDEAL:.2f}", "<= 1.40", ok(wall / IDEAL, 1.40)],
        ["(d) `moa --help`", f"{help_s:.3f} s", "<= 0.3 s", ok(help_s, 0.3)],
    ]
    result = table(["measure (median of %d runs)" % RUNS, "value", "goal", ""], rows)
    costs = table(["module imported by `moa ask` (pipe path)", "cumulative import time"],
                  [[name, f"{cumulative[name] * 1000:.0f} ms"] for name in
                   ("moa_cli.cli", "typer", "openai", "together", "rich", "asyncio") if name in cumulative])
    print(result)
    print()
    print(costs)
    print("\nSDKs and UI libraries imported:", ", ".join(sdks) or "none")
    update_section("turn_overhead", f"""
## Issue 2: one turn against its ideal critical path (`benchmarks/turn_overhead.py`)

Setup: 3 references answering 1.0 s after their request arrives, aggregator after 0.2 s, short
replies (streaming takes about a millisecond); ideal turn {IDEAL:.1f} s. `moa ask --json` with
`-r openai:r1,openai:r2,openai:r3 -a openai:agg`; {RUNS} runs after one warm-up. {machine()}.

{result}

{costs}

Imported on this path: {", ".join(sdks) or "none"} (the `together` SDK is not, as no model of the
mix is on Together).
""")


def _import_costs(stderr: str) -> dict[str, float]:
    """module -> cumulative seconds, for top-level entries of -X importtime output."""
    costs = {}
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            name = match.group(3)
            costs[name] = max(costs.get(name, 0.0), int(match.group(1)) / 1e6)
    return costs


if __name__ == "__main__":
    main()
