"""`moa serve` under bad input, hostile upstreams, disconnecting clients and SIGTERM: raw HTTP
against the real command, the tests' fake server behind it."""

from __future__ import annotations

import json
import secrets
import signal
import socket
import threading

import httpx
import pytest

from serving import MIX_CONFIG, moa_serve, wait_for  # noqa: F401 - a fixture

QUESTION = [{"role": "user", "content": "what is MoA?"}]


def post(running, body, headers=None, raw: bytes | None = None) -> httpx.Response:
    return httpx.post(running.v1 + "/chat/completions", timeout=30,
                      headers={"Content-Type": "application/json", **(headers or {})},
                      content=raw if raw is not None else json.dumps(body).encode())


def assert_openai_error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"] and error["type"]
    assert "Traceback" not in response.text and "File \"" not in response.text
    return error


@pytest.mark.parametrize("raw, param", [
    (b"{not json", None),
    (b"\xff\xfe", None),
    (b"[1, 2]", None),
    (b"[" * 100000, None),
    (json.dumps({"model": "moa", "messages": []}).encode(), "messages"),
    (json.dumps({"model": "moa"}).encode(), "messages"),
    (json.dumps({"messages": QUESTION}).encode(), "model"),
    (json.dumps({"model": "moa", "messages": [{"role": "assistant", "content": "hi"}]}).encode(), "messages"),
    (json.dumps({"model": "moa", "messages": [{"role": "wizard", "content": "hi"}]}).encode(), "messages[0].role"),
    (json.dumps({"model": "moa", "messages": [{"role": "user", "content": 5}]}).encode(), "messages[0].content"),
    (json.dumps({"model": "moa", "messages": QUESTION, "temperature": 7}).encode(), "temperature"),
    (json.dumps({"model": "moa", "messages": QUESTION, "temperature": "hot"}).encode(), "temperature"),
    (b'{"model": "moa", "messages": [{"role": "user", "content": "q"}], "temperature": NaN}', "temperature"),
    (json.dumps({"model": "moa", "messages": QUESTION, "max_tokens": 10 ** 400}).encode(), "max_tokens"),
    (json.dumps({"model": "moa", "messages": QUESTION, "max_tokens": 0}).encode(), "max_tokens"),
    (json.dumps({"model": "moa", "messages": QUESTION, "stream": "yes"}).encode(), "stream"),
    (json.dumps({"model": "moa", "messages": QUESTION, "n": 3}).encode(), "n"),
])
def test_bad_requests_are_400_in_openai_shape(moa_serve, server, raw, param):
    running = moa_serve()
    error = assert_openai_error(post(running, None, raw=raw), 400)
    assert error["param"] == param
    assert server.requests() == []  # nothing was sent upstream


def test_unknown_model_and_unknown_path_are_404(moa_serve, server):
    running = moa_serve()
    for model in ("gpt-nonexistent", "moa:no-such-mix", "nosuchprovider:x", "local:/etc/passwd"):
        error = assert_openai_error(post(running, {"model": model, "messages": QUESTION}), 404)
        assert error["code"] == "model_not_found"
        assert model not in error["message"]  # a client's string is never echoed back
    assert_openai_error(httpx.get(running.v1 + "/nothing", timeout=10), 404)
    assert_openai_error(httpx.get(running.v1 + "/chat/completions", timeout=10), 405)
    assert server.requests() == []


def test_a_body_over_the_limit_is_413(moa_serve, server):
    running = moa_serve("--max-body", "2000")
    big = {"model": "moa", "messages": [{"role": "user", "content": "x" * 5000}]}
    assert_openai_error(post(running, big), 413)

    def chunked():  # no Content-Length: the limit holds while reading
        yield json.dumps(big).encode()

    response = httpx.post(running.v1 + "/chat/completions", content=chunked(), timeout=30,
                          headers={"Content-Type": "application/json"})
    assert_openai_error(response, 413)
    assert post(running, {"model": "moa", "messages": QUESTION}).status_code == 200


def test_every_call_timing_out_is_504_not_502(moa_serve, server):
    for model in ("r1", "r2", "agg"):
        server.script(model, hang=True)  # headers, then silence
    running = moa_serve(config=MIX_CONFIG.replace("retries = 0", "retries = 0\ntimeout = 0.5\ndeadline = 2"))
    error = assert_openai_error(post(running, {"model": "moa", "messages": QUESTION}), 504)
    assert error["code"] == "all_providers_failed"


def test_every_provider_failing_is_502_and_never_shows_the_key(moa_serve, server, tmp_path):
    key = secrets.token_hex(20)  # no known prefix: only knowing the key can redact it
    for model in ("r1", "r2"):
        server.script(model, status=500, message=f"quota exceeded for key {key}")
    running = moa_serve(env={"OPENAI_API_KEY": key})
    error = assert_openai_error(post(running, {"model": "moa", "messages": QUESTION}), 502)
    assert "every reference model failed" in error["message"]
    assert "openai:r1" in error["message"]
    # Streamed, the status line is already out: the error comes as an event, then [DONE].
    response = post(running, {"model": "moa", "messages": QUESTION, "stream": True})
    assert response.status_code == 200
    events = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert json.loads(events[-3])["error"]["code"] == "all_providers_failed"
    assert events[-1] == "[DONE]"
    for text in (response.text, json.dumps(error), running.log()):
        assert key not in text
    assert running.stop() == 0
    assert key not in running.log()


def test_api_key_is_required_and_compared_when_set(moa_serve, server):
    key = secrets.token_urlsafe(24)
    running = moa_serve(env={"MOA_SERVER_API_KEY": key + "\n"})  # pasted with a newline
    body = {"model": "moa", "messages": QUESTION}
    assert_openai_error(post(running, body), 401)
    assert_openai_error(post(running, body, {"Authorization": "Bearer " + key[:-1]}), 401)
    assert_openai_error(post(running, body, {"Authorization": "Basic " + key}), 401)
    assert_openai_error(httpx.get(running.v1 + "/models", timeout=10), 401)
    assert server.requests() == []
    assert post(running, body, {"Authorization": f"Bearer {key}"}).status_code == 200
    assert httpx.get(running.url + "/health", timeout=10).status_code == 200  # for load balancers
    assert running.stop() == 0
    assert key not in running.log()


def test_a_non_loopback_host_without_a_key_is_refused(moa, moa_env):
    out = moa("serve", "--host", "0.0.0.0", "--port", "0")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "without an API key" in lines[0] and "--insecure" in lines[0]


def test_a_port_in_use_is_one_line(moa):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        out = moa("serve", "--port", str(taken.getsockname()[1]))
    assert out.returncode == 2
    assert out.stderr.startswith("moa: error: cannot listen on 127.0.0.1:") and "Traceback" not in out.stderr


def test_access_log_one_line_per_request_without_prompts_unless_asked(moa_serve, server):
    running = moa_serve()
    post(running, {"model": "moa", "messages": [{"role": "user", "content": "secret plans"}]})
    post(running, {"model": "evil\x1b]0;pwned\x07model", "messages": QUESTION})
    assert running.stop() == 0
    lines = [line for line in running.log().splitlines() if "POST /v1/chat/completions" in line]
    assert len(lines) == 2
    assert "model=moa" in lines[0] and "status=200" in lines[0] and "tokens=" in lines[0]
    assert "ms" in lines[0]
    assert "secret plans" not in running.log()
    assert "status=404" in lines[1] and "\x1b" not in running.log() and "\x07" not in running.log()
    assert "\\x1b]0;pwned" in lines[1]  # made visible, not silently dropped

    server.log.clear()
    logged = moa_serve("--log-prompts")
    post(logged, {"model": "moa", "messages": [{"role": "user", "content": "secret plans"}]})
    assert logged.stop() == 0
    assert 'prompt="secret plans"' in logged.log()


def upstream_closed(server, models) -> bool:
    entries = [r for r in server.requests() if r["model"] in models]
    return {r["model"] for r in entries} == set(models) and all(r.get("client_closed") for r in entries)


def test_a_client_leaving_during_the_references_cancels_every_upstream_stream(moa_serve, server):
    server.script("r1", hang=True)
    server.script("r2", hang=True)
    running = moa_serve()
    with httpx.stream("POST", running.v1 + "/chat/completions", timeout=30,
                      json={"model": "moa", "messages": QUESTION, "stream": True}) as response:
        lines = response.iter_lines()
        assert '"role":"assistant"' in next(lines)  # the role chunk, before any token
        wait_for(lambda: len(server.requests()) == 2, what="both references to be asked")
    wait_for(lambda: upstream_closed(server, {"r1", "r2"}), what="the upstream streams to be closed")
    assert server.requests("agg") == []  # the aggregator was never asked
    wait_for(lambda: "outcome=client closed" in running.log(), what="the access log line")


def test_a_client_leaving_during_the_aggregator_cancels_its_stream(moa_serve, server):
    server.script("agg", reply=" ".join(["word"] * 200), chunk_delay=0.1)
    running = moa_serve()
    with httpx.stream("POST", running.v1 + "/chat/completions", timeout=30,
                      json={"model": "moa", "messages": QUESTION, "stream": True}) as response:
        for line in response.iter_lines():
            if '"content":"word"' in line:
                break  # the aggregator is streaming: leave
    wait_for(lambda: upstream_closed(server, {"agg"}), what="the aggregator stream to be closed")
    assert [r.get("outcome") for r in server.requests("r1") + server.requests("r2")] == [200, 200]


def test_a_client_leaving_a_whole_answer_request_cancels_it_too(moa_serve, server):
    server.script("r1", hang=True)
    server.script("r2", hang=True)
    running = moa_serve()
    body = json.dumps({"model": "moa", "messages": QUESTION}).encode()
    host, port = running.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        wait_for(lambda: len(server.requests()) == 2, what="both references to be asked")
    wait_for(lambda: upstream_closed(server, {"r1", "r2"}), what="the upstream streams to be closed")


def test_sigterm_lets_requests_in_flight_finish_then_exits_0(moa_serve, server):
    server.script("agg", reply="the whole answer arrives", chunk_delay=0.3)
    running = moa_serve("--grace", "30")
    results = {}

    def ask(i: int, stream: bool) -> None:
        response = post(running, {"model": "moa", "messages": [{"role": "user", "content": f"q{i}"}],
                                  "stream": stream})
        results[i] = (response.status_code, response.text)

    threads = [threading.Thread(target=ask, args=(i, i % 2 == 0)) for i in range(4)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(server.requests("agg")) == 4, what="every turn to reach its aggregator")
    assert running.stop(signal.SIGTERM) == 0
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [0, 1, 2, 3]
    for i, (status, text) in results.items():
        assert status == 200
        if i % 2:
            assert json.loads(text)["choices"][0]["message"]["content"] == "the whole answer arrives"
        else:
            assert text.rstrip().endswith("data: [DONE]") and '"content":" arrives"' in text
    with pytest.raises(httpx.ConnectError):  # no new requests once it has stopped
        httpx.get(running.url + "/health", timeout=5)
    assert "Traceback" not in running.log()


def test_sigterm_past_the_grace_period_cancels_cleanly_and_exits_0(moa_serve, server):
    server.script("r1", hang=True)
    server.script("r2", hang=True)
    running = moa_serve("--grace", "0.5")
    results = {}

    def ask(stream: bool) -> None:
        response = post(running, {"model": "moa", "messages": QUESTION, "stream": stream})
        results[stream] = response

    threads = [threading.Thread(target=ask, args=(s,)) for s in (True, False)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(server.requests()) == 4, what="both turns to ask their references")
    assert running.stop(signal.SIGTERM) == 0
    for thread in threads:
        thread.join(timeout=30)
    wait_for(lambda: upstream_closed(server, {"r1", "r2"}), what="the upstream streams to be closed")
    streamed = results[True]
    assert streamed.status_code == 200 and '"code":"server_shutdown"' in streamed.text
    assert streamed.text.rstrip().endswith("data: [DONE]")
    assert_openai_error(results[False], 503)
    assert "Traceback" not in running.log()


def test_a_failed_aggregator_streams_the_fallback_reference_answer_once(moa_serve, server):
    server.script("agg", status=500, message="aggregator down")
    running = moa_serve()
    response = post(running, {"model": "moa", "messages": QUESTION, "stream": True})
    assert response.status_code == 200
    events = [json.loads(line.removeprefix("data: ")) for line in response.text.splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    content = "".join(choice["delta"].get("content") or "" for event in events for choice in event["choices"])
    # Nothing of the aggregator was streamed: the reference answer standing in is the whole content.
    assert content in ("r1 answer 1: what is MoA?", "r2 answer 1: what is MoA?")
    assert response.text.rstrip().endswith("data: [DONE]")
