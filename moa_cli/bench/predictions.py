"""Append-only JSONL files: what a run has finished, kept safe across crashes.

Each record is one line, written whole, flushed and fsync'ed as soon as it exists, so a crash
or `kill -9` loses at most the line being written. Reading back tolerates that half-written last
line (it is cut off before new lines are appended) and keeps the first record of each key, so a
`--resume` neither redoes nor duplicates a finished item.

Every string written goes through the secret registry's `redact` first, whatever field it is in.

One run at a time: a run holds an exclusive lock (flock) on `.moa-bench.lock` in its directory,
and a second run on the same directory is refused at once.

A run directory holds:
    run.json           what was asked: the suite's content hash, the full definition of every
                       system and of the judge, the selection; --resume refuses any change
    predictions.jsonl  one answer per (generator, item), AlpacaEval's fields plus ours
    grades.jsonl       HumanEval: one test result per (generator, item)
    judgements.jsonl   --judge: one verdict per (baseline, item)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable

from ..errors import EXIT_OUTPUT, MoaError, UsageError
from ..sanitize import json_dumps
from ..secrets import redact

LOCK_NAME = ".moa-bench.lock"
# Every file a run writes: a new run refuses a directory holding any of them (it did not create them).
RUN_FILE_NAMES = ("run.json", "predictions.jsonl", "grades.jsonl", "judgements.jsonl", "report.md", "report.json",
                  "quality_cost.png")


class OutputError(MoaError):
    """The run's files could not be written (a full disk, a read-only directory): exit code 5."""

    exit_code = EXIT_OUTPUT


def redacted(value):
    """`value` with every string in it (keys too) scrubbed of secrets."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redacted(k): redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(v) for v in value]
    return value


class Ledger:
    """One JSONL file of records identified by `key(record)`."""

    def __init__(self, path: Path, key: Callable[[dict], tuple], sync_every: int = 1):
        self.path = path
        self.key = key
        self.records: dict[tuple, dict] = {}
        self._handle = None
        # fsync after this many records (and on close). Every record is flushed to the OS at once,
        # so a kill -9 loses nothing either way; a larger value only bounds what a power cut may
        # lose, and spares a search thousands of blocking fsyncs (about 5 ms each).
        self.sync_every = sync_every
        self._unsynced = 0

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
        """Append `record` (once per key): written, flushed and fsync'ed before this returns
        (every `sync_every` records)."""
        if self._write(record) and self._sync_due():
            os.fsync(self._handle.fileno())

    async def save(self, record: dict) -> None:
        """`add` for the event loop: the write and flush happen at once (a kill -9 after this
        call loses nothing), the fsync in a worker thread, so the loop keeps running meanwhile;
        it returns once the record is on disk."""
        import asyncio

        if self._write(record) and self._sync_due():
            await asyncio.to_thread(os.fsync, self._handle.fileno())

    def _sync_due(self) -> bool:
        self._unsynced += 1
        if self._unsynced < self.sync_every:
            return False
        self._unsynced = 0
        return True

    def _write(self, record: dict) -> bool:
        key = self.key(record)
        if key in self.records:
            return False
        record = redacted(record)
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")
        self._handle.write(json_dumps(record) + "\n")
        self._handle.flush()
        self.records[key] = record
        return True

    def drop(self, keys: set[tuple]) -> None:
        """Forget the records with these keys, rewriting the file without them (written aside,
        fsync'ed, then renamed over it, so a crash leaves the old file or the new, whole)."""
        if not keys & self.records.keys():
            return
        self.close()
        self.records = {k: r for k, r in self.records.items() if k not in keys}
        aside = self.path.with_name(self.path.name + ".new")
        with open(aside, "w", encoding="utf-8") as handle:
            handle.writelines(json_dumps(record) + "\n" for record in self.records.values())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(aside, self.path)

    def values(self) -> Iterable[dict]:
        return self.records.values()

    def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            try:
                if self._unsynced:
                    os.fsync(handle.fileno())
                handle.close()
            except OSError:
                pass  # the write that failed was already reported; what is on disk stays readable


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

    def open(self, plan: dict, resume: bool, retry_failed: bool = False) -> "RunFiles":
        """Start a run here, or with `resume` continue the one that is here (with `retry_failed`,
        after forgetting the answers that failed). A run is never overwritten, nor any file it
        did not create, and a directory another run holds is refused at once."""
        run_file = self.directory / "run.json"
        lock_path = self.directory / LOCK_NAME
        created_lock = not lock_path.exists()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock()
        except OSError as error:
            raise OutputError(f"cannot write to {self.directory}: {error.strerror or error}") from None
        try:
            if resume:
                self._check_same_run(run_file, plan)
            else:
                present = [name for name in RUN_FILE_NAMES if (self.directory / name).exists()]
                if present:
                    if created_lock:
                        lock_path.unlink(missing_ok=True)  # leave a directory we may not use as it was
                    what = "a run" if "run.json" in present else ", ".join(present)
                    raise UsageError(f"{self.directory} already holds {what}: add --resume to continue a run, "
                                     f"or choose another --out")
                try:
                    run_file.write_text(json_dumps(redacted(plan), indent=2) + "\n", encoding="utf-8")
                except OSError as error:
                    raise OutputError(f"cannot write to {self.directory}: {error.strerror or error}") from None
            for ledger in (self.predictions, self.grades, self.judgements):
                ledger.load()
            if retry_failed:
                self.forget_failed()
        except BaseException:
            self.close()
            raise
        return self

    def _lock(self) -> None:
        import fcntl

        self._lock_handle = open(self.directory / LOCK_NAME, "a")
        try:
            fcntl.flock(self._lock_handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_handle.close()
            self._lock_handle = None
            raise UsageError(f"another moa bench is running on {self.directory}: wait for it to end, "
                             f"or choose another --out") from None

    def _check_same_run(self, run_file: Path, plan: dict) -> None:
        if not run_file.exists():
            raise UsageError(f"--resume: {self.directory} holds no run to continue (no run.json)")
        try:
            saved = json.loads(run_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise UsageError(f"--resume: cannot read {run_file}") from None
        changed = differences(saved, redacted(plan))
        if changed:
            shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
            raise UsageError(f"--resume: the run in {self.directory} was started with another definition "
                             f"({shown}); give the same flags and config, or a new --out")

    def forget_failed(self) -> None:
        """--retry-failed: the answers that failed are forgotten (with their grades and the
        judgements that used them), so this run asks for them again; nothing is duplicated."""
        failed = {key for key, record in self.predictions.records.items() if record.get("status") != "ok"}
        if not failed:
            return
        items = {item for _, item in failed}
        self.predictions.drop(failed)
        self.grades.drop(failed)
        self.judgements.drop({key for key in self.judgements.records if key[1] in items})

    def close(self) -> None:
        for ledger in (self.predictions, self.grades, self.judgements):
            ledger.close()
        if getattr(self, "_lock_handle", None) is not None:
            self._lock_handle.close()  # closing the file releases the lock
            self._lock_handle = None


def differences(saved, now, path: str = "") -> list[str]:
    """What changed between two run definitions, as `where: old -> new` (values cut short)."""
    if isinstance(saved, dict) and isinstance(now, dict):
        out = []
        for key in [*saved, *(k for k in now if k not in saved)]:
            out += differences(saved.get(key), now.get(key), f"{path}.{key}" if path else str(key))
        return out
    if saved == now:
        return []
    show = lambda v: (s if len(s := json.dumps(v, ensure_ascii=False)) <= 40 else s[:37] + "...")  # noqa: E731
    if path.endswith("items") and isinstance(saved, list) and isinstance(now, list):
        return [f"{path}: {len(saved)} items -> {len(now)}"]
    return [f"{path or 'run'}: {show(saved)} -> {show(now)}"]
