"""Shared code for the two Stainless-generated SDKs (openai and together).

Both expose the same shapes: `client.chat.completions` (whose `with_streaming_response.create`
sends a streaming request and hands back the raw server-sent events) and the same family of
exception classes. Here the events are turned into moa's Chunks and the exceptions into
ProviderErrors.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import AsyncIterator

from ..errors import AuthError, ModelNotFound, ProviderError
from ..failure import FailureKind
from ..secrets import redact
from .base import ChatRequest, Chunk, Usage

CONNECT_TIMEOUT = 10.0


class StainlessProvider:
    """A provider over an SDK module (`openai` or `together`) and one async client of it."""

    sdk: ModuleType

    def __init__(self, name: str, client, secrets: tuple[str, ...] = ()):
        self.name = name
        self.client = client
        self._secrets = secrets  # scrubbed from every error message

    async def warm_up(self) -> None:
        """Do the SDK's first-use work now, before a round's calls start together.

        On first use the SDK imports its chat resources and the HTTP stack loads anyio's asyncio
        backend: 0.02-0.15 s that blocks the event loop, so inside a round it holds up every
        call (measured in BENCHMARKS.md). Only public, documented API is touched: attribute
        access on `chat.completions.with_streaming_response`, and anyio's `current_time()`.
        """
        self.client.chat.completions.with_streaming_response.create  # noqa: B018 - the access is the point
        import anyio

        anyio.current_time()

    def _create_kwargs(self, request: ChatRequest) -> dict:
        # Only public, documented arguments: an SDK upgrade must not change what is sent.
        kwargs: dict = {"model": request.model, "messages": [dict(m) for m in request.messages], "stream": True}
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.timeout is not None:
            # The SDK's own Timeout class (httpx's or httpx2's): importing httpx here would cost
            # ~0.15 s on the first call, as it pulls in its CLI's dependencies.
            kwargs["timeout"] = self.sdk.Timeout(request.timeout, connect=min(request.timeout, CONNECT_TIMEOUT))
        kwargs.update(request.extra)
        return kwargs

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        """Stream one chat completion.

        The SDK builds and sends the request and turns HTTP errors into its exception classes;
        the server-sent events are read here as raw lines and parsed with `json`, which costs a
        few microseconds a chunk where the SDK's typed chunk objects cost a fraction of a
        millisecond (a burst of chunks would hold up the event loop, and so every other call).
        """
        where = f"{self.name}:{request.model}"
        done = False  # `data: [DONE]` or a finish_reason arrived: the answer is whole
        try:
            streaming = self.client.chat.completions.with_streaming_response
            async with streaming.create(**self._create_kwargs(request)) as response:
                lines = response.iter_lines()
                try:
                    async for line in lines:
                        if not line.startswith("data:"):
                            continue  # blank separators, comments and `event:` lines
                        data = line[5:].strip()
                        if data == "[DONE]":
                            done = True
                            break
                        chunk, finished = _parse_chunk(data, where, self.name, request.model)
                        done = done or finished
                        if chunk is not None:
                            yield chunk
                    if done and response.headers.get("connection", "").lower() != "close":
                        async for _ in lines:  # read to the end so the connection can be reused
                            pass
                finally:
                    await lines.aclose()
            if not done:
                # The connection ended without [DONE] or a finish_reason: the server or a proxy
                # dropped it mid-answer. The text so far is a fragment, worth trying again.
                raise _error(where, "the stream ended before the answer was complete", FailureKind.CONNECTION,
                             provider=self.name, model=request.model, retryable=True)
        except ProviderError as error:  # raised above, from what the server sent: may quote a key
            raise self.scrub(error) from None
        except Exception as error:  # noqa: BLE001 - translated at the boundary, never leaked
            raise self.translate(error, request.model) from None

    async def list_models(self) -> list[str]:
        try:
            page = await self.client.models.list()
            items = page.data if hasattr(page, "data") else page
            return sorted(m.id for m in items)
        except Exception as error:  # noqa: BLE001
            raise self.translate(error, "") from None

    async def aclose(self) -> None:
        try:
            await self.client.close()
        except Exception:  # noqa: BLE001 - closing must never mask the real outcome
            pass

    def translate(self, error: Exception, model: str) -> ProviderError:
        """SDK exception -> ProviderError naming provider, model and status. Secrets never included."""
        return self.scrub(self._translate(error, model))

    def scrub(self, error: ProviderError) -> ProviderError:
        """The error with this provider's secrets removed from its message, in any encoding."""
        error.message = redact(error.message, self._secrets)
        error.detail = redact(error.detail, self._secrets)
        error.args = (error.message,)
        return error

    def _translate(self, error: Exception, model: str) -> ProviderError:
        sdk = self.sdk
        where = f"{self.name}:{model}" if model else self.name
        status = getattr(error, "status_code", None)
        kinds = {cls.__name__ for cls in type(error).__mro__}
        # The SDK wraps transport errors raised while sending; ones raised while reading a stream
        # may arrive as the HTTP library's own classes (httpx or httpx2), matched here by name.
        if isinstance(error, getattr(sdk, "APITimeoutError", ())) or "TimeoutException" in kinds:
            return _error(where, "timed out", FailureKind.TIMEOUT, provider=self.name, model=model, retryable=True)
        if "TransportError" in kinds:
            return _error(where, f"connection lost ({_short(str(error) or type(error).__name__)})",
                          FailureKind.CONNECTION, provider=self.name, model=model, retryable=True)
        if isinstance(error, getattr(sdk, "APIConnectionError", ())):
            return _error(where, f"cannot connect ({_cause(error)})", FailureKind.CONNECTION,
                          provider=self.name, model=model, retryable=True)
        if status is None:
            return _error(where, f"{type(error).__name__}: {_short(str(error))}", FailureKind.INTERNAL,
                          provider=self.name, model=model)
        detail = _short(_body_message(error))
        kwargs = dict(provider=self.name, model=model, status=status)
        redirect = _redirect(error)
        if redirect or 300 <= status < 400:
            # The SDK follows redirects; what failed is the address it was sent to, not the model.
            return _error(
                where, f"the server redirected the request ({redirect or f'HTTP {status}'}) and it failed"
                f"{f' there with HTTP {status}' if status >= 400 else ''}; set base_url to the API's own address",
                FailureKind.HTTP, **kwargs,
            )
        if status in (401, 403):
            return _error(where, f"HTTP {status}, the API key was rejected ({detail})", FailureKind.HTTP,
                          cls=AuthError, **kwargs)
        if status == 404:
            return _error(where, f"HTTP 404, unknown model '{model}' on provider '{self.name}' ({detail})",
                          FailureKind.HTTP, cls=ModelNotFound, **kwargs)
        retryable = status == 429 or status >= 500 or status == 408
        return _error(where, f"HTTP {status} ({detail})", FailureKind.HTTP, retryable=retryable,
                      retry_after=_retry_after(error), **kwargs)


def _error(where: str, detail: str, kind: FailureKind, cls: type[ProviderError] = ProviderError,
           **kwargs) -> ProviderError:
    """A ProviderError of `kind` whose message names the call (`where`) once, before `detail`."""
    return cls(f"{where}: {detail}", detail=detail, kind=kind, **kwargs)


def _parse_chunk(data: str, where: str, provider: str, model: str) -> tuple[Chunk | None, bool]:
    """One `data:` payload -> (Chunk or None, whether it carried a finish_reason)."""
    import json

    try:
        payload = json.loads(data)
    except ValueError:
        raise _error(where, f"the server sent a malformed stream event ({_short(data, 80)})", FailureKind.INTERNAL,
                     provider=provider, model=model, retryable=True) from None
    if not isinstance(payload, dict):
        return None, False
    error = payload.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise _error(where, f"error in the stream ({_short(str(message))})", FailureKind.HTTP,
                     provider=provider, model=model)
    text, reason = "", None
    choices = payload.get("choices") or ()
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta") or {}
        text = delta.get("content") if isinstance(delta, dict) else ""
        text = text if isinstance(text, str) else ""
        reason = choices[0].get("finish_reason")
        reason = str(reason)[:40] if reason is not None else None
    finished = reason is not None
    usage = payload.get("usage")
    if isinstance(usage, dict):
        usage = Usage(_count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens")))
        return Chunk(text, usage, finish_reason=reason), finished
    return (Chunk(text, finish_reason=reason) if text or reason else None), finished


MAX_COUNT = 10**12  # more tokens than any call uses; anything above is a server's nonsense


def _count(value) -> int:
    """A token count from a server: a whole number from 0 to MAX_COUNT (a 30-digit number, a
    string or a negative number would break the sums or the session database)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    return int(min(max(value, 0), MAX_COUNT))


def _body_message(error: Exception) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return getattr(error, "message", None) or str(error)


def _retry_after(error: Exception) -> float | None:
    """The server's Retry-After in seconds, when it is a sane number (the engine caps it)."""
    response = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None  # `inf`, `nan`, negative: ignored, never obeyed
    return seconds


def _redirect(error: Exception) -> str:
    """'HTTP 302 to URL' when the failed response came after a redirect, else ''."""
    response = getattr(error, "response", None)
    history = getattr(response, "history", None) or []
    if not history:
        return ""
    return f"HTTP {history[0].status_code} to {_short(str(getattr(response, 'url', '?')), 120)}"


def _cause(error: Exception) -> str:
    cause = error.__cause__ or error.__context__
    return _short(str(cause) or type(cause).__name__) if cause else "connection error"


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
