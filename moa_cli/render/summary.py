"""The numbers behind the one-line turn summary: time, tokens per role, cost."""

from __future__ import annotations

from typing import Mapping

from ..config.catalog import turn_cost
from ..events import CallResult, TurnResult


def summary_line(turn: TurnResult, prices: Mapping) -> str:
    parts = [f"{turn.elapsed:.2f}s"]
    for role, usage in turn.usage_by_role().items():
        name = "refs" if role == "reference" else "aggregator"
        parts.append(f"{name} {usage.prompt_tokens:,} in / {usage.completion_tokens:,} out")
    dollars, unknown = turn_cost(turn, prices)
    if unknown:
        parts.append(f"${dollars:.4f} + unpriced ({', '.join(unknown)})" if dollars else "cost unknown")
    else:
        parts.append(f"${dollars:.4f}")
    if turn.fallback:
        parts.append(f"fallback: {turn.fallback}")
    return " · ".join(parts)


def warning_for(event) -> str | None:
    """The warning an engine event deserves on stderr, if any: every renderer shows the same ones."""
    from ..events import CallFinished, Notice

    if isinstance(event, Notice):
        return event.message
    if isinstance(event, CallFinished) and event.call.role == "reference" and event.result.status in ("failed", "cut"):
        return describe_failure(event.result)
    return None


def describe_failure(result: CallResult) -> str:
    what = "cut (too slow)" if result.status == "cut" else "failed"
    label = result.call.label
    error = (result.error or "").removeprefix(f"{label}: ")  # errors already start with the label
    return f"reference {label} (round {result.call.round}) {what}: {error}; dropped from the round"
