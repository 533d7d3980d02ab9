"""Consumers of engine events: live terminal panels, plain text, JSON.

A renderer is called with every engine event, then `finish(turn, error)` once the turn is over
(or `close()` when it was cancelled). The turn service calls them, and a renderer that raises is
detached without harming the turn. All renderers share the summary arithmetic in `summary.py`.
"""

from __future__ import annotations

import sys
from typing import Mapping, Protocol

from ..events import Event, TurnResult


class Renderer(Protocol):
    def __call__(self, event: Event) -> None: ...

    def finish(self, turn: TurnResult, error: str | None = None) -> None:
        """The turn is over (`error` says why it failed, if it did)."""

    def close(self) -> None:
        """The turn was cancelled: stop drawing, keep what is on screen."""


def pick_renderer(
    *, json_output: bool, prices: Mapping, show_proposers: bool = True, force_plain: bool = False,
    raw: bool = False, gap_before: bool = False,
) -> Renderer:
    """JSON when asked; live panels when stdout is a terminal; plain text otherwise."""
    if json_output:
        from .json_out import JsonRenderer

        return JsonRenderer(prices)
    if not force_plain and sys.stdout.isatty():
        from .live import LiveRenderer

        return LiveRenderer(prices, show_proposers=show_proposers)
    from .plain import PlainRenderer

    return PlainRenderer(prices, raw=raw, gap_before=gap_before)
