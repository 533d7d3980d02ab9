"""`moa mcp` end to end: the MCP SDK's own stdio client spawns the real `moa mcp` process, which
answers with mixes on the fake OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

mcp = pytest.importorskip("mcp")

from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

import subprocess  # noqa: E402

from conftest import moa_command, spawn_moa  # noqa: E402

CONFIG = """
[defaults]
mix = "fake"

[mixes.fake]
description = "two references and an aggregator on the tests' server"
references = ["openai:m1", "openai:m2"]
aggregator = "openai:agg"

[mixes.solo]
references = ["openai:m3"]
aggregator = "openai:agg2"

[mixes.review]
references = ["openai:m1", "openai:m2"]
aggregator = "openai:agg"
strategy = "peer-review"
"""

KEY = secrets.token_hex(20)  # no known prefix: only moa's registry of secrets can hide it


@pytest.fixture
def mcp_env(moa_env, tmp_path):
    home = Path(moa_env["MOA_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(CONFIG)
    return {**moa_env, "OPENAI_API_KEY": KEY, "TOGETHER_API_KEY": secrets.token_hex(20)}


class Recorder:
    """Every JSON-RPC message the client received, as text: to search for what must never leak."""

    def __init__(self):
        self.messages: list[str] = []

    def text(self) -> str:
        return "\n".join(self.messages)


@asynccontextmanager
async def connect(env: dict, tmp_path: Path, *args: str):
    """A ClientSession on a fresh `moa mcp` process; yields (session, recorder)."""
    command, *argv = [*moa_command(), "mcp", *args]
    params = StdioServerParameters(command=command, args=argv, env=env, cwd=str(tmp_path))
    recorder = Recorder()
    with open(tmp_path / "mcp-stderr.txt", "w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write):
            relay_send, relay_read = anyio.create_memory_object_stream(100)

            async def relay():
                async with relay_send:
                    async for message in read:
                        recorder.messages.append(message.message.model_dump_json() if hasattr(message, "message")
                                                 else repr(message))
                        await relay_send.send(message)

            async with anyio.create_task_group() as group:
                group.start_soon(relay)
                async with ClientSession(relay_read, write) as session:
                    await session.initialize()
                    yield session, recorder
                group.cancel_scope.cancel()


def run(coro_fn):
    return anyio.run(coro_fn)


def texts(result) -> list[str]:
    return [block.text for block in result.content]


def test_tools_resources_and_an_answer_logged_as_a_session(mcp_env, server, tmp_path):
    async def main():
        async with connect(mcp_env, tmp_path) as (session, _):
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            assert set(tools) == {"ask", "list_mixes"}
            schema = tools["ask"].input_schema
            assert schema["required"] == ["question"]
            assert {"question", "mix", "include_proposals"} <= set(schema["properties"])

            listed = await session.call_tool("list_mixes", {})
            assert not listed.is_error
            mixes = {m["name"]: m for m in listed.structured_content["result"]}
            assert mixes["fake"]["default"] is True and mixes["solo"]["default"] is False

            resources = {str(r.uri): r for r in (await session.list_resources()).resources}
            assert "moa://mixes/fake" in resources and "moa://mixes/solo" in resources
            toml = (await session.read_resource("moa://mixes/solo")).contents[0].text
            assert "openai:m3" in toml and "openai:agg2" in toml

            answer = await session.call_tool("ask", {"question": "what is MoA?"})
            assert not answer.is_error, texts(answer)
            assert texts(answer) == ["agg answer 1: what is MoA?"]
            assert answer.structured_content["answer"] == "agg answer 1: what is MoA?"

            other = await session.call_tool("ask", {"question": "hi", "mix": "solo"})
            assert texts(other) == ["agg2 answer 1: hi"]
            bad = await session.call_tool("ask", {"question": "hi", "mix": "nope"})
            assert bad.is_error
            return answer.structured_content["session_id"]

    session_id = run(main)
    assert {r["model"] for r in server.requests()} == {"m1", "m2", "agg", "m3", "agg2"}
    db = sqlite3.connect(Path(mcp_env["MOA_HOME"]) / "sessions.db")
    rows = db.execute("SELECT question, final, status FROM turns WHERE session_id = ?", (session_id,)).fetchall()
    assert rows == [("what is MoA?", "agg answer 1: what is MoA?", "ok")]


def test_no_log_keeps_no_session(mcp_env, server, tmp_path):
    async def main():
        async with connect(mcp_env, tmp_path, "--no-log") as (session, _):
            answer = await session.call_tool("ask", {"question": "q"})
            assert texts(answer) == ["agg answer 1: q"]
            assert answer.structured_content["session_id"] is None

    run(main)
    db_path = Path(mcp_env["MOA_HOME"]) / "sessions.db"
    assert not db_path.exists() or not sqlite3.connect(db_path).execute("SELECT * FROM turns").fetchall()


def test_progress_notifications_in_order_then_proposals(mcp_env, server, tmp_path):
    server.script("m2", reply="second opinion", delay=0.3)  # m1 finishes first, then m2, then agg
    progress: list[tuple[float, float | None]] = []

    async def on_progress(value, total, message):
        progress.append((value, total))

    async def main():
        async with connect(mcp_env, tmp_path) as (session, _):
            result = await session.call_tool("ask", {"question": "q", "include_proposals": True},
                                             progress_callback=on_progress)
            assert not result.is_error
            return result

    result = run(main)
    # two references, the aggregator starting, the aggregator done: 4 steps, in order
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    proposals = result.structured_content["proposals"]
    assert [(p["model"], p["round"], p["status"]) for p in proposals] == [
        ("openai:m1", 1, "ok"), ("openai:m2", 1, "ok")]
    assert proposals[1]["text"] == "second opinion"
    blocks = texts(result)
    assert blocks[0] == "agg answer 1: q" and len(blocks) == 3
    assert blocks[2].endswith("second opinion")


def test_progress_keeps_rising_when_a_strategy_adds_a_review_round(mcp_env, server, tmp_path):
    progress: list[tuple[float, float | None]] = []

    async def on_progress(value, total, message):
        progress.append((value, total))

    async def main():
        async with connect(mcp_env, tmp_path) as (session, _):
            result = await session.call_tool("ask", {"question": "q", "mix": "review", "include_proposals": True},
                                             progress_callback=on_progress)
            assert not result.is_error, texts(result)
            return result

    result = run(main)
    values = [value for value, _ in progress]
    assert values == list(range(1, len(values) + 1)) and len(values) == 2 + 2 + 2  # answers, reviews, aggregator
    assert progress[-1] == (6, 6) and all(total >= value for value, total in progress)
    roles = [p["role"] for p in result.structured_content["proposals"]]
    assert roles == ["reference", "reference", "reviewer", "reviewer"]


def test_cancellation_closes_the_upstream_streams_and_saves_the_turn(mcp_env, server, tmp_path):
    server.script("m1", hang=True)
    server.script("m2", hang=True)

    async def main():
        with anyio.fail_after(60):
            await cancel_and_ask_again()

    async def cancel_and_ask_again():
        async with connect(mcp_env, tmp_path) as (session, _):
            with anyio.CancelScope() as scope:
                async def cancel_when_running():
                    while len(server.requests()) < 2:
                        await anyio.sleep(0.02)
                    scope.cancel()

                async with anyio.create_task_group() as group:
                    group.start_soon(cancel_when_running)
                    await session.call_tool("ask", {"question": "never answered"})
            assert scope.cancelled_caught
            # moa hangs up on both upstream streams while it is still running
            while not all(r.get("client_closed") for r in server.requests()):
                await anyio.sleep(0.02)
            # the server goes on serving after a cancelled call
            server.script("m1", reply="m1 is back")
            server.script("m2", reply="m2 is back")
            after = await session.call_tool("ask", {"question": "again"})
            assert texts(after) == ["agg answer 1: again"]

    run(main)
    hung = [r for r in server.requests() if r["model"] in ("m1", "m2") and r.get("outcome") == "hang"]
    assert len(hung) == 2
    assert all(r.get("client_closed") for r in hung)  # moa hung up on both streams
    db = sqlite3.connect(Path(mcp_env["MOA_HOME"]) / "sessions.db")
    statuses = dict(db.execute("SELECT question, status FROM turns").fetchall())
    assert statuses == {"never answered": "interrupted", "again": "ok"}


def test_hostile_answer_is_sanitized_and_no_key_appears_anywhere(mcp_env, server, tmp_path):
    hostile = "\x1b]0;owned\x07 \x1b[2J \x9b31m pwned " + KEY
    server.script("m1", reply=hostile)
    server.script("agg", reply="final \x1b]52;c;ZWNobyBoaQ==\x07 " + KEY)
    server.script("m2", status=500, message="upstream says the key is " + KEY)

    async def main():
        async with connect(mcp_env, tmp_path) as (session, recorder):
            result = await session.call_tool("ask", {"question": "q", "include_proposals": True},
                                             progress_callback=lambda *a: anyio.sleep(0))
            return result, recorder.text()

    result, wire = run(main)
    assert not result.is_error
    everything = wire + json.dumps(result.model_dump(mode="json")) + (tmp_path / "mcp-stderr.txt").read_text()
    assert KEY not in everything and KEY[:12] not in everything
    for text in texts(result):
        assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text
    assert result.structured_content["answer"].startswith("final \\x1b]52;")
    proposals = {p["model"]: p for p in result.structured_content["proposals"]}
    assert proposals["openai:m1"]["text"].startswith("\\x1b]0;owned")
    assert proposals["openai:m2"]["status"] == "failed"
    assert proposals["openai:m2"]["failure"] == {"kind": "http", "status": 500}


def loaded_modules(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.splitlines()[-1].split())


def test_help_imports_none_of_the_mcp_sdk():
    for argv in (["--help"], ["mcp", "--help"]):
        modules = loaded_modules(f"from moa_cli import cli\nassert cli.run({argv!r}) == 0")
        assert "moa_cli" in modules and "mcp" not in modules


def test_without_the_mcp_extra_moa_mcp_says_how_to_install_it(tmp_path):
    probe = ("import sys\nsys.modules['mcp'] = None  # as if the extra were not installed\n"
             "from moa_cli import cli\nsys.exit(cli.run(['mcp']))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "MOA_HOME": str(tmp_path)}, stdin=subprocess.DEVNULL, timeout=60)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "moa-cli[mcp]" in out.stderr, out.stderr  # as serve


def test_sigterm_saves_the_turn_in_flight_as_interrupted_and_exits_143(mcp_env, server, tmp_path):
    """Plain JSON-RPC lines on the real process's stdin, then SIGTERM while the references hang."""
    import signal

    from conftest import wait_for

    server.script("m1", hang=True)
    server.script("m2", hang=True)
    proc = spawn_moa("mcp", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     env=mcp_env, cwd=tmp_path)
    try:
        messages = [
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "ask", "arguments": {"question": "hang"}}},
        ]
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in messages).encode())
        proc.stdin.flush()
        wait_for(lambda: len(server.requests()) == 2, "both references to be asked")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    db = sqlite3.connect(Path(mcp_env["MOA_HOME"]) / "sessions.db")
    assert db.execute("SELECT question, status FROM turns").fetchall() == [("hang", "interrupted")]
