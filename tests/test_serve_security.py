"""`moa serve` against web pages, self-calls, stalling requests, hostile upstreams and slow
clients: raw-socket HTTP (full control of Host, Origin, Content-Type and Content-Length) against
the real command, the tests' fake server behind it."""

from __future__ import annotations

import base64
import json
import re
import secrets
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from serving import moa_serve, wait_for  # noqa: F401 - a fixture

QUESTION = [{"role": "user", "content": "what is MoA?"}]
JSON = ("Content-Type", "application/json")


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    @property
    def error(self) -> dict:
        return self.json()["error"]


def address(running) -> tuple[str, int]:
    host, port = running.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def raw(running, method: str, path: str, headers: list[tuple[str, str]] | None = None, body: bytes = b"",
        host: str | None = "127.0.0.1", timeout: float = 60) -> Reply:
    """One request on its own connection, headers exactly as given (plus Host and Content-Length
    unless given), read to the end."""
    headers = list(headers or [])
    names = {k.lower() for k, _ in headers}
    if host is not None and "host" not in names:
        headers.insert(0, ("Host", host))
    if body and "content-length" not in names:
        headers.append(("Content-Length", str(len(body))))
    headers.append(("Connection", "close"))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    with socket.create_connection(address(running), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1") + body)
        data = read_all(sock)
    return parse(data)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        piece = sock.recv(65536)
        if not piece:
            return b"".join(chunks)
        chunks.append(piece)


def parse(data: bytes) -> Reply:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return Reply(status, headers, body)


def chat(running, body: dict | bytes, headers: list[tuple[str, str]] | None = None, **kwargs) -> Reply:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return raw(running, "POST", "/v1/chat/completions", [JSON, *(headers or [])], data, **kwargs)


# ------------------------------------------------------------------ browser-origin protection

REBINDING_HOSTS = ["evil.example", "evil.example:{port}", "127.0.0.1.evil.example", "127.0.0.1.evil.example:{port}",
                   "localhost.evil.example", "[::2]:{port}"]


def test_a_rebinding_host_is_refused_on_every_endpoint(moa_serve, server):
    running = moa_serve()
    for host in REBINDING_HOSTS:
        host = host.format(port=address(running)[1])
        for method, path, body in (("GET", "/health", b""), ("GET", "/v1/models", b""),
                                   ("POST", "/v1/chat/completions",
                                    json.dumps({"model": "moa", "messages": QUESTION}).encode())):
            reply = raw(running, method, path, [JSON] if body else [], body, host=host)
            assert reply.status == 403 and reply.error["code"] == "host_not_allowed", host
    assert server.requests() == []


def test_loopback_names_with_any_port_and_allowed_hosts_are_served(moa_serve, server):
    running = moa_serve("--allow-host", "myhost.lan")
    port = address(running)[1]
    for host in ("localhost", f"localhost:{port}", "127.0.0.1", f"127.0.0.1:{port}", "[::1]", f"[::1]:{port}",
                 "LOCALHOST:1", "myhost.lan", f"myhost.lan:{port}"):
        assert raw(running, "GET", "/health", host=host).status == 200, host
    assert raw(running, "GET", "/health", host="other.lan").status == 403
    assert chat(running, {"model": "moa", "messages": QUESTION}, host="myhost.lan").status == 200


@pytest.mark.parametrize("key", [False, True])
def test_a_foreign_origin_is_refused_with_or_without_a_key(moa_serve, server, key):
    api_key = secrets.token_hex(16)
    running = moa_serve(*(["--api-key", api_key] if key else []))
    auth = [("Authorization", f"Bearer {api_key}")] if key else []
    body = {"model": "moa", "messages": QUESTION, "max_tokens": 10_000}
    for origin in ("http://evil.example", "null", "http://localhost:3000", "http://127.0.0.1"):
        for reply in (chat(running, body, [("Origin", origin), *auth]),
                      raw(running, "GET", "/v1/models", [("Origin", origin), *auth]),
                      raw(running, "GET", "/health", [("Origin", origin)]),
                      raw(running, "OPTIONS", "/v1/chat/completions", [("Origin", origin),
                                                                       ("Access-Control-Request-Method", "POST")])):
            assert reply.status == 403 and reply.error["code"] == "origin_not_allowed", origin
            assert "access-control-allow-origin" not in reply.headers
    assert server.requests() == []
    assert chat(running, {"model": "moa", "messages": QUESTION}, auth).status == 200  # no Origin: a real client


def test_a_named_cors_origin_gets_its_preflight_and_its_answers_and_nothing_wider(moa_serve, server):
    running = moa_serve("--cors-origin", "http://localhost:3000")
    ui = "http://localhost:3000"
    preflight = raw(running, "OPTIONS", "/v1/chat/completions", [
        ("Origin", ui), ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "authorization, content-type")])
    assert preflight.status == 200
    assert preflight.headers["access-control-allow-origin"] == ui
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in preflight.headers
    answer = chat(running, {"model": "moa", "messages": QUESTION}, [("Origin", ui)])
    assert answer.status == 200 and answer.headers["access-control-allow-origin"] == ui
    assert answer.json()["choices"][0]["message"]["content"] == "agg answer 1: what is MoA?"
    models = raw(running, "GET", "/v1/models", [("Origin", ui)])
    assert models.status == 200 and models.headers["access-control-allow-origin"] == ui
    for other in ("http://localhost:3001", "https://localhost:3000", "null", "http://evil.example"):
        assert raw(running, "OPTIONS", "/v1/chat/completions", [
            ("Origin", other), ("Access-Control-Request-Method", "POST")]).status == 403
        assert chat(running, {"model": "moa", "messages": QUESTION}, [("Origin", other)]).status == 403


def test_a_post_that_is_not_json_is_refused(moa_serve, server):
    running = moa_serve()
    body = json.dumps({"model": "moa", "messages": QUESTION}).encode()
    for content_type in (None, "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", "application/jsonx", "application/json-seq"):
        headers = [("Content-Type", content_type)] if content_type else []
        reply = raw(running, "POST", "/v1/chat/completions", headers, body)
        assert reply.status == 415 and reply.error["code"] == "unsupported_media_type", content_type
    assert server.requests() == []
    ok = raw(running, "POST", "/v1/chat/completions", [("Content-Type", "Application/JSON; charset=utf-8")], body)
    assert ok.status == 200


# ------------------------------------------------------------------------------ no self-calls

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_vllm_preset_pointing_at_the_server_itself_is_one_refused_hop(moa_serve, server):
    port = free_port()
    running = moa_serve("--port", str(port), env={"VLLM_BASE_URL": f"http://127.0.0.1:{port}/v1"})
    reply = chat(running, {"model": "vllm:vllm:moa", "messages": QUESTION})
    assert reply.status == 502  # the inner request was refused: the turn failed upstream
    assert running.stop() == 0
    posts = [line for line in running.log().splitlines() if "POST /v1/chat/completions" in line]
    assert len(posts) == 2, posts  # the client's, and one hop back into itself, refused
    assert sum("status=508" in line for line in posts) == 1
    assert server.requests() == []


def test_a_request_carrying_the_hop_header_is_refused(moa_serve, server):
    running = moa_serve()
    reply = chat(running, {"model": "moa", "messages": QUESTION}, [("X-Moa-Hop", "1")])
    assert reply.status == 508 and reply.error["code"] == "loop_detected"
    assert raw(running, "GET", "/v1/models", [("x-moa-hop", "anything")]).status == 508
    assert server.requests() == []


def test_every_upstream_request_carries_the_hop_header(moa_serve, server):
    running = moa_serve()
    assert chat(running, {"model": "moa", "messages": QUESTION}).status == 200
    assert chat(running, {"model": "openai:r1", "messages": QUESTION}).status == 200
    assert len(server.requests()) == 4
    assert all(r["headers"].get("x-moa-hop") for r in server.requests())


def test_model_id_nesting_is_bounded(moa_serve, server):
    running = moa_serve()
    for model in ("vllm:vllm:vllm:moa", "openai:vllm:ollama:m", "vllm:" * 60 + "moa"):
        reply = chat(running, {"model": model, "messages": QUESTION})
        assert reply.status == 400 and reply.error["param"] == "model", model
    assert server.requests() == []


def test_the_default_port_is_not_the_vllm_presets():
    from moa_cli.providers import BUILTIN_PROVIDERS
    from moa_cli.server.run import DEFAULT_PORT

    from urllib.parse import urlsplit

    ports = {urlsplit(spec.base_url).port for spec in BUILTIN_PROVIDERS.values() if spec.base_url}
    assert DEFAULT_PORT not in ports | {8000, 8080, 4000, 11434}


# ------------------------------------------------------------- nothing blocks the event loop

def health_while(running, work) -> tuple[list[int], object]:
    """Run `work()` in a thread; meanwhile ask /health again and again. (health statuses seen
    while the work ran, the work's result)."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", work()))
    thread.start()
    statuses = []
    while thread.is_alive() or not statuses:
        statuses.append(raw(running, "GET", "/health", timeout=30).status)
    thread.join(timeout=120)
    return statuses, result["value"]


@pytest.mark.parametrize("count", [10_000, 100_000])
def test_a_huge_conversation_is_answered_while_health_keeps_answering(moa_serve, server, count):
    running = moa_serve("--max-body", str(16 * 1024 * 1024))  # 100,000 messages are ~4.5 MB
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"} for i in range(count)]
    messages.append({"role": "user", "content": "the last question"})
    statuses, reply = health_while(running, lambda: chat(running, {"model": "moa", "messages": messages}))
    assert statuses and set(statuses) == {200}
    assert reply.status == 200
    assert reply.json()["choices"][0]["message"]["content"] == "agg answer 1: the last question"
    # The references got the newest messages (at most --max-messages), the question last.
    sent = server.requests("r1")[0]["body"]["messages"]
    assert sent[-1] == {"role": "user", "content": "the last question"} and 1 < len(sent) <= 64
    assert sent[-2] == {"role": "assistant", "content": f"message {count - 1}"}


def test_megabyte_model_ids_are_refused_without_being_echoed(moa_serve, server):
    running = moa_serve()
    model = "openai:" + "x" * (1024 * 1024)

    def dozen():
        replies = []
        threads = [threading.Thread(target=lambda: replies.append(chat(running, {"model": model, "messages": QUESTION})))
                   for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        return replies

    statuses, replies = health_while(running, dozen)
    assert set(statuses) == {200}
    assert len(replies) == 12
    for reply in replies:
        assert reply.status == 400 and reply.error["param"] == "model"
        assert len(reply.body) < 1000  # the id is not echoed back
    assert server.requests() == []
    assert running.stop() == 0
    assert "x" * 200 not in running.log()


# ------------------------------------------------------------------ bounded buffers and waits

def peak_rss_mb(pid: int) -> float:
    return int(re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text()).group(1)) / 1024


def test_an_endless_upstream_line_fails_the_call_without_filling_memory(moa_serve, server):
    # The line would be 256 MiB (and more): sent lazily, 64 KiB at a time, until moa hangs up.
    server.script("r1", raw=['data: {"choices":[{"delta":{"content":"'], raw_forever="a" * 65536)
    running = moa_serve()
    before = peak_rss_mb(running.proc.pid)
    reply = chat(running, {"model": "openai:r1", "messages": QUESTION})
    assert reply.status == 502 and reply.error["code"] == "all_providers_failed"
    wait_for(lambda: server.requests("r1") and server.requests("r1")[0].get("client_closed"),
             what="moa to hang up on the endless line")
    assert peak_rss_mb(running.proc.pid) - before < 100  # 1 MiB line cap, not 256 MiB
    assert raw(running, "GET", "/health").status == 200


def test_half_sent_headers_are_closed_after_the_header_timeout(moa_serve, server):
    running = moa_serve("--header-timeout", "0.5")
    with socket.create_connection(address(running), timeout=20) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        assert read_all(sock) == b""  # closed by the server, well before the socket's 20 s
    with socket.create_connection(address(running), timeout=20) as sock:
        sock.settimeout(20)
        closed = False
        for _ in range(200):  # a header dripped a byte at a time does not extend the deadline
            try:
                sock.sendall(b"X")
            except OSError:
                closed = True
                break
            time.sleep(0.05)
        assert closed or read_all(sock) == b""
    with socket.create_connection(address(running), timeout=20) as sock:  # connects, says nothing
        assert read_all(sock) == b""
    assert raw(running, "GET", "/health").status == 200


def test_a_body_that_stops_arriving_is_dropped_after_the_idle_timeout(moa_serve, server):
    running = moa_serve("--idle-timeout", "0.5")
    with socket.create_connection(address(running), timeout=20) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"model\": ")
        data = read_all(sock)
    assert data == b"" or parse(data).status >= 400
    assert server.requests() == []


def test_oversized_headers_are_a_431(moa_serve, server):
    running = moa_serve()
    reply = raw(running, "GET", "/health", [("X-Big", "a" * 40_000)])
    assert reply.status == 431 and reply.error["code"] == "headers_too_large"
    reply = raw(running, "GET", "/health", [(f"X-Many-{i}", "b" * 100) for i in range(400)])
    assert reply.status == 431
    assert raw(running, "GET", "/health", [("X-Fine", "c" * 4000)]).status == 200
    with socket.create_connection(address(running), timeout=20) as sock:  # not HTTP at all
        sock.sendall(b"\x16\x03\x01 GARBAGE\r\n\r\n")
        assert parse(read_all(sock)).status == 400
    assert running.stop() == 0
    # uvicorn's own lines ("Invalid HTTP request received.") carry the prefix like every other.
    lines = running.log().splitlines()
    assert lines and all(line.startswith("moa serve: ") for line in lines), lines


# ------------------------------------------------------------------------------------ secrets

def test_basic_credentials_echoed_by_an_upstream_never_reach_the_client(moa_serve, server):
    key = secrets.token_hex(20)
    for user in ("api", "x", "user-name"):  # every offset of the key inside the base64
        echoed = base64.b64encode(f"{user}:{key}".encode()).decode()
        server.script("r1", status=401, message=f"bad credentials: Authorization: Basic {echoed}")
        running = moa_serve(env={"OPENAI_API_KEY": key})
        reply = chat(running, {"model": "openai:r1", "messages": QUESTION})
        assert reply.status == 502
        assert running.stop() == 0
        for text in (reply.body.decode(), running.log()):
            assert key not in text and echoed not in text and echoed[8:28] not in text


def test_a_key_in_finish_reason_is_redacted_in_the_proposals(moa_serve, server):
    key = secrets.token_hex(20)
    server.script("r1", finish_reason=key)
    running = moa_serve(env={"OPENAI_API_KEY": key})
    reply = chat(running, {"model": "moa", "messages": QUESTION, "moa_proposals": True})
    assert reply.status == 200
    rounds = reply.json()["moa"]["rounds"][0]
    assert {r["model"] for r in rounds} == {"openai:r1", "openai:r2"}
    assert key not in reply.body.decode() and key[:16] not in reply.body.decode()


# ---------------------------------------------------------------------------- protocol details

BAD_REQUESTS = [
    (b'{"model": "moa", "messages": [{"role": "user", "content": "bad \\ud800 text"}]}', "messages[0].content"),
    (b'{"model": "moa\\udfff", "messages": [{"role": "user", "content": "q"}]}', "model"),
    (json.dumps({"model": "moa", "messages": [{"role": "user", "content": None}]}).encode(), "messages[0].content"),
    (json.dumps({"model": "moa", "messages": [{"role": "tool", "content": "x"}, *QUESTION]}).encode(),
     "messages[0].role"),
    (json.dumps({"model": "moa", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]}).encode(),
     "messages[0].content[1]"),
    (json.dumps({"model": "moa", "messages": QUESTION, "max_tokens": 20_000_000}).encode(), "max_tokens"),
    (json.dumps({"model": "moa", "messages": QUESTION, "max_completion_tokens": 20_000_000}).encode(),
     "max_completion_tokens"),
]


def test_bad_requests_name_the_field_with_the_apis_own_names(moa_serve, server):
    running = moa_serve()
    for body, param in BAD_REQUESTS:
        reply = chat(running, body)
        assert reply.status == 400 and reply.error["param"] == param, body[:80]
        assert "--" not in reply.error["message"]  # worded for the API, not the command line
    assert server.requests() == []


def test_a_duplicated_authorization_header_is_refused(moa_serve, server):
    key = secrets.token_hex(16)
    running = moa_serve("--api-key", key)
    for pair in ([("Authorization", f"Bearer {key}"), ("Authorization", "Bearer wrong")],
                 [("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {key}")]):
        assert chat(running, {"model": "moa", "messages": QUESTION}, pair).status in (400, 401)
    assert server.requests() == []
    assert chat(running, {"model": "moa", "messages": QUESTION}, [("Authorization", f"Bearer {key}")]).status == 200


def test_models_lists_only_what_can_run_with_the_keys_present(moa_serve, moa_env):
    running = moa_serve(env={"TOGETHER_API_KEY": ""})
    ids = [m["id"] for m in raw(running, "GET", "/v1/models").json()["data"]]
    assert "moa" in ids and "moa:t" in ids and "openai:r1" in ids
    assert not any(i.startswith("together:") or i == "moa:together-moa" for i in ids)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_second_signal_ends_the_drain_at_once_and_cleanly(moa_serve, server, sig):
    server.script("r1", hang=True)
    server.script("r2", hang=True)
    running = moa_serve("--grace", "120")
    results = {}
    thread = threading.Thread(target=lambda: results.setdefault("r", chat(running, {"model": "moa", "messages": QUESTION})))
    thread.start()
    wait_for(lambda: len(server.requests()) == 2, what="both references to be asked")
    running.proc.send_signal(sig)
    time.sleep(0.5)  # the first signal is being handled: the drain has begun
    running.proc.send_signal(sig)
    assert running.proc.wait(timeout=30) == 0  # far less than the 120 s grace
    thread.join(timeout=30)
    assert "Traceback" not in running.log()
    assert results["r"].status == 503


def test_a_client_that_stops_reading_is_dropped_and_its_upstream_closed(moa_serve, server):
    server.script("m", reply=" ".join(["word"] * 2_000_000), chunk_words=5000)  # ~10 MB of answer
    running = moa_serve("--idle-timeout", "0.5")
    body = json.dumps({"model": "openai:m", "messages": QUESTION, "stream": True}).encode()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(20)
        sock.connect(address(running))
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        # Never read: the server's writes back up, and after --idle-timeout it gives up.
        wait_for(lambda: "outcome=client stopped reading" in running.log(), what="the server to drop the reader",
                 timeout=60)
    wait_for(lambda: server.requests("m") and server.requests("m")[0].get("outcome") in ("client closed", 200),
             what="the upstream stream to end")
    assert raw(running, "GET", "/health").status == 200
