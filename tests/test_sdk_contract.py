"""Contract tests per SDK: the real `openai` and `together` SDKs, driven through moa's providers
against the tests' server. They pin what moa relies on from each SDK's public API: the request
body it sends, and how its errors come back as moa errors. An SDK upgrade that changes either
fails here, not in a user's turn. Each runs over both HTTP clients a provider can have: the SDK's
own (httpx) and its aiohttp client, which `moa bench` and `moa serve` use (`many_calls`)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading

import pytest

from moa_cli.errors import AuthError, ModelNotFound, ProviderError
from moa_cli.failure import FailureKind
from moa_cli.providers.base import ChatRequest
from moa_cli.providers.openai_compat import OpenAICompatProvider
from moa_cli.providers.openai_style import http_client
from moa_cli.providers.together_sdk import TogetherProvider

KEY = os.urandom(12).hex()  # no known prefix: redaction must not rely on the key's shape


# (SDK, many_calls): every SDK over its own HTTP client and over its aiohttp one.
CLIENTS = pytest.mark.parametrize("kind, many", [("openai", False), ("together", False), ("openai", True),
                                                 ("together", True)], ids=["openai", "together", "openai-aiohttp",
                                                                           "together-aiohttp"])


def _provider(kind: str, server, many: bool = False, port: int | None = None):
    """The SDK's provider against the tests' server, or against whatever listens on `port`."""
    url = server.url if port is None else f"http://127.0.0.1:{port}"
    if kind == "openai":
        return OpenAICompatProvider("openai", KEY, url + "/v1", {"X-Team": "lab"}, many_calls=many)
    return TogetherProvider("together", KEY, url, {"X-Team": "lab"}, many_calls=many)


@pytest.mark.parametrize("sdk_name", ["openai", "together"])
def test_many_calls_get_the_sdks_aiohttp_client_and_one_turn_its_own(sdk_name):
    sdk = __import__(sdk_name)
    assert http_client(sdk, many_calls=False) is None
    assert isinstance(http_client(sdk, many_calls=True), sdk.DefaultAioHttpClient)


async def _collect(provider, request: ChatRequest):
    text, usage = "", None
    try:
        async for chunk in provider.stream(request):
            text += chunk.text
            usage = chunk.usage or usage
    finally:
        await provider.aclose()
    return text, usage


MESSAGES = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"},
            {"role": "assistant", "content": "hi"}, {"role": "user", "content": "what now?"})


@CLIENTS
def test_the_request_body_is_the_public_chat_completions_shape(kind, many, server):
    server.api_key = KEY
    request = ChatRequest("m-1", MESSAGES, temperature=0.3, max_tokens=42, timeout=5, seed=7)
    text, usage = asyncio.run(_collect(_provider(kind, server, many), request))
    assert text == "m-1 answer 1: what now?"
    assert usage is not None and usage.completion_tokens == 5  # one per streamed word
    (sent,) = server.requests("m-1")
    body = sent["body"]
    assert body["messages"] == list(MESSAGES)  # as `messages`, never smuggled in extra_body
    assert body["model"] == "m-1" and body["stream"] is True
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.3, 42, 7)
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["x-team"] == "lab"
    if kind == "openai":
        assert body["stream_options"] == {"include_usage": True}


@CLIENTS
@pytest.mark.parametrize("status, kind_of_error, retryable", [
    (401, AuthError, False), (403, AuthError, False), (404, ModelNotFound, False),
    (429, ProviderError, True), (500, ProviderError, True), (503, ProviderError, True),
    (400, ProviderError, False),
])
def test_http_errors_become_moa_errors_with_status_and_no_key(kind, many, status, kind_of_error, retryable, server):
    server.script("m-1", status=status)
    with pytest.raises(ProviderError) as caught:
        asyncio.run(_collect(_provider(kind, server, many), ChatRequest("m-1", MESSAGES, timeout=5)))
    error = caught.value
    assert type(error) is kind_of_error
    assert error.status == status and error.retryable is retryable
    assert error.kind is FailureKind.HTTP
    assert error.message.count(f"{kind}:m-1") == 1  # the call is named once
    assert KEY not in error.message


@CLIENTS
def test_retry_after_is_read_from_a_429(kind, many, server):
    server.script("m-1", errors=[{"status": 429, "retry_after": 3}])
    with pytest.raises(ProviderError) as caught:
        asyncio.run(_collect(_provider(kind, server, many), ChatRequest("m-1", MESSAGES, timeout=5)))
    assert caught.value.retry_after == 3.0


@CLIENTS
def test_an_unreachable_endpoint_is_a_retryable_connection_error(kind, many, server):
    port = server.port
    server.stop()
    provider = _provider(kind, server, many, port)
    with pytest.raises(ProviderError) as caught:
        asyncio.run(_collect(provider, ChatRequest("m-1", MESSAGES, timeout=5)))
    assert caught.value.retryable and caught.value.status is None
    assert caught.value.kind is FailureKind.CONNECTION
    assert KEY not in caught.value.message


@CLIENTS
def test_a_stream_cut_before_its_end_is_a_retryable_drop(kind, many, server):
    server.script("m-1", reply="one two three four five", drop_after=2)
    with pytest.raises(ProviderError) as caught:
        asyncio.run(_collect(_provider(kind, server, many), ChatRequest("m-1", MESSAGES, timeout=5)))
    assert caught.value.retryable and caught.value.kind is FailureKind.CONNECTION


@CLIENTS
def test_the_read_timeout_is_kind_timeout(kind, many, server):
    server.script("m-1", delay=5)
    with pytest.raises(ProviderError) as caught:
        asyncio.run(_collect(_provider(kind, server, many), ChatRequest("m-1", MESSAGES, timeout=0.3)))
    assert (caught.value.kind, caught.value.status, caught.value.retryable) == (FailureKind.TIMEOUT, None, True)


@CLIENTS
@pytest.mark.parametrize("reply", [b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 200_000 + b"\r\n\r\n",
                                   b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ncut"],
                         ids=["not-http", "huge-header", "short-body"])
def test_a_broken_http_response_is_a_retryable_connection_error(kind, many, reply):
    """A server that answers with something that is not HTTP, with a header too long for any
    client, or with less body than it announced: a typed connection failure, never a timeout."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer_once():
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(reply)

    thread = threading.Thread(target=answer_once, daemon=True)
    thread.start()
    try:
        with pytest.raises(ProviderError) as caught:
            asyncio.run(_collect(_provider(kind, None, many, port), ChatRequest("m-1", MESSAGES, timeout=5)))
    finally:
        listener.close()
    assert (caught.value.kind, caught.value.status, caught.value.retryable) == (FailureKind.CONNECTION, None, True)
    assert KEY not in caught.value.message


def _event(payload: dict) -> str:
    return "data: " + json.dumps(payload) + "\n\n"


@CLIENTS
def test_events_that_arrive_together_go_on_as_one_chunk(kind, many, server):
    """Word-by-word events a server sent in one write reach the engine as one piece of text, in
    order, with nothing lost; the finish and the usage still end the answer."""
    words = [_event({"choices": [{"delta": {"content": w}, "finish_reason": None}]}) for w in ("one ", "two ", "three")]
    end = (_event({"choices": [{"delta": {}, "finish_reason": "stop"}]})
           + _event({"choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}}) + "data: [DONE]\n\n")
    server.script("m-1", raw=["".join(words), end], raw_delay=0.05)
    provider = _provider(kind, server, many)

    async def chunks():
        try:
            return [chunk async for chunk in provider.stream(ChatRequest("m-1", MESSAGES, timeout=5))]
        finally:
            await provider.aclose()

    got = asyncio.run(chunks())
    texts = [c.text for c in got if c.text]
    assert "".join(texts) == "one two three"
    # One piece for the three events (one a word would be 3), and at most the tail the redactor
    # held back ("three" has no space after it yet) given back at the end.
    assert len(texts) <= 2
    assert [c.finish_reason for c in got if c.finish_reason] == ["stop"]
    assert sum(c.usage.completion_tokens for c in got if c.usage) == 3
