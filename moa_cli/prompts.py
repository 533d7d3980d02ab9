"""How earlier answers are put in front of a model.

Every function returns a fresh tuple of fresh dicts: no caller's list is ever mutated, and each
answer is passed as one whole string.
"""

from __future__ import annotations

import random
import re
from typing import Sequence

SYNTHESIZE = (
    "Several assistants have answered the latest user message. Their answers are listed below. "
    "Judge them critically: some may be wrong, biased or incomplete. Do not copy any one of them "
    "and do not mention that there were several answers. Write one reply of your own that is "
    "accurate, complete and well organised, using the best of what they offer.\n\n"
    "Answers:\n{answers}"
)

RANK = (
    "Several assistants have answered the latest user message. Their answers are listed below. "
    "Choose the single best answer and reply with its text exactly as written, with nothing "
    "before or after it.\n\nAnswers:\n{answers}"
)

CODING = (
    "Several programmers have answered the latest request. Their answers are listed below. "
    "Check each for bugs, missed edge cases and wrong APIs. Write one final answer with correct, "
    "complete, runnable code and a brief explanation. Do not mention the other answers.\n\n"
    "Answers:\n{answers}"
)

_PLACEHOLDER = re.compile(r"\{(answers|question)\}")

STRATEGIES = {"synthesize": SYNTHESIZE, "rank": RANK, "coding": CODING}


def number_answers(answers: Sequence[str]) -> str:
    return "\n\n".join(f"{i}. {text.strip()}" for i, text in enumerate(answers, 1))


def last_user_text(messages: Sequence[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def template_for(strategy: str) -> str:
    return STRATEGIES.get(strategy, strategy)


def build_messages(
    conversation: Sequence[dict],
    *,
    system: str | None = None,
    answers: Sequence[str] = (),
    strategy: str = "synthesize",
    shuffle_seed: int | None = None,
) -> tuple[dict, ...]:
    """The messages for one call: an optional system prompt, the earlier answers, the conversation.

    With no earlier answers (round 1, or an aggregator answering alone) the conversation is sent as
    it is, after the model's own system prompt. Otherwise the answers go into the system message
    under the strategy's instruction, so the conversation itself stays untouched.
    """
    parts = [system] if system else []
    if answers:
        answers = list(answers)
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(answers)
        values = {"answers": number_answers(answers), "question": last_user_text(conversation)}
        # One pass over the template only: a `{question}` inside an answer (f-string code, say)
        # is the answer's own text and is never replaced.
        parts.append(_PLACEHOLDER.sub(lambda m: values[m.group(1)], template_for(strategy)))
    head = ({"role": "system", "content": "\n\n".join(parts)},) if parts else ()
    return head + tuple(dict(m) for m in conversation)


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
