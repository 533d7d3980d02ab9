"""How earlier answers are put in front of a model: helpers every strategy shares.

Each function returns fresh values: no caller's list is ever mutated, and each answer is passed
as one whole string. Answers go into the system message, so the conversation stays untouched.
"""

from __future__ import annotations

import random
import re
from typing import Sequence

_PLACEHOLDER = re.compile(r"\{(answers|question)\}")


def number_answers(answers: Sequence[str]) -> str:
    return "\n\n".join(f"{i}. {text.strip()}" for i, text in enumerate(answers, 1))


def last_user_text(messages: Sequence[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def fill(template: str, answers: Sequence[str], conversation: Sequence[dict]) -> str:
    """`template` with its {answers} (numbered) and {question} (the last user message) filled in.
    One pass over the template only: a `{question}` inside an answer (f-string code, say) is the
    answer's own text and is never replaced."""
    values = {"answers": number_answers(answers), "question": last_user_text(conversation)}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def with_system(conversation: Sequence[dict], *parts: str | None) -> tuple[dict, ...]:
    """The conversation after one system message made of the given parts (empty ones left out);
    with no parts at all, the conversation as it is."""
    text = "\n\n".join(p for p in parts if p)
    head = ({"role": "system", "content": text},) if text else ()
    return head + tuple(dict(m) for m in conversation)


def with_answers(
    conversation: Sequence[dict],
    *,
    system: str | None,
    answers: Sequence[str],
    template: str,
    shuffle_seed: int | None = None,
) -> tuple[dict, ...]:
    """The messages for one call: the model's system prompt, the earlier answers under
    `template`'s instruction, then the conversation.

    With no earlier answers (round 1, or an aggregator answering alone) the conversation is sent
    as it is, after the model's own system prompt.
    """
    instruction = None
    if answers:
        answers = list(answers)
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(answers)
        instruction = fill(template, answers, conversation)
    return with_system(conversation, system, instruction)


def letter(index: int) -> str:
    """A, B, ..., Z, AA, AB, ...: anonymous labels for answers."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("A") + rest) + name
    return name
