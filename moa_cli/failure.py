"""Why a model call did not answer, as a value.

Providers raise `ProviderError`s that carry a `FailureKind`; the engine turns every failed, cut or
cancelled call into a `Failure` on its `CallResult`; renderers, the server, bench and the store
match on `kind` (and `status`), never on the wording of a message, so a message can be reworded
freely. This module imports nothing of moa's, so anything may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class FailureKind(str, Enum):
    """What went wrong. A `str` enum: JSON and SQLite keep the plain value ("http", ...)."""

    HTTP = "http"  # the server refused or failed the request (an HTTP status), or said so mid-stream
    TIMEOUT = "timeout"  # the HTTP client gave up connecting or waiting for a read (--timeout)
    IDLE = "idle"  # the stream stayed open but sent no output for --timeout seconds
    DEADLINE = "deadline"  # the call's total --deadline passed, retries included
    CONNECTION = "connection"  # no connection, or it dropped before the answer was complete
    EMPTY = "empty"  # the model answered, with nothing
    CUT = "cut"  # the round stopped waiting for this reference (--proposer-deadline or a stall)
    CANCELLED = "cancelled"  # the whole turn was cancelled (Ctrl-C, SIGTERM, a client that left)
    INTERNAL = "internal"  # anything else: a malformed stream, a local model's error, a bug


# A few words per kind, for a panel's subtitle; `{status}` is the HTTP status.
_SHORT = {
    FailureKind.HTTP: "HTTP {status}",
    FailureKind.TIMEOUT: "timed out",
    FailureKind.IDLE: "went silent",
    FailureKind.DEADLINE: "past its deadline",
    FailureKind.CONNECTION: "connection failed",
    FailureKind.EMPTY: "empty answer",
    FailureKind.CUT: "cut: too slow",
    FailureKind.CANCELLED: "cancelled",
}
SHORT_LIMIT = 32  # characters of an unclassified failure's detail a short description keeps


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    detail: str = ""  # what happened, one sentence without the call's label; secrets already removed
    status: int | None = None  # the HTTP status, when the server sent one
    retryable: bool = False  # whether trying the same call again could help
    provider: str = ""
    model: str = ""  # the provider's model id

    @property
    def label(self) -> str:
        """`provider:model`, the name moa gives a call everywhere."""
        return f"{self.provider}:{self.model}" if self.provider else self.model

    def describe(self, short: bool = False) -> str:
        """The failure in a sentence (`HTTP 500 (overloaded)`), or in a few words with `short`
        (`HTTP 500`). Never includes the label: callers name the call themselves."""
        if not short:
            return self.detail or self.describe(short=True)
        if self.kind is FailureKind.HTTP and self.status is None:
            return "server error"
        template = _SHORT.get(self.kind)
        if template is not None:
            return template.format(status=self.status)
        text = " ".join(self.detail.split()) or self.kind.value
        return text if len(text) <= SHORT_LIMIT else text[: SHORT_LIMIT - 1] + "…"

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "status": self.status, "retryable": self.retryable, "detail": self.detail}
