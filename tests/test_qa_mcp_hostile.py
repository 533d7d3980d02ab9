"""`moa mcp` against a hostile client speaking raw JSON-RPC on its stdin: malformed lines, unknown
tools, a 10 MB question, mixes that do not exist or are paths, concurrent asks and a cancel
storm. Each request gets one clean answer or none (a cancelled one), the server keeps serving,
stderr stays free of tracebacks, and the key the model echoes appears nowhere."""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from conftest import moa_command, wait_for  # noqa: E402
from serving import MIX_CONFIG as CONFIG  # noqa: E402 - the same two-reference mix serve's tests use


def test_a_hostile_client_gets_one_clean_reply_per_request_and_the_server_keeps_serving(moa_env, server, tmp_path):
    key = secrets.token_hex(16)
    server.script("*", reply=f"the key {key} is here", chunk_delay=0.01)
    home = Path(moa_env["MOA_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(CONFIG)
    stderr_path = tmp_path / "mcp.err"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen([*moa_command(), "mcp"], env={**moa_env, "OPENAI_API_KEY": key},
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=tmp_path)
    replies: dict = {}
    raw_out: list[bytes] = []

    def read():
        for line in process.stdout:
            raw_out.append(line)
            message = json.loads(line)
            if message.get("id") is not None:
                replies.setdefault(message["id"], []).append(message)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def send(message) -> None:
        data = message if isinstance(message, bytes) else json.dumps(message).encode()
        process.stdin.write(data + b"\n")
        process.stdin.flush()

    def call(id_: int, name: str, arguments: dict) -> None:
        send({"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": name, "arguments": arguments}})

    try:
        send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "hostile", "version": "1"}}})
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        for junk in (b"{not json", b"\xff\xfe", b"[1, 2, 3]", b'{"jsonrpc": "2.0", "id": 101}'):
            send(junk)
        call(1, "no-such-tool", {})
        call(2, "ask", {"question": "x" * (10 << 20)})
        call(3, "ask", {"question": "hi", "mix": "no-such-mix"})
        call(4, "ask", {"question": "hi", "mix": "/etc/passwd"})
        call(5, "ask", {"question": "hi", "mix": "../config"})
        call(6, "ask", {"question": 5})
        for id_ in range(10, 20):
            call(id_, "ask", {"question": f"q{id_}"})
        for _ in range(3):  # a cancel storm: the same requests, again, and one never made
            for id_ in range(10, 20, 2):
                send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": id_}})
        send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9999}})
        wait_for(lambda: all(i in replies for i in (1, 2, 3, 4, 5, 6, 11, 13, 15, 17, 19)), "every reply", timeout=60)
        call(50, "ask", {"question": "still there?"})
        wait_for(lambda: 50 in replies, "the server to keep serving", timeout=60)
    finally:
        process.stdin.close()
        process.wait(timeout=30)
        reader.join(timeout=10)
    assert process.returncode == 0
    assert all(len(r) == 1 for r in replies.values())  # one reply per request, never two
    for id_ in (1, 2, 3, 4, 5, 6):
        assert replies[id_][0]["result"]["isError"] is True
    for id_ in (11, 13, 15, 17, 19, 50):
        assert replies[id_][0]["result"]["isError"] is False
        assert replies[id_][0]["result"]["structuredContent"]["status"] == "ok"
    stderr_text = stderr_path.read_text(errors="replace")
    assert "Traceback" not in stderr_text
    everything = b"".join(raw_out).decode(errors="replace") + stderr_text
    assert key not in everything and key[:12] not in everything
    sessions = (home / "sessions.db").read_bytes()
    assert key.encode() not in sessions
