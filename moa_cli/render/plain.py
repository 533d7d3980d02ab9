"""Plain text for pipes: the final answer streams to stdout, diagnostics go to stderr."""

from __future__ import annotations

import sys
from typing import Mapping, TextIO

from ..events import CallDelta, CallRestarted, Event, TurnResult
from .summary import warning_for


class PlainRenderer:
    def __init__(self, prices: Mapping, out: TextIO | None = None, err: TextIO | None = None, raw: bool = False):
        self.prices = prices
        self.raw = raw  # --raw: the model's bytes exactly as sent
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._wrote_final = False

    def __call__(self, event: Event) -> None:
        if isinstance(event, CallDelta) and event.call.role == "aggregator":
            self.out.write(event.text)
            self.out.flush()
            self._wrote_final = True
        elif isinstance(event, CallRestarted) and event.call.role == "aggregator" and self._wrote_final:
            self.out.write("\n")  # a retried answer starts on a fresh line
        elif (message := warning_for(event)) is not None:
            self.warn(message)

    def warn(self, message: str) -> None:
        self.err.write(f"moa: warning: {message}\n")
        self.err.flush()

    def finish(self, turn: TurnResult, error: str | None = None) -> None:
        if turn.fallback and not self._wrote_final:
            self.out.write(turn.final)
        if self._wrote_final or turn.final:
            self.out.write("\n")
        self.out.flush()
        self._wrote_final = False

    def close(self) -> None:
        pass
