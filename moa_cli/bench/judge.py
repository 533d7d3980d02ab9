"""A pairwise LLM judge: is the mix's answer better than a baseline's?

The judge answers in the MT-Bench / AlpacaEval format: it may reason first, then gives its
verdict as `[[A]]`, `[[B]]` or `[[C]]` (a tie). The verdict is read from that marker only, the
last one in the reply (a judge that quotes the format before deciding still decides last); a
reply without one is "no verdict", never a tie.

Judges favour whichever answer they read first (or second), so each pair is asked twice with
the positions swapped. The mix wins an item only when both orders pick it, loses only when both
pick the baseline; two readable verdicts that disagree (or a [[C]]) are a tie; an item with a
missing verdict in either order has no verdict. How often the two orders agree is the judge's
position consistency.
"""

from __future__ import annotations

import re

JUDGE_PROMPT = """Please act as an impartial judge and evaluate the two answers given by two AI \
assistants to the instruction below. Choose the answer that follows the instruction and answers it \
better: more helpful, correct, relevant and clear. Do not let the order of the answers, their length \
or the assistants' names sway you. Begin with a short explanation, then give your final verdict \
strictly in this format: "[[A]]" if Answer A is better, "[[B]]" if Answer B is better, and "[[C]]" \
for a tie.

[Instruction]
{instruction}

[Answer A]
{first}

[Answer B]
{second}"""

VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")
NO_VERDICT = "none"  # the item's result when a verdict is missing in either order


def judge_question(instruction: str, first: str, second: str) -> str:
    return JUDGE_PROMPT.format(instruction=instruction, first=first, second=second)


def read_verdict(text: str) -> str | None:
    """'A', 'B' or 'C' from the judge's final `[[X]]` marker; None when the reply has none."""
    found = VERDICT.findall(text or "")
    return found[-1] if found else None


def combine(mix_first: str | None, mix_second: str | None) -> str:
    """The item's result for the mix from the verdict with the mix as A, and with the mix as B:
    win, loss, tie, or `none` when either verdict is missing."""
    if mix_first is None or mix_second is None:
        return NO_VERDICT
    picked_first = {"A": "mix", "B": "baseline", "C": "tie"}[mix_first]
    picked_second = {"B": "mix", "A": "baseline", "C": "tie"}[mix_second]
    if picked_first == picked_second == "mix":
        return "win"
    if picked_first == picked_second == "baseline":
        return "loss"
    return "tie"


def consistent(mix_first: str | None, mix_second: str | None) -> bool | None:
    """Whether both orders named the same answer (or both a tie); None without two verdicts."""
    if mix_first is None or mix_second is None:
        return None
    return {"A": "mix", "B": "baseline", "C": "tie"}[mix_first] == {"B": "mix", "A": "baseline", "C": "tie"}[mix_second]


def without_judge(mix_ok: bool, baseline_ok: bool) -> str | None:
    """The result when one side has no answer (its turn failed): nothing to ask a judge."""
    if mix_ok and baseline_ok:
        return None
    if mix_ok:
        return "win"
    return "loss" if baseline_ok else "tie"
