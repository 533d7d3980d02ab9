"""Consumers of engine events: live terminal panels, plain text, JSON.

A renderer is called with every engine event, then `finish(turn)` once the turn is over. All
renderers share the summary arithmetic in `summary.py`.
"""

from __future__ import annotations

import sys
from typing import Mapping, Protocol

from ..events import Event, TurnResult


class Renderer(Protocol):
    def __call__(self, event: Event) -> None: ...

    def finish(self, turn: TurnResult) -> None: ...

    def close(self) -> None: ...


def pick_renderer(
    *, json_output: bool, prices: Mapping, show_proposers: bool = True, force_plain: bool = False
) -> Renderer:
    """JSON when asked; live panels when stdout is a terminal; plain text otherwise."""
    if json_output:
        from .json_out import JsonRenderer

        return JsonRenderer(prices)
    if not force_plain and sys.stdout.isatty():
        from .live import LiveRenderer

        return LiveRenderer(prices, show_proposers=show_proposers)
    from .plain import PlainRenderer

    return PlainRenderer(prices)
