"""Issue 6: orchestration overhead across rounds and reference counts, and the straggler cut-off.

Setup: every reference answers 1.0 s after its request arrives, the aggregator after 0.2 s, on
the fake server in its own process. For R rounds the ideal turn is R x 1.0 s + 0.2 s.

1. Rounds 1..3 x references 2..8: turn time (`--json` timings.elapsed) / ideal, and the whole
   `moa ask` process / ideal.
2. Four references, one of them 10x slower (10 s): the turn with the cut-off
   (`--min-proposers 3 --proposer-deadline 1`) against the turn with no straggler at all.
"""

from __future__ import annotations

import json
import tempfile

from common import Server, machine, median, mix_args, moa_env, ok, refs, run_moa, table, update_section

REF_DELAY, AGG_DELAY = 1.0, 0.2
ROUNDS = (1, 2, 3)
REF_COUNTS = (2, 3, 4, 5, 6, 7, 8)
RUNS = 2  # per cell; the grid is 21 cells
REPLY = "a short answer of about ten words to keep streaming out of it"


def grid() -> tuple[str, list[tuple[int, int, float, float]]]:
    script = {m: {"delay": REF_DELAY, "reply": REPLY} for m in refs(8)}
    script["agg"] = {"delay": AGG_DELAY, "reply": REPLY}
    cells = []
    with tempfile.TemporaryDirectory() as home, Server(script) as server:
        env = moa_env(server.url, home)
        run_moa(["ask", *mix_args(refs(2)), "--json", "warm-up"], env)
        for rounds in ROUNDS:
            for n in REF_COUNTS:
                ideal = rounds * REF_DELAY + AGG_DELAY
                turns, walls = [], []
                for _ in range(RUNS):
                    _, _, wall, proc = run_moa(["ask", *mix_args(refs(n), rounds=rounds), "--json", "q"], env)
                    turns.append(json.loads(proc.stdout)["timings"]["elapsed"])
                    walls.append(wall)
                cells.append((rounds, n, median(turns) / ideal, median(walls) / ideal))
                print(f"rounds {rounds} refs {n}: turn/ideal {cells[-1][2]:.3f}  process/ideal {cells[-1][3]:.2f}")
    headers = ["rounds \\ refs", *map(str, REF_COUNTS)]
    turn_rows = [[str(r)] + [f"{c[2]:.3f}" for c in cells if c[0] == r] for r in ROUNDS]
    wall_rows = [[str(r)] + [f"{c[3]:.2f}" for c in cells if c[0] == r] for r in ROUNDS]
    return (
        "Turn time / ideal (`timings.elapsed`; goal <= 1.01 at one round, <= 1.02 at three):\n\n"
        + table(headers, turn_rows)
        + "\n\nWhole `moa ask` process wall time / ideal:\n\n"
        + table(headers, wall_rows),
        cells,
    )


def stragglers() -> tuple[str, dict]:
    script = {m: {"delay": REF_DELAY, "reply": REPLY} for m in refs(4)}
    script["r4"] = {"delay": 10 * REF_DELAY, "reply": REPLY}
    script["s1"] = {"delay": REF_DELAY, "reply": REPLY}
    script["agg"] = {"delay": AGG_DELAY, "reply": REPLY}
    cut = ["--min-proposers", "3", "--proposer-deadline", str(REF_DELAY)]
    cases = {
        "no straggler (r1, r2, r3, s1 all 1 s)": (["r1", "r2", "r3", "s1"], []),
        "r4 10x slower, cut-off on": (refs(4), cut),
        "r4 10x slower, no flags (default rule)": (refs(4), []),
    }
    times, statuses = {}, {}
    with tempfile.TemporaryDirectory() as home, Server(script) as server:
        env = moa_env(server.url, home)
        for name, (models, flags) in cases.items():
            runs = 1 if "default" in name else 3
            elapsed = []
            for _ in range(runs):
                _, _, _, proc = run_moa(["ask", *mix_args(models), *flags, "--json", "q"], env)
                data = json.loads(proc.stdout)
                elapsed.append(data["timings"]["elapsed"])
                statuses[name] = ", ".join(a["status"] for a in data["rounds"][0])
            times[name] = median(elapsed)
            print(f"{name}: {times[name]:.3f} s ({statuses[name]})")
    base = times["no straggler (r1, r2, r3, s1 all 1 s)"]
    rows = [[name, f"{t:.3f} s", f"{t / base:.3f}", statuses[name]] for name, t in times.items()]
    ratio = times["r4 10x slower, cut-off on"] / base
    text = (
        table(["case (4 references)", "turn time", "/ no straggler", "reference statuses"], rows)
        + f"\n\nWith the cut-off (`{' '.join(cut)}`) the straggler costs {ratio:.3f}x the "
        f"no-straggler turn: goal <= 1.15, **{ok(ratio, 1.15)}**. With no flags the default rule "
        "does not cut a model before it has been silent for 15 s, so a 10 s straggler is waited for."
    )
    return text, {"ratio": ratio}


def main() -> None:
    grid_text, cells = grid()
    straggler_text, _ = stragglers()
    one = max(c[2] for c in cells if c[0] == 1)
    three = max(c[2] for c in cells if c[0] == 3)
    verdict = (f"Worst turn/ideal at one round {one:.3f} (goal 1.01: **{ok(one, 1.01)}**), at three rounds "
               f"{three:.3f} (goal 1.02: **{ok(three, 1.02)}**).")
    print(verdict)
    update_section("orchestration", f"""
## Orchestration overhead by rounds and references (`benchmarks/orchestration.py`)

Setup: every reference answers {REF_DELAY:.1f} s after its request arrives, the aggregator after
{AGG_DELAY:.1f} s; ideal turn = rounds x {REF_DELAY:.1f} s + {AGG_DELAY:.1f} s. `moa ask --json -r ... -a
openai:agg --rounds R`, median of {RUNS} runs per cell after one warm-up. {machine()}.

{grid_text}

{verdict}

### A straggler 10x slower than the rest

{straggler_text}
""")


if __name__ == "__main__":
    main()
