"""`moa serve` behind a hostile upstream that echoes the key where nothing redacted it: split
across the answer's stream events, hex-encoded in an error. Nothing may reach the client, the
access log or the sessions database. Plus a few raw-socket requests a browser could send."""

from __future__ import annotations

import json
import secrets
import sqlite3
from pathlib import Path

import pytest

from serving import moa_serve  # noqa: F401 - a fixture
from test_serve_security import QUESTION, chat, raw

from moa_cli.secrets import StreamRedactor, register_secrets


def _event(content=None, finish=None) -> str:
    delta = {"content": content} if content is not None else {}
    return "data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "model": "m",
                                  "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"


def _saved(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())


@pytest.mark.parametrize("stream", [False, True])
def test_a_key_split_across_answer_events_never_reaches_the_client(moa_serve, server, moa_env, stream):
    key = secrets.token_urlsafe(24)
    pieces = [key[i:i + 5] for i in range(0, len(key), 5)]
    server.script("r1", raw=[_event("your key: "), *(_event(p) for p in pieces), _event(" ok"),
                             _event(None, "stop"), "data: [DONE]\n\n"])
    running = moa_serve(env={"OPENAI_API_KEY": key})
    reply = chat(running, {"model": "openai:r1", "messages": QUESTION, "stream": stream})
    assert reply.status == 200
    assert running.stop() == 0
    body = reply.body.decode()
    text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "")
                   for line in body.splitlines() if line.startswith("data: {")) if stream \
        else json.loads(body)["choices"][0]["message"]["content"]
    assert text.startswith("your key: ") and text.endswith(" ok")
    for where in (text, body, running.log(), _saved(Path(moa_env["MOA_HOME"])).decode(errors="replace")):
        assert key not in where and key[:12] not in where and key[-12:] not in where


def test_a_hex_encoded_key_in_an_upstream_error_never_reaches_the_client(moa_serve, server):
    key = secrets.token_hex(16)
    server.script("r1", response={"status": 400, "body": {"error": {"message": "sent " + key.encode().hex()}}})
    running = moa_serve(env={"OPENAI_API_KEY": key})
    reply = chat(running, {"model": "openai:r1", "messages": QUESTION})
    assert reply.status == 502 and reply.error["type"] == "upstream_error"
    assert running.stop() == 0
    for where in (reply.body.decode(), running.log()):
        assert key.encode().hex()[:24] not in where and key.encode().hex().upper()[:24] not in where


def test_a_moa_ask_answer_echoing_the_key_is_hidden_in_output_and_sessions(moa, server, moa_env):
    key = secrets.token_hex(20)
    server.script("*", reply=f"the key is {key} indeed")
    result = moa("ask", "--json", "hi", env={"OPENAI_API_KEY": key, "TOGETHER_API_KEY": key})
    assert result.returncode == 0, result.stderr
    assert key not in result.stdout + result.stderr
    db = Path(moa_env["MOA_HOME"]) / "sessions.db"
    with sqlite3.connect(db) as connection:
        dump = "\n".join(connection.iterdump())
    assert key not in dump and key[:12] not in dump


def test_the_stream_redactor_hides_a_key_at_every_split_and_delays_only_a_word():
    key = secrets.token_urlsafe(30)
    register_secrets(key)
    text = f"a {key} b {key}c"
    for step in (1, 2, 5, 13, len(text)):
        hiding = StreamRedactor()
        out = [piece for i in range(0, len(text), step) for piece in hiding.feed(text[i:i + step])] + hiding.flush()
        assert "".join(out) == "a *** b ***c"
    hiding = StreamRedactor()  # code that merely looks like a key is the answer's own text
    assert "".join([*hiding.feed("def f(key_value_pairs, sk-learn_model):"), *hiding.flush()]) == \
        "def f(key_value_pairs, sk-learn_model):"
    hiding = StreamRedactor()  # word-sized pieces keep their boundaries, one piece late
    assert [hiding.feed(p) for p in ("the", " whole", " answer")] + [hiding.flush()] == \
        [[], ["the"], [" whole"], [" answer"]]
    hiding = StreamRedactor()  # pieces cut mid-word go out by whole words
    assert [hiding.feed(p) for p in ("Hel", "lo wor", "ld")] + [hiding.flush()] == [[], ["Hello "], [], ["wor", "ld"]]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
def test_json_with_parameters_is_accepted_and_a_browser_simple_request_is_not(moa_serve, server, content_type):
    running = moa_serve()
    body = json.dumps({"model": "moa", "messages": QUESTION}).encode()
    ok = raw(running, "POST", "/v1/chat/completions", [("Content-Type", content_type)], body)
    assert ok.status == 200
    calls = len(server.requests())
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        refused = raw(running, "POST", "/v1/chat/completions", [("Content-Type", kind)], body)
        assert refused.status == 415 and refused.error["code"] == "unsupported_media_type"
    missing = raw(running, "POST", "/v1/chat/completions", [], body)
    assert missing.status == 415
    assert len(server.requests()) == calls  # no turn ran
