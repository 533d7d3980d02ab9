"""Shared code for the two Stainless-generated SDKs (openai and together).

Both expose the same shapes: `client.chat.completions.create(stream=True)` returning an async
stream of chunks with `choices[0].delta.content` and an optional `usage`, and the same family of
exception classes. Here those are turned into moa's Chunk and ProviderError.
"""

from __future__ import annotations

from types import ModuleType
from typing import AsyncIterator

from ..errors import AuthError, ModelNotFound, ProviderError, redact
from .base import ChatRequest, Chunk, Usage

CONNECT_TIMEOUT = 10.0


class StainlessProvider:
    """A provider over an SDK module (`openai` or `together`) and one async client of it."""

    sdk: ModuleType

    def __init__(self, name: str, client, secrets: tuple[str, ...] = ()):
        self.name = name
        self.client = client
        self._secrets = secrets  # scrubbed from every error message

    def _create_kwargs(self, request: ChatRequest) -> dict:
        import httpx

        kwargs: dict = {"model": request.model, "messages": list(request.messages), "stream": True}
        if request.temperature is not None:
            kwargs["temperature"] = request.temperature
        if request.max_tokens is not None:
            kwargs["max_tokens"] = request.max_tokens
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if request.timeout is not None:
            kwargs["timeout"] = httpx.Timeout(request.timeout, connect=min(request.timeout, CONNECT_TIMEOUT))
        kwargs.update(request.extra)
        return kwargs

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        stream = None
        try:
            stream = await self.client.chat.completions.create(**self._create_kwargs(request))
            async for chunk in stream:
                text = ""
                if chunk.choices:
                    delta = chunk.choices[0].delta
                    text = (getattr(delta, "content", None) or "") if delta is not None else ""
                usage = getattr(chunk, "usage", None)
                yield Chunk(
                    text=text,
                    usage=Usage(usage.prompt_tokens or 0, usage.completion_tokens or 0) if usage else None,
                )
        except ProviderError:
            raise
        except Exception as error:  # noqa: BLE001 - translated at the boundary, never leaked
            raise self.translate(error, request.model) from None
        finally:
            if stream is not None:
                await stream.close()

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
        translated = self._translate(error, model)
        translated.message = redact(translated.message, self._secrets)
        translated.args = (translated.message,)
        return translated

    def _translate(self, error: Exception, model: str) -> ProviderError:
        sdk = self.sdk
        where = f"{self.name}:{model}" if model else self.name
        status = getattr(error, "status_code", None)
        if isinstance(error, getattr(sdk, "APITimeoutError", ())):
            return ProviderError(f"{where}: timed out", provider=self.name, model=model, retryable=True)
        if isinstance(error, getattr(sdk, "APIConnectionError", ())):
            return ProviderError(
                f"{where}: cannot connect ({_cause(error)})", provider=self.name, model=model, retryable=True
            )
        if status is None:
            return ProviderError(
                f"{where}: {type(error).__name__}: {_short(str(error))}", provider=self.name, model=model
            )
        detail = _short(_body_message(error))
        kwargs = dict(provider=self.name, model=model, status=status)
        if status in (401, 403):
            return AuthError(f"{where}: HTTP {status}, the API key was rejected ({detail})", **kwargs)
        if status == 404:
            return ModelNotFound(f"{where}: HTTP 404, unknown model '{model}' on provider '{self.name}' ({detail})", **kwargs)
        retryable = status == 429 or status >= 500 or status == 408
        return ProviderError(
            f"{where}: HTTP {status} ({detail})",
            retryable=retryable,
            retry_after=_retry_after(error),
            **kwargs,
        )


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
    response = getattr(error, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _cause(error: Exception) -> str:
    cause = error.__cause__ or error.__context__
    return _short(str(cause) or type(cause).__name__) if cause else "connection error"


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
