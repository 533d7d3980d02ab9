"""`moa mcp`: what an agent waits for, against the turn's ideal critical path and `moa ask`.

Setup as turn_overhead.py: three references that answer 1.0 s after their request arrives, an
aggregator that answers after 0.2 s, on the fake server in its own process; the ideal turn is
1.2 s. The MCP SDK's stdio client spawns one `moa mcp` and asks RUNS questions in a row; the same
questions go to RUNS `moa ask --no-log` processes, interleaved.

Measures: start-up (spawn to `initialize` answered), each ask's call-to-result time / ideal, the
first progress notification's delay after the first reference could have finished (1.0 s), and
a whole `moa ask` process / ideal.

    python benchmarks/mcp_turn.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from common import MOA, Server, machine, median, moa_env, run_moa, table, update_section

REF_DELAY, AGG_DELAY, RUNS = 1.0, 0.2, 5
IDEAL = REF_DELAY + AGG_DELAY
REPLY = "a short answer of about ten words to keep streaming out of it"
CONFIG = """
[defaults]
mix = "bench"
[mixes.bench]
references = ["openai:r1", "openai:r2", "openai:r3"]
aggregator = "openai:agg"
"""


async def mcp_runs(env: dict, home: str) -> tuple[float, list[float], list[float]]:
    params = StdioServerParameters(command=MOA, args=["mcp", "--no-log"], env=env, cwd=home)
    t0 = time.perf_counter()
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            startup = time.perf_counter() - t0
            turns, first_progress = [], []
            for i in range(RUNS):
                seen: list[float] = []
                start = time.perf_counter()

                async def progress(value, total, message, start=start, seen=seen):
                    seen.append(time.perf_counter() - start)

                result = await session.call_tool("ask", {"question": f"question {i}"}, progress_callback=progress)
                assert not result.is_error, result
                turns.append(time.perf_counter() - start)
                first_progress.append(seen[0] - REF_DELAY)
    return startup, turns, first_progress


def main() -> None:
    script = {m: {"delay": REF_DELAY, "reply": REPLY} for m in ("r1", "r2", "r3")}
    script["agg"] = {"delay": AGG_DELAY, "reply": REPLY}
    with tempfile.TemporaryDirectory() as home, Server(script) as server:
        (Path(home) / "config.toml").write_text(CONFIG)
        env = moa_env(server.url, home)
        startup, turns, first_progress = anyio.run(mcp_runs, env, home)
        walls = [run_moa(["ask", "--no-log", f"question {i}"], env)[2] for i in range(RUNS)]
    rows = [
        ["`moa mcp` start-up (spawn to initialized)", f"{startup:.2f} s", ""],
        ["MCP `ask`, call to result (median)", f"{median(turns):.3f} s", f"{median(turns) / IDEAL:.2f}x"],
        ["first progress notification after the first reference's 1.0 s", f"{median(first_progress) * 1000:.0f} ms", ""],
        ["`moa ask` whole process (median)", f"{median(walls):.3f} s", f"{median(walls) / IDEAL:.2f}x"],
    ]
    body = "\n".join([
        "## Issue 21: `moa mcp`, an agent's wait (`benchmarks/mcp_turn.py`)",
        "",
        f"{machine()}; 3 references answering after {REF_DELAY} s, aggregator after {AGG_DELAY} s "
        f"(ideal {IDEAL} s); {RUNS} asks through one `moa mcp` (the MCP SDK's stdio client) and "
        f"{RUNS} `moa ask` processes. Shared 2-core machine: other work ran at the same time.",
        "",
        table(["what", "time", "/ ideal"], rows),
        "",
        "One long-lived `moa mcp` pays the start-up (imports, SDK warm-up) once; each later ask costs "
        "the turn plus the protocol round trip.",
    ])
    print(body)
    update_section("mcp_turn", body)


if __name__ == "__main__":
    main()
