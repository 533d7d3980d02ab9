"""What a slash command may see and do of the chat it runs in: the protocol between `repl` (which
provides it) and the command modules (`slash`, `slash_extras`, which use it). Its own module, below
all of them, so that none of them imports another to name it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Protocol

if TYPE_CHECKING:
    from .config import Settings
    from .store import Store, TurnRecord


class ChatState(Protocol):
    """What a slash command may see and do of the chat it runs in (`repl.Chat` is one). The
    commands depend on this, not on the REPL, so `repl` imports `slash` and never the reverse."""

    piped: bool  # input comes from a pipe: output goes to stderr, no Rich rendering
    show_proposers: bool
    attachments: list  # files (`-f`, `/file`) that go with the next message
    role: str | None  # the role the chat runs under (roles.py), saved with the session

    @property
    def settings(self) -> "Settings": ...

    @property
    def store(self) -> "Store | None": ...

    @property
    def session_id(self) -> int | None: ...

    def turns(self) -> "list[TurnRecord]": ...

    def say(self, text: str) -> None: ...

    def ask(self, question: str, replaces: "TurnRecord | None" = None) -> Awaitable: ...

    def change(self, **change) -> Awaitable[None]: ...

    def new(self) -> None: ...
