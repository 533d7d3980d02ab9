"""The one contract every provider fulfils: stream a chat completion, then report usage.

A provider is anything with `name` and `stream(request)`; `stream` is an async generator of
`Chunk`s. Text arrives in chunks with `text`; the last chunk may carry `usage`. Errors leave a
provider only as `moa_cli.errors.ProviderError` (or a subclass) with its `kind` set (an HTTP
status, a timeout, a lost connection, ...; see failure.py): callers never see SDK types, and
never need to read the message to know what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Protocol


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True)
class ChatRequest:
    model: str  # the provider's own model id (no "provider:" prefix)
    messages: tuple[dict, ...]  # OpenAI-style {"role", "content"} dicts; never mutated
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None  # the longest silence allowed, seconds: the HTTP read timeout (connect: at most 10 s)
    seed: int | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Chunk:
    text: str = ""
    usage: Usage | None = None
    finish_reason: str | None = None  # why the model stopped, on the chunk that says so
    note: str | None = None  # progress before the first token ("loading MODEL…"), for the user
    # The call waits in line for a shared model (the local provider): the caller's idle clock and
    # deadline stop until a chunk with `began` says generation starts. Waiting is not silence.
    queued: bool = False
    began: bool = False


class Provider(Protocol):
    name: str

    def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]: ...

    async def list_models(self) -> list[str]: ...

    async def aclose(self) -> None: ...


class CallableProvider:
    """A provider built from a plain async-generator function: the in-memory test double.

    `fn(request)` yields strings or Chunks; raising a ProviderError simulates a failing model.
    """

    def __init__(self, fn: Callable[[ChatRequest], AsyncIterator[str | Chunk]], name: str = "memory"):
        self.name = name
        self._fn = fn

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        async for piece in self._fn(request):
            yield piece if isinstance(piece, Chunk) else Chunk(text=piece)

    async def list_models(self) -> list[str]:
        return []

    async def aclose(self) -> None:
        return None

