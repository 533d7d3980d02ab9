"""A pairwise LLM judge: is the mix's answer better than a baseline's?

Judges favour whichever answer they read first (or second), so each pair is asked twice with
the positions swapped. The mix wins an item only when both orders pick it, loses only when both
pick the baseline; any disagreement, or a verdict that cannot be read, is a tie.
"""

from __future__ import annotations

import re

JUDGE_PROMPT = """Two assistants answered the same instruction. Decide which answer is better: \
more helpful, correct, and relevant to what was asked. Do not let the order of the answers or \
their length sway you.

[Instruction]
{instruction}

[Answer A]
{first}

[Answer B]
{second}

Reply with exactly one letter: A if Answer A is better, B if Answer B is better."""

BRACKETED = re.compile(r"\[\[\s*([AB])\s*\]\]")
LEADING = re.compile(r"^\W*([AB])\b")
ANYWHERE = re.compile(r"\b([AB])\b")


def judge_question(instruction: str, first: str, second: str) -> str:
    return JUDGE_PROMPT.format(instruction=instruction, first=first, second=second)


def read_verdict(text: str) -> str | None:
    """'A' or 'B' from the judge's reply: `[[A]]`, a reply starting with the letter, or the
    first lone A or B in it; None when it names neither."""
    for pattern in (BRACKETED, LEADING, ANYWHERE):
        match = pattern.search(text.strip())
        if match:
            return match.group(1)
    return None


def combine(mix_first: str | None, mix_second: str | None) -> str:
    """The item's result for the mix from the verdict with the mix as A, and with the mix as B."""
    picked_first = {"A": "mix", "B": "baseline"}.get(mix_first or "")
    picked_second = {"B": "mix", "A": "baseline"}.get(mix_second or "")
    if picked_first == picked_second == "mix":
        return "win"
    if picked_first == picked_second == "baseline":
        return "loss"
    return "tie"


def without_judge(mix_ok: bool, baseline_ok: bool) -> str | None:
    """The result when one side has no answer (its turn failed): nothing to ask a judge."""
    if mix_ok and baseline_ok:
        return None
    if mix_ok:
        return "win"
    return "loss" if baseline_ok else "tie"
