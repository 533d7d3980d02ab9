"""The numbers behind the one-line turn summary: time, tokens per role, cost."""

from __future__ import annotations

from typing import Mapping

from ..config.model_facts import turn_cost
from ..events import CallFinished, CallResult, Notice, TurnResult
from ..failure import FailureKind
from ..sanitize import one_line_safe
from ..strategies import Role

_ROLE_NAMES = {Role.REFERENCE: "refs", Role.REVIEWER: "reviews", Role.AGGREGATOR: "aggregator"}


def summary_line(turn: TurnResult, prices: Mapping) -> str:
    """Time, tokens and cost of a turn, on one terminal-safe line (it names models)."""
    parts = [f"{turn.elapsed:.2f}s"]
    for role, usage in turn.usage_by_role().items():
        name = _ROLE_NAMES.get(role, str(role))
        parts.append(f"{name} {usage.prompt_tokens:,} in / {usage.completion_tokens:,} out")
    dollars, unknown = turn_cost(turn, prices)
    if unknown:
        parts.append(f"${dollars:.4f} + unpriced ({', '.join(unknown)})" if dollars else "cost unknown")
    else:
        parts.append(f"${dollars:.4f}")
    if turn.fallback:
        parts.append(f"fallback: {turn.fallback}")
    return one_line_safe(" · ".join(parts))


def truncated(result: CallResult | None) -> bool:
    """The call succeeded but stopped at its max_tokens limit: its answer is cut short."""
    return result is not None and result.status == "ok" and result.finish_reason == "length"


def warning_for(event) -> str | None:
    """The warning an engine event deserves on stderr, if any: every renderer shows the same ones."""
    if isinstance(event, Notice):
        return event.message
    if not isinstance(event, CallFinished):
        return None
    if event.call.role != Role.AGGREGATOR and event.result.status in ("failed", "cut"):
        return describe_failure(event.result)
    if event.call.role == "aggregator" and truncated(event.result):
        tokens = event.result.usage.completion_tokens
        return (f"the answer was truncated: {event.call.label} stopped at its max_tokens limit"
                f"{f' ({tokens} tokens)' if tokens else ''}; raise --max-tokens for the whole answer")
    return None


def describe_failure(result: CallResult) -> str:
    label, failure = result.call.label, result.failure
    reason = failure.describe() if failure else result.status
    if failure is not None and failure.kind is FailureKind.CUT:  # a cut's description says "cut: ..."
        return f"{result.call.role} {label} (round {result.call.round}) was {reason}; dropped from the round"
    return f"{result.call.role} {label} (round {result.call.round}) failed: {reason}; dropped from the round"
