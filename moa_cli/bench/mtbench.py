"""MT-Bench-style multi-turn suites: `moa bench mtbench --judge MODEL` or `moa bench question.jsonl`.

A suite file has MT-Bench's `question.jsonl` shape, one question a line:
    {"question_id": 81, "category": "writing", "turns": ["first message", "second message"],
     "reference": ["optional reference answer per turn"]}
`mtbench` is a 20-question, two-turn suite written for moa over MT-Bench's eight categories
(data/mtbench_mini.jsonl); FastChat's own fastchat/llm_judge/data/mt_bench/question.jsonl loads
as it is.

Each question runs as one real conversation through the turn service: turn 2 is sent after
turn 1's final answer, as `moa chat` would send it. Single-answer grading follows MT-Bench's
rules: an impartial judge at temperature 0 explains briefly, then rates the answer from 1 to 10
as `[[rating]]`; turn 2 is judged on the whole conversation, focusing on the second answer; for
math, reasoning and coding the reference answers are shown and the judge compares against them.
A reply with no readable rating is "no verdict": it counts in no mean.

Files in the run directory: run.json, conversations.jsonl (one per system and question),
ratings.jsonl (one per system, question and turn), mtbench.json and mtbench.md.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import EXIT_INTERRUPTED, EXIT_OK, UsageError
from ..output import print_error, warn
from ..sanitize import json_dumps, one_line_safe
from .predictions import Ledger
from .suites import check_counts, jsonl_records

CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
REFERENCE_CATEGORIES = frozenset({"math", "reasoning", "coding"})  # judged against the reference, as MT-Bench does
BUILTIN = Path(__file__).parent / "data" / "mtbench_mini.jsonl"

# The judging rules are MT-Bench's; the wording is moa's own.
GENERAL_RULES = ("You are an impartial judge. Rate the quality of an AI assistant's response to the user. "
                 "Weigh its helpfulness, relevance, accuracy, depth, creativity and level of detail.")
REFERENCE_RULES = ("You are an impartial judge. Rate an AI assistant's response to the user for correctness "
                   "and helpfulness. A reference answer is given: compare the response with it first, and find "
                   "and correct any mistakes.")
SECOND_TURN = " Judge the assistant's answer to the second user message; the first exchange is context."
VERDICT = (" Start with a short explanation and be as objective as possible. Then give your rating from 1 to 10 "
           "in exactly this format: \"[[rating]]\", for example \"Rating: [[5]]\".")


@dataclass(frozen=True)
class Question:
    id: str
    category: str
    turns: tuple[str, ...]
    reference: tuple[str, ...] = ()


def is_mtbench(name: str) -> bool:
    """`mtbench`, or a .jsonl file whose first record has a "turns" list."""
    if name == "mtbench":
        return True
    path = Path(name)
    if path.suffix != ".jsonl" or not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    first = json.loads(line)
                    return isinstance(first, dict) and isinstance(first.get("turns"), list)
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return False


def load_questions(name: str) -> tuple[str, list[Question]]:
    path = BUILTIN if name == "mtbench" else Path(name)
    questions = []
    for number, record in jsonl_records(path):
        turns = record.get("turns") if isinstance(record, dict) else None
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t.strip() for t in turns):
            raise UsageError(f"{path}:{number}: expected \"turns\": a list of user messages")
        reference = record.get("reference") or []
        if not isinstance(reference, list) or not all(isinstance(r, str) for r in reference):
            raise UsageError(f"{path}:{number}: \"reference\" must be a list of strings")
        qid = record.get("question_id", f"line-{number}")
        questions.append(Question(str(qid), str(record.get("category") or "general"), tuple(turns), tuple(reference)))
    if not questions:
        raise UsageError(f"{path}: no questions")
    if len({q.id for q in questions}) != len(questions):
        raise UsageError(f"{path}: two questions share one question_id")
    return ("mtbench" if name == "mtbench" else path.stem), questions


# ------------------------------------------------------------------------------ judging


def judge_prompt(question: Question, answers: list[str], turn: int) -> str:
    """The judge's message for `turn` (1-based): MT-Bench's single-answer grading."""
    with_reference = question.category in REFERENCE_CATEGORIES and len(question.reference) >= turn
    rules = (REFERENCE_RULES if with_reference else GENERAL_RULES) + (SECOND_TURN if turn > 1 else "") + VERDICT
    parts = [rules, ""]
    if turn == 1:
        parts += ["[Question]", question.turns[0], ""]
        if with_reference:
            parts += ["[Reference answer]", question.reference[0], "[End of reference answer]", ""]
        parts += ["[Assistant's answer]", answers[0], "[End of assistant's answer]"]
        return "\n".join(parts)
    if with_reference:
        parts.append("[Reference conversation]")
        for n in range(turn):
            parts += [f"### User:\n{question.turns[n]}", f"### Reference answer:\n{question.reference[n]}"]
        parts += ["[End of reference conversation]", ""]
    parts.append("[The assistant's conversation with the user]")
    for n in range(turn):
        parts += [f"### User:\n{question.turns[n]}", f"### Assistant:\n{answers[n]}"]
    parts.append("[End of conversation]")
    return "\n".join(parts)


RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
RATING_LOOSE = re.compile(r"\[\s*(\d+(?:\.\d+)?)\s*\]")


def read_rating(text: str) -> float | None:
    """The rating in `[[N]]` (MT-Bench's format; `[N]` as its fallback), from 1 to 10; else None."""
    for pattern in (RATING, RATING_LOOSE):
        match = pattern.search(text)
        if match:
            value = float(match.group(1))
            return value if 1.0 <= value <= 10.0 else None
    return None


# ------------------------------------------------------------------------------ running


def by_conversation(record: dict) -> tuple:
    return (record.get("generator"), record.get("question_id"))


def by_rating(record: dict) -> tuple:
    return (record.get("generator"), record.get("question_id"), record.get("turn"))


class MTBenchRunner:
    def __init__(self, questions: list[Question], systems, judge, pool, directory: Path, *, concurrency: int,
                 progress=None):
        from .runner import CallBudget, _register_secrets

        self.questions, self.systems, self.judge, self.pool = questions, systems, judge, pool
        self.conversations = Ledger(directory / "conversations.jsonl", by_conversation).load()
        self.ratings = Ledger(directory / "ratings.jsonl", by_rating).load()
        self.budget = CallBudget(concurrency)
        self.progress = progress
        _register_secrets(systems[0].settings)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for question in self.questions:
                for system in self.systems:
                    group.create_task(self._question(system, question))

    async def _question(self, system, question: Question) -> None:
        record = self.conversations.records.get((system.name, question.id))
        if record is None:
            record = await self._converse(system, question)
            self.conversations.add(record)
        async with asyncio.TaskGroup() as group:
            for turn in range(1, len(question.turns) + 1):
                if (system.name, question.id, turn) not in self.ratings:
                    group.create_task(self._rate(system, question, record, turn))
        if self.progress is not None:
            self.progress()

    async def _converse(self, system, question: Question) -> dict:
        """The whole conversation, turn after turn: each turn is sent after the previous final
        answer. A failed turn ends it; the turns after it have no answer."""
        from ..config.model_facts import turn_cost
        from ..secrets import redact
        from ..service import TurnService

        service = TurnService(system.settings, pool=self.pool)  # no store: a benchmark is not a session
        turns, history = [], []
        for text in question.turns:
            weight = await self.budget(system.width)
            try:
                outcome = await service.run(text, history=history)
            finally:
                self.budget.release(weight)
            history = [*history, {"role": "user", "content": text},
                       {"role": "assistant", "content": outcome.turn.final}]
            dollars, unpriced = turn_cost(outcome.turn, system.settings.prices)
            usage = outcome.turn.total_usage()
            turns.append({"question": text, "answer": outcome.turn.final, "status": outcome.status,
                          "error": redact(str(outcome.error)) if outcome.error else None,
                          "latency": round(outcome.turn.elapsed, 4),
                          "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens},
                          "cost": None if unpriced else round(dollars, 8)})
            if not outcome.ok:
                break
        return {"generator": system.name, "question_id": question.id, "category": question.category, "turns": turns}

    async def _rate(self, system, question: Question, record: dict, turn: int) -> None:
        from ..service import TurnService

        answered = record["turns"][:turn]
        entry = {"generator": system.name, "question_id": question.id, "category": question.category, "turn": turn,
                 "rating": None, "status": "no answer", "reply": ""}
        if len(answered) == turn and all(t["status"] == "ok" for t in answered):
            prompt = judge_prompt(question, [t["answer"] for t in answered], turn)
            weight = await self.budget(1)
            try:
                outcome = await TurnService(self.judge.settings, pool=self.pool).run(prompt, history=[])
            finally:
                self.budget.release(weight)
            if outcome.ok:
                entry["reply"] = outcome.turn.final
                entry["rating"] = read_rating(outcome.turn.final)
                entry["status"] = "rated" if entry["rating"] is not None else "no verdict"
            else:
                entry["status"] = "judge failed"
        self.ratings.add(entry)

    def close(self) -> None:
        self.conversations.close()
        self.ratings.close()


# ------------------------------------------------------------------------------ report


def build_report(suite: str, questions: list[Question], systems, ratings: Ledger, conversations: Ledger,
                 judge: str) -> dict:
    from . import stats

    rows = []
    turns = max(len(q.turns) for q in questions)
    categories = [c for c in CATEGORIES if any(q.category == c for q in questions)]
    categories += sorted({q.category for q in questions} - set(categories))
    for system in systems:
        mine = [r for r in ratings.values() if r["generator"] == system.name]
        rated = [r for r in mine if r["rating"] is not None]
        scores = [r["rating"] for r in rated]
        ci = stats.bootstrap_ci(scores)
        records = [c for c in conversations.values() if c["generator"] == system.name]
        answered = [t for c in records for t in c["turns"]]
        costs = [t["cost"] for t in answered]
        rows.append({
            "name": system.name, "role": system.role,
            "score": _round(stats.mean(scores)), "ci95": [_round(x) for x in ci] if ci else None,
            "per_turn": {str(n): _round(stats.mean([r["rating"] for r in rated if r["turn"] == n]))
                         for n in range(1, turns + 1)},
            "per_category": {c: _round(stats.mean([r["rating"] for r in rated if r["category"] == c]))
                             for c in categories},
            "rated": len(rated), "no_verdict": sum(1 for r in mine if r["status"] == "no verdict"),
            "no_answer": sum(1 for r in mine if r["status"] == "no answer"),
            "judge_failed": sum(1 for r in mine if r["status"] == "judge failed"),
            "latency_mean": _round(stats.mean([t["latency"] for t in answered if t["status"] == "ok"])),
            "cost": None if any(c is None for c in costs) else round(sum(costs), 6),
        })
    return {"suite": suite, "questions": len(questions), "turns": turns, "judge": judge,
            "quality": "MT-Bench single-answer rating, 1-10", "categories": categories, "systems": rows}


def _round(value, digits: int = 3):
    return None if value is None else round(value, digits)


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def print_report(report: dict, console) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"moa bench {one_line_safe(report['suite'])} · {report['questions']} questions · "
                             f"judge {one_line_safe(report['judge'])}"))
    table.add_column("system", overflow="fold", ratio=1)
    for header in ("score", *(f"turn {n}" for n in range(1, report["turns"] + 1)), "no verdict", "no answer"):
        table.add_column(header, justify="right", no_wrap=True)
    for row in report["systems"]:
        table.add_row(Text(one_line_safe(row["name"] + (" (mix)" if row["role"] == "mix" else ""))),
                      _fmt(row["score"]), *(_fmt(v) for v in row["per_turn"].values()), str(row["no_verdict"]),
                      str(row["no_answer"]))
    console.print(table)
    categories = Table(title=Text("by category"))
    categories.add_column("system", overflow="fold", ratio=1)
    for category in report["categories"]:
        categories.add_column(Text(one_line_safe(category)), justify="right", no_wrap=True)
    for row in report["systems"]:
        categories.add_row(Text(one_line_safe(row["name"])), *(_fmt(v) for v in row["per_category"].values()))
    console.print(categories)


def markdown(report: dict) -> str:
    def md(text) -> str:
        return one_line_safe(str(text)).replace("|", "\\|")

    turn_headers = [f"turn {n}" for n in range(1, report["turns"] + 1)]
    lines = [f"# moa bench {md(report['suite'])}: MT-Bench-style, judge {md(report['judge'])}", "",
             f"{report['questions']} questions. {report['quality']}; a reply with no rating is no verdict and counts "
             "in no mean.", "",
             "| system | score | 95% CI | " + " | ".join(turn_headers) + " | no verdict | no answer | cost |",
             "|---" * (6 + len(turn_headers)) + "|"]
    for row in report["systems"]:
        ci = f"{row['ci95'][0]:.2f}–{row['ci95'][1]:.2f}" if row["ci95"] else "—"
        cost = "—" if row["cost"] is None else f"${row['cost']:.4f}"
        lines.append(f"| {md(row['name'])} | {_fmt(row['score'])} | {ci} | "
                     + " | ".join(_fmt(v) for v in row["per_turn"].values())
                     + f" | {row['no_verdict']} | {row['no_answer']} | {cost} |")
    lines += ["", "| system | " + " | ".join(md(c) for c in report["categories"]) + " |",
              "|---" * (1 + len(report["categories"])) + "|"]
    for row in report["systems"]:
        lines.append(f"| {md(row['name'])} | " + " | ".join(_fmt(v) for v in row["per_category"].values()) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ command


def run(suite_name: str, *, mix: str | None, baselines: list[str], concurrency: int | None, out: str | None,
        resume: bool, limit: int | None, sample: int | None, sample_seed: int | None, judge: str | None) -> int:
    from rich.console import Console

    from ..config import Overrides, load_source
    from .running import DEFAULT_CONCURRENCY, all_local, run_loop
    from .predictions import RunFiles
    from .runner import judge_system, open_shared_pool, systems_for

    if not judge:
        raise UsageError("--judge: an MT-Bench suite is graded by a judge model; give --judge PROVIDER:MODEL")
    check_counts(concurrency=concurrency, limit=limit, sample=sample)
    source = load_source()
    settings = source.settings(Overrides(mix=mix))
    for notice in settings.all_notices():
        warn(notice)
    suite, questions = load_questions(suite_name)
    if sample is not None and sample < len(questions):
        import random

        chosen = set(random.Random(sample_seed).sample(range(len(questions)), sample))
        questions = [q for i, q in enumerate(questions) if i in chosen]
    if limit is not None:
        questions = questions[:limit]
    systems = systems_for(source, settings, baselines)
    judge_as = judge_system(source, settings, judge)
    directory = Path(out) if out else Path("moa-bench") / f"{suite}-{settings.mix.name}"
    plan = {"suite": suite_name, "kind": "mtbench", "mix": settings.mix.name, "systems": [s.name for s in systems],
            "judge": judge_as.name, "items": [q.id for q in questions]}
    if concurrency is None:
        concurrency = 1 if all_local(settings, [*systems, judge_as]) else DEFAULT_CONCURRENCY
    pool = open_shared_pool(systems, [judge_as], concurrency)
    try:
        RunFiles(directory).open(plan, resume).close()  # run.json: the same never-overwrite rules as bench
    except BaseException:
        asyncio.run(pool.aclose())
        raise
    console = Console(stderr=True, emoji=False, highlight=False)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("mt-bench", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console)
    task = bar.add_task("", total=len(questions) * len(systems))
    runner = MTBenchRunner(questions, systems, judge_as, pool, directory,
                           concurrency=concurrency, progress=lambda: bar.advance(task))

    async def main():
        try:
            await runner.run()
        finally:
            await pool.aclose()

    try:
        with bar:
            run_loop(main)
    except KeyboardInterrupt:
        print_error(f"interrupted: what is done is saved in {directory}; continue with --resume")
        return EXIT_INTERRUPTED
    finally:
        runner.close()
    report = build_report(suite, questions, systems, runner.ratings, runner.conversations, judge_as.name)
    (directory / "mtbench.json").write_text(json_dumps(report, indent=2) + "\n", encoding="utf-8")
    (directory / "mtbench.md").write_text(markdown(report), encoding="utf-8")
    print_report(report, Console(emoji=False, highlight=False))
    unrated = sum(r["no_verdict"] for r in report["systems"])
    if unrated:
        warn(f"{unrated} judge replies had no [[rating]]: counted as no verdict")
    warn(f"wrote {one_line_safe(str(directory / 'mtbench.md'))}, {one_line_safe(str(directory / 'mtbench.json'))}")
    return EXIT_OK
