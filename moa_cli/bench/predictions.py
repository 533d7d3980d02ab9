"""Append-only JSONL files: what a run has finished, kept safe across crashes.

Each record is one line, written whole, flushed and fsync'ed as soon as it exists, so a crash
or `kill -9` loses at most the line being written. Reading back tolerates that half-written last
line (it is cut off before new lines are appended) and keeps the first record of each key, so a
`--resume` neither redoes nor duplicates a finished item.

A run directory holds:
    run.json           what was asked (suite, mix, systems, selection), checked by --resume
    predictions.jsonl  one answer per (generator, item), AlpacaEval's fields plus ours
    grades.jsonl       HumanEval: one test result per (generator, item)
    judgements.jsonl   --judge: one verdict per (baseline, item)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable

from ..errors import UsageError
from ..sanitize import json_dumps


class Ledger:
    """One JSONL file of records identified by `key(record)`."""

    def __init__(self, path: Path, key: Callable[[dict], tuple]):
        self.path = path
        self.key = key
        self.records: dict[tuple, dict] = {}
        self._handle = None

    def load(self) -> "Ledger":
        """Read what is there; a torn last line is dropped and truncated away."""
        if not self.path.exists():
            return self
        data = self.path.read_bytes()
        lines = data.splitlines(keepends=True)
        for number, line in enumerate(lines):
            record = _parse(line)
            if record is not None:
                self.records.setdefault(self.key(record), record)
            elif number == len(lines) - 1 and not line.endswith(b"\n"):
                # A write torn by a crash: cut it off so the next record starts on a clean line.
                with open(self.path, "r+b") as handle:
                    handle.truncate(len(data) - len(line))
        return self

    def __contains__(self, key: tuple) -> bool:
        return key in self.records

    def add(self, record: dict) -> None:
        key = self.key(record)
        if key in self.records:
            return
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")
        self._handle.write(json_dumps(record) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.records[key] = record

    def values(self) -> Iterable[dict]:
        return self.records.values()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _parse(line: bytes) -> dict | None:
    """The record on a whole line, or None for a torn or foreign one (kept in the file, unread)."""
    if not line.endswith(b"\n"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def by_generator_and_item(record: dict) -> tuple:
    return (record.get("generator"), record.get("item"))


def by_baseline_and_item(record: dict) -> tuple:
    return (record.get("baseline"), record.get("item"))


class RunFiles:
    """The files of one run directory."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.predictions = Ledger(directory / "predictions.jsonl", by_generator_and_item)
        self.grades = Ledger(directory / "grades.jsonl", by_generator_and_item)
        self.judgements = Ledger(directory / "judgements.jsonl", by_baseline_and_item)

    def open(self, plan: dict, resume: bool) -> "RunFiles":
        """Start a run here, or with `resume` continue the one that is here. A run is never
        overwritten: a directory that holds another run is an error, not a loss."""
        run_file = self.directory / "run.json"
        if resume:
            if not run_file.exists():
                raise UsageError(f"--resume: {self.directory} holds no run to continue (no run.json)")
            try:
                saved = json.loads(run_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise UsageError(f"--resume: cannot read {run_file}") from None
            if saved != plan:
                changed = sorted(k for k in {*saved, *plan} if saved.get(k) != plan.get(k))
                raise UsageError(f"--resume: the run in {self.directory} was started with other "
                                 f"settings ({', '.join(changed)}); give the same flags, or a new --out")
        else:
            if run_file.exists() or self.predictions.path.exists():
                raise UsageError(f"{self.directory} already holds a run: add --resume to continue it, "
                                 f"or choose another --out")
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                run_file.write_text(json_dumps(plan, indent=2) + "\n", encoding="utf-8")
            except OSError as error:
                raise UsageError(f"cannot write to {self.directory}: {error.strerror or error}") from None
        for ledger in (self.predictions, self.grades, self.judgements):
            ledger.load()
        return self

    def close(self) -> None:
        for ledger in (self.predictions, self.grades, self.judgements):
            ledger.close()
