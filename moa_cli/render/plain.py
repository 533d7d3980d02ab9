"""Plain text for pipes: the final answer streams to stdout, diagnostics go to stderr.

The answer is made terminal-safe (control characters shown as `\\x1b`), since a pipe often ends
on a terminal anyway (`moa ask q | less -R`, `| tee`); `--raw` keeps the model's bytes exactly.
"""

from __future__ import annotations

import sys
from typing import Mapping, TextIO

from ..events import CallDelta, CallRestarted, Event, TurnResult
from ..sanitize import one_line_safe, terminal_safe
from .summary import warning_for


class PlainRenderer:
    def __init__(self, prices: Mapping, out: TextIO | None = None, err: TextIO | None = None, raw: bool = False,
                 gap_before: bool = False):
        self.prices = prices
        self.raw = raw  # --raw: the model's bytes exactly as sent
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.gap_before = gap_before  # a blank line before this answer (piped chat: not the first)
        self._wrote_final = False

    def _write(self, text: str) -> None:
        if not self._wrote_final and self.gap_before:
            self.out.write("\n")
        self.out.write(text if self.raw else terminal_safe(text))
        self.out.flush()
        self._wrote_final = True

    def __call__(self, event: Event) -> None:
        if isinstance(event, CallDelta) and event.call.role == "aggregator":
            self._write(event.text)
        elif isinstance(event, CallRestarted) and event.call.role == "aggregator" and self._wrote_final:
            self.out.write("\n")  # a retried answer starts on a fresh line
        elif (message := warning_for(event)) is not None:
            self.warn(message)

    def warn(self, message: str) -> None:
        self.err.write(f"moa: warning: {one_line_safe(message)}\n")
        self.err.flush()

    def finish(self, turn: TurnResult, error: str | None = None) -> None:
        if turn.fallback:
            # The aggregator failed, maybe part-way through its answer: the fragment already went
            # out, so the reference answer that stands in for it starts on a line of its own.
            if self._wrote_final:
                self.out.write("\n")
            self._write(turn.final)
        if self._wrote_final:
            self.out.write("\n")
        self.out.flush()
        self._wrote_final = False

    def close(self) -> None:
        pass
