"""`--json`: one JSON object per turn on stdout; warnings still go to stderr."""

from __future__ import annotations

import sys
from typing import Mapping

from ..events import Event, TurnResult
from ..config.model_facts import turn_cost
from ..sanitize import json_dumps, one_line_safe
from .summary import warning_for


class JsonRenderer:
    def __init__(self, prices: Mapping):
        self.prices = prices
        self.notices: list[str] = []

    def __call__(self, event: Event) -> None:
        message = warning_for(event)
        if message is not None:
            self._warn(message)

    def _warn(self, message: str) -> None:
        self.notices.append(message)
        sys.stderr.write(f"moa: warning: {one_line_safe(message)}\n")

    def finish(self, turn: TurnResult, error: str | None = None) -> None:
        """Print the turn; a failed turn (with `error`) still shows every answer that arrived."""
        data = turn.to_dict()
        data["error"] = error
        dollars, unknown = turn_cost(turn, self.prices)
        data["usage"]["cost_usd"] = None if unknown else round(dollars, 6)
        data["usage"]["unpriced_models"] = unknown
        data["warnings"] = self.notices
        sys.stdout.write(json_dumps(data) + "\n")
        sys.stdout.flush()
        self.notices = []

    def close(self) -> None:
        pass
