"""Fitting messages to a model's context window: a token estimate and the trimming.

What each round asks (the templates, how answers are put in front of a model) lives with the
strategies (moa_cli/strategies/).
"""

from __future__ import annotations

from typing import Sequence


def estimate_tokens(messages: Sequence[dict]) -> int:
    """A cheap, slightly pessimistic token estimate: ~4 characters a token plus framing."""
    return sum(_tokens(m) for m in messages)


def _tokens(message: dict) -> int:
    return len(str(message.get("content", ""))) // 3 + 4


def fit_messages(messages: tuple[dict, ...], budget: int) -> tuple[tuple[dict, ...], bool]:
    """Trim messages to about `budget` tokens: oldest turns first, then the longest texts.

    The system message and the newest user message are always kept. Returns (messages, trimmed).
    Linear in the number of messages: each is estimated once, and where the kept part starts is
    found from suffix sums, not by dropping one message at a time and estimating all again.
    """
    costs = [_tokens(m) for m in messages]
    total = sum(costs)
    if total <= budget:
        return messages, False
    n_head = 1 if messages and messages[0].get("role") == "system" else 0
    head_cost = sum(costs[:n_head])
    # Drop the oldest exchanges while more than the final user message remains: the kept part
    # starts at the first user message from which the rest fits (never with an answer whose
    # question is gone), else at the last message.
    last = len(messages) - 1
    start, rest_cost = n_head, total - head_cost
    while start < last and (head_cost + rest_cost > budget or messages[start].get("role") != "user"):
        rest_cost -= costs[start]
        start += 1
    rest = [dict(m) for m in messages[:n_head]] + [dict(m) for m in messages[start:]]
    # Still too long (at most the system message and the last one remain): shorten the longest
    # contents (the answers list, a huge paste) in place.
    while estimate_tokens(rest) > budget:
        longest = max(rest, key=lambda m: len(str(m.get("content", ""))))
        text = str(longest.get("content", ""))
        excess_chars = (estimate_tokens(rest) - budget) * 3 + 64
        keep = max(len(text) - excess_chars, 0)
        if keep >= len(text) or len(text) < 64:
            break
        longest["content"] = text[: keep // 2] + "\n[…trimmed…]\n" + text[len(text) - keep // 2 :]
    return tuple(rest), True
