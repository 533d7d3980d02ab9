"""How close one `moa ask` turn gets to its ideal critical path, on each SDK's path.

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

from common import MOA, Server, in_window, machine, median, moa_env, ok, run_moa, table, update_section

REF_DELAY, AGG_DELAY, RUNS = 1.0, 0.2, 7
IDEAL = REF_DELAY + AGG_DELAY
REPLY = "a short answer of about ten words to keep streaming out of it"
QUESTION = "What is a Mixture-of-Agents?"


def ask_args(provider: str) -> list[str]:
    refs = ",".join(f"{provider}:r{i}" for i in (1, 2, 3))
    return ["ask", "-r", refs, "-a", f"{provider}:agg", "--json", "--no-log", QUESTION]


def measure(env: dict, provider: str) -> dict:
    """One run: in-turn time, whole-process wall time, and its window on the server's clock."""
    args = ask_args(provider)
    if "PYTHONPATH" in env:  # an older tree: it has no --no-log (it logged no one-shot turn)
        args.remove("--no-log")
    start, end, wall, proc = run_moa(args, env)
    return {"turn": json.loads(proc.stdout)["timings"]["elapsed"], "wall": wall, "window": (start, end)}


def add_gaps(runs: list[dict], log: list[dict]) -> None:
    """The last reference finishing -> the aggregator's request arriving, per run (server clock)."""
    for run in runs:
        calls = in_window(log, *run["window"])
        last_ref = max(r["finished"] for r in calls if r["model"] != "agg")
        run["gap_ms"] = ([r for r in calls if r["model"] == "agg"][0]["received"] - last_ref) * 1000


def main() -> None:
    # `--baseline-src DIR`: also time the moa_cli package found in DIR (an older checkout), the
    # two runs interleaved, so a change is measured against its predecessor in the same run.
    baseline_src = sys.argv[sys.argv.index("--baseline-src") + 1] if "--baseline-src" in sys.argv else None
    script = {m: {"delay": REF_DELAY, "reply": REPLY} for m in ("r1", "r2", "r3")}
    script["agg"] = {"delay": AGG_DELAY, "reply": REPLY}
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as home, Server(script) as server:
        env = moa_env(server.url, home)
        env.update(TOGETHER_API_KEY="tk-bench-0123456789", TOGETHER_BASE_URL=server.url)
        variants = {"this tree": env}
        if baseline_src:
            variants["baseline"] = {**env, "PYTHONPATH": baseline_src}
        for provider in ("openai", "together"):
            for venv in variants.values():
                measure(venv, provider)  # warm the OS file cache; not counted
        for _ in range(RUNS):  # interleaved: drift in machine speed hits every variant alike
            for provider in ("openai", "together"):
                for name, venv in variants.items():
                    results.setdefault((provider, name), []).append(measure(venv, provider))
        imports = subprocess.run([sys.executable, "-X", "importtime", MOA, *ask_args("together")], env=env,
                                 capture_output=True, text=True, stdin=subprocess.DEVNULL).stderr
    for runs in results.values():
        add_gaps(runs, server.log)

    help_walls = []
    with tempfile.TemporaryDirectory() as home:
        env = moa_env(None, home)
        for _ in range(RUNS + 3):
            help_walls.append(run_moa(["--help"], env)[2])
    help_s = median(help_walls)

    def med(provider, name, key):
        return median([r[key] for r in results[(provider, name)]])

    rows = []
    for provider in ("openai", "together"):
        turn, wall, gap = (med(provider, "this tree", k) for k in ("turn", "wall", "gap_ms"))
        rows += [
            [f"(a) {provider}: turn time / ideal", f"{turn:.3f} s / {IDEAL:.1f} s = {turn / IDEAL:.3f}", "<= 1.01",
             ok(turn / IDEAL, 1.01)],
            [f"(b) {provider}: last reference done -> aggregator request", f"{gap:.1f} ms", "<= 5 ms", ok(gap, 5)],
            [f"(c) {provider}: whole `moa ask` process / ideal", f"{wall:.3f} s / {IDEAL:.1f} s = {wall / IDEAL:.2f}",
             "<= 1.40" if provider == "together" else "-", ok(wall / IDEAL, 1.40) if provider == "together" else ""],
        ]
    rows.append(["(d) `moa --help`", f"{help_s:.3f} s", "<= 0.3 s", ok(help_s, 0.3)])
    result = table(["measure (median of %d runs)" % RUNS, "value", "goal", ""], rows)
    compare = ""
    if baseline_src:
        crows = []
        for provider in ("openai", "together"):
            for key, label in (("turn", "turn time"), ("wall", "process wall")):
                a, b = med(provider, "this tree", key), med(provider, "baseline", key)
                crows.append([f"{provider}: {label}", f"{a:.3f} s", f"{b:.3f} s", f"{a / b:.3f}"])
        compare = table(["measure (median)", "this tree", "baseline", "ratio"], crows)
    cumulative = _import_costs(imports)
    costs = table(["module imported by `moa ask` (together path)", "cumulative import time"],
                  [[name, f"{cumulative[name] * 1000:.0f} ms"] for name in
                   ("moa_cli.cli", "typer", "openai", "together", "rich", "asyncio") if name in cumulative])
    print(result, compare, costs, sep="\n\n")
    update_section("turn_overhead", f"""
## One turn against its ideal critical path (`benchmarks/turn_overhead.py`)

Setup: 3 references answering 1.0 s after their request arrives, aggregator after 0.2 s, short
replies (streaming takes about a millisecond); ideal turn {IDEAL:.1f} s. `moa ask --json --no-log`
with `-r P:r1,P:r2,P:r3 -a P:agg` for P = openai and together (each SDK's own path); {RUNS} runs of
each after one warm-up, interleaved. {machine()}.

{result}
""" + (f"""
Against a baseline source tree (`--baseline-src`: {BASELINE_NOTE}), in the same run:

{compare}
""" if baseline_src else "") + f"""
{costs}
""")


BASELINE_NOTE = "the tree before the turn service, with the private-SDK warm-up and messages in extra_body"


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
