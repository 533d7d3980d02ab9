"""Fitting messages to a model's context window: a token estimate and the trimming.

What each round asks (the templates, how answers are put in front of a model) lives with the
strategies (moa_cli/strategies/).
"""

from __future__ import annotations

from typing import Sequence


def estimate_tokens(messages: Sequence[dict]) -> int:
    """A cheap, slightly pessimistic token estimate: ~4 characters a token plus framing."""
    return sum(len(str(m.get("content", ""))) // 3 + 4 for m in messages)


def fit_messages(messages: tuple[dict, ...], budget: int) -> tuple[tuple[dict, ...], bool]:
    """Trim messages to about `budget` tokens: oldest turns first, then the longest texts.

    The system message and the newest user message are always kept. Returns (messages, trimmed).
    """
    if estimate_tokens(messages) <= budget:
        return messages, False
    items = [dict(m) for m in messages]
    head = [m for m in items[:1] if m.get("role") == "system"]
    body = items[len(head):]
    # Drop the oldest exchanges while more than the final user message remains; never leave an
    # answer whose question is gone at the front.
    while len(body) > 1 and estimate_tokens(head + body) > budget:
        body.pop(0)
        while len(body) > 1 and body[0].get("role") != "user":
            body.pop(0)
    # Still too long: shorten the longest contents (the answers list, a huge paste) in place.
    rest = head + body
    while estimate_tokens(rest) > budget:
        longest = max(rest, key=lambda m: len(str(m.get("content", ""))))
        text = str(longest.get("content", ""))
        excess_chars = (estimate_tokens(rest) - budget) * 3 + 64
        keep = max(len(text) - excess_chars, 0)
        if keep >= len(text) or len(text) < 64:
            break
        longest["content"] = text[: keep // 2] + "\n[…trimmed…]\n" + text[len(text) - keep // 2 :]
    return tuple(rest), True
