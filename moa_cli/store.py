"""Chat sessions on disk: one SQLite file holding sessions, their turns and every model's proposal.

Each turn is written in one transaction the moment it ends, so a crash or kill loses at most the
turn in flight, never a finished one. Nothing here takes or stores secrets.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .config import paths
from .files import make_private_dir
from .errors import UsageError
from .events import TurnResult

# Applied in order; PRAGMA user_version records how many have run. Append, never edit.
MIGRATIONS = [
    """
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY, name TEXT UNIQUE, created REAL NOT NULL, updated REAL NOT NULL,
        mix TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX sessions_updated ON sessions (updated);
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL, created REAL NOT NULL, question TEXT NOT NULL, final TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'interrupted')),
        mix TEXT NOT NULL DEFAULT '', mix_json TEXT, elapsed REAL, error TEXT, fallback TEXT,
        prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0, cost REAL,
        UNIQUE (session_id, seq)  -- also the index for reading a session in order and for cascades
    );
    CREATE TABLE proposals (
        id INTEGER PRIMARY KEY,
        turn_id INTEGER NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
        round INTEGER NOT NULL, idx INTEGER NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('reference', 'aggregator')),
        model TEXT NOT NULL, status TEXT NOT NULL, text TEXT NOT NULL DEFAULT '', error TEXT,
        prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
        started REAL, first_token REAL, finished REAL  -- seconds since the turn started
    );
    CREATE INDEX proposals_turn ON proposals (turn_id, round, idx);
    """,
    # 2: `/retry` regenerates an answer; the old turn stays on record but leaves the context.
    """
    ALTER TABLE turns ADD COLUMN replaced_by INTEGER;
    """,
    # 3: why each call stopped ("stop", "length", ...), so a truncated answer is visible later.
    """
    ALTER TABLE proposals ADD COLUMN finish_reason TEXT;
    """,
    # 4: a strategy's review round (peer review) stores its calls as role 'reviewer'. SQLite
    # cannot change a CHECK in place, so the table is rebuilt with the same columns and rows.
    """
    CREATE TABLE proposals_v4 (
        id INTEGER PRIMARY KEY,
        turn_id INTEGER NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
        round INTEGER NOT NULL, idx INTEGER NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('reference', 'reviewer', 'aggregator')),
        model TEXT NOT NULL, status TEXT NOT NULL, text TEXT NOT NULL DEFAULT '', error TEXT,
        prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0,
        started REAL, first_token REAL, finished REAL,
        finish_reason TEXT
    );
    INSERT INTO proposals_v4 (id, turn_id, round, idx, role, model, status, text, error, prompt_tokens,
                              completion_tokens, started, first_token, finished, finish_reason)
        SELECT id, turn_id, round, idx, role, model, status, text, error, prompt_tokens,
               completion_tokens, started, first_token, finished, finish_reason FROM proposals;
    DROP TABLE proposals;
    ALTER TABLE proposals_v4 RENAME TO proposals;
    CREATE INDEX proposals_turn ON proposals (turn_id, round, idx);
    """,
    # 5: why a call did not answer, as a value: its Failure's kind ("http", "timeout", "cut", ...)
    # and HTTP status, so history and exports never have to read the error's wording.
    """
    ALTER TABLE proposals ADD COLUMN failure_kind TEXT;
    ALTER TABLE proposals ADD COLUMN failure_status INTEGER;
    """,
    # 6: `moa history search` (full-text index over questions and final answers, kept by
    # triggers) and the role a session runs (`--role`, `/role`), restored by --continue.
    """
    ALTER TABLE sessions ADD COLUMN role TEXT;
    CREATE VIRTUAL TABLE turns_fts USING fts5(question, final, content='turns', content_rowid='id');
    INSERT INTO turns_fts (turns_fts) VALUES ('rebuild');
    CREATE TRIGGER turns_fts_insert AFTER INSERT ON turns BEGIN
        INSERT INTO turns_fts (rowid, question, final) VALUES (new.id, new.question, new.final);
    END;
    CREATE TRIGGER turns_fts_delete AFTER DELETE ON turns BEGIN
        INSERT INTO turns_fts (turns_fts, rowid, question, final) VALUES ('delete', old.id, old.question, old.final);
    END;
    CREATE TRIGGER turns_fts_update AFTER UPDATE OF question, final ON turns BEGIN
        INSERT INTO turns_fts (turns_fts, rowid, question, final) VALUES ('delete', old.id, old.question, old.final);
        INSERT INTO turns_fts (rowid, question, final) VALUES (new.id, new.question, new.final);
    END;
    """,
]

STATUSES = ("ok", "failed", "interrupted")

# PRAGMA application_id marks a file as moa's ("moa!"), so a foreign SQLite file that happens to
# sit at sessions.db is refused instead of getting moa's tables added to it.
APPLICATION_ID = 0x6D6F6121
TABLES = {"sessions", "turns", "proposals"}
SQLITE_INT_MAX = 2**63 - 1

# Result codes that mean the file itself is bad or unusable (not a bug in our SQL): the user gets
# a one-line UsageError naming the file instead of a traceback.
_FILE_FAULTS = {
    sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_FULL,
}


@dataclass
class SessionInfo:
    id: int
    name: str | None
    created: float
    updated: float
    mix: str
    turns: int = 0
    preview: str = ""  # the first question, on one line, shortened


@dataclass
class SearchHit:
    session_id: int
    session_name: str | None
    seq: int  # the turn's number within its session
    created: float
    question: str
    excerpt: str  # the matching words in context


@dataclass
class TurnRecord:
    id: int
    seq: int
    created: float
    question: str
    final: str
    status: str
    mix: str
    mix_json: str | None
    elapsed: float | None
    error: str | None
    fallback: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    replaced_by: int | None = None  # the id of the turn that regenerated this one (`/retry`)
    proposals: list[dict] = field(default_factory=list)  # loaded eagerly, ordered by round, idx

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _guarded(method):
    @functools.wraps(method)
    def wrapper(self: Store, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as e:
            if (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF in _FILE_FAULTS:
                raise UsageError(f"cannot use session database {self.path}: {e}") from e
            if isinstance(e, sqlite3.OperationalError) and str(e).startswith(("no such table", "no such column")):
                raise UsageError(f"session database {self.path} is damaged ({e}); move it away to start a new one") from e
            raise

    return wrapper


def _count(value) -> int:
    """A count as SQLite can store it: a whole number from 0 to 2**63-1."""
    try:
        return min(max(int(value), 0), SQLITE_INT_MAX)
    except (TypeError, ValueError, OverflowError):
        return 0


def _real(value) -> float | None:
    """A finite float or None (inf and nan have no place in a session file)."""
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


_SESSION_SQL = """
    SELECT s.id, s.name, s.created, s.updated, s.mix,
        (SELECT COUNT(*) FROM turns t WHERE t.session_id = s.id) AS turns,
        (SELECT question FROM turns t WHERE t.session_id = s.id ORDER BY seq LIMIT 1) AS first
    FROM sessions s
"""
_TURN_FIELDS = [f.name for f in fields(TurnRecord) if f.name != "proposals"]


class Store:
    def __init__(self, conn: sqlite3.Connection, path: Path, read_only: bool = False):
        self._conn = conn
        self.path = path
        # The file (or its directory) cannot be written: a read-only MOA_HOME, a locked-down
        # home. Everything can be read; every write is a UsageError naming the file.
        self.read_only = read_only

    @classmethod
    def open(cls, path: Path | None = None) -> Store:
        path = Path(path).expanduser() if path is not None else paths.sessions_db()
        try:
            return cls._open_writable(path)
        except UsageError:
            if _writable(path):
                raise
            return cls._open_read_only(path)

    @classmethod
    def _open_read_only(cls, path: Path) -> Store:
        """The database as it is, never written: a missing one reads as empty."""
        conn = None
        try:
            if path.exists():
                # immutable: with no -shm file (and no way to make one) SQLite cannot open a WAL
                # database otherwise; nobody can write this file, so nothing changes under us.
                conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True,
                                       isolation_level=None)
            else:
                conn = sqlite3.connect(":memory:", isolation_level=None)
            conn.row_factory = sqlite3.Row
            store = cls(conn, path, read_only=True)
            if not path.exists():
                store._claim()
                store._migrate()
            elif store._version() != len(MIGRATIONS) or TABLES - store._tables():
                raise UsageError(f"session database {path} is read-only and needs an upgrade by this moa; "
                                 "make it writable once")
            return store
        except BaseException as e:
            _opening_failed(conn, path, e)
            raise

    @classmethod
    def _open_writable(cls, path: Path) -> Store:
        conn = None
        try:
            make_private_dir(path.parent)
            if not path.exists():
                # Transcripts are private; SQLite gives the -wal and -shm files the same mode.
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            # Autocommit mode: we issue BEGIN/COMMIT ourselves, so a turn is exactly one transaction.
            conn = sqlite3.connect(path, isolation_level=None)
            conn.row_factory = sqlite3.Row
            store = cls(conn, path)
            store._setup()
            return store
        except BaseException as e:
            _opening_failed(conn, path, e)
            raise

    def _setup(self) -> None:
        c = self._conn
        c.execute("PRAGMA busy_timeout = 5000")  # another moa process may be writing: wait for it
        self._claim()  # before anything else touches the file: a foreign file is left exactly as it was
        # WAL + synchronous=NORMAL: COMMIT returns only after the transaction has been write()n to
        # the -wal file, i.e. it is in the OS page cache, which outlives a SIGKILLed process; the
        # next open replays it. NORMAL only skips the per-commit fsync, so just an OS crash or power
        # cut can lose the latest turns, and WAL keeps the file consistent even then.
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("PRAGMA synchronous = NORMAL")
        c.execute("PRAGMA foreign_keys = ON")  # per connection; ON DELETE CASCADE needs it
        self._migrate()
        missing = TABLES - self._tables()
        if missing:
            raise UsageError(f"session database {self.path} is damaged (no table {sorted(missing)[0]}); "
                             "move it away to start a new one")

    def _tables(self) -> set[str]:
        return {row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}

    def _claim(self) -> None:
        """Check the file is moa's, marking a new (empty) one, or one from before the mark existed."""
        app_id = self._conn.execute("PRAGMA application_id").fetchone()[0]
        if app_id == APPLICATION_ID:
            return
        tables = self._tables()
        ours_unmarked = app_id == 0 and self._version() > 0 and TABLES <= tables
        if app_id != 0 or (tables and not ours_unmarked):
            raise UsageError(f"{self.path} is not a moa session database (another program's SQLite file?); "
                             "move it away or set MOA_HOME to another directory")
        self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    def _version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        version = self._version()
        if version > len(MIGRATIONS):
            raise UsageError(f"session database {self.path} was written by a newer moa (schema {version})")
        for number in range(version + 1, len(MIGRATIONS) + 1):
            script = f"BEGIN IMMEDIATE;\n{MIGRATIONS[number - 1]}\nPRAGMA user_version = {number};\nCOMMIT;"
            try:
                self._conn.executescript(script)
            except sqlite3.Error:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if self._version() >= number:
                    continue  # another moa process starting at the same moment applied it first
                raise

    @contextmanager
    def _write(self):
        if self.read_only:
            raise UsageError(f"cannot write the session database {self.path}: it is read-only")
        # IMMEDIATE takes the write lock up front: a concurrent writer makes us wait (busy_timeout)
        # instead of failing half-way. Any exception, Ctrl-C included, rolls the whole turn back.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def close(self) -> None:
        try:
            self._conn.execute("PRAGMA optimize")  # cheap upkeep SQLite recommends at close
        except sqlite3.Error:
            pass
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- sessions ---

    @staticmethod
    def _check_name(name: str) -> str:
        if name.strip().isdigit():
            raise UsageError(f"session name {name!r} is a number, which would be read as a session id")
        return name.strip()

    @_guarded
    def create_session(self, name: str | None = None, mix: str = "") -> int:
        name = self._check_name(name) if name else None
        now = time.time()
        try:
            with self._write() as c:
                cur = c.execute(
                    "INSERT INTO sessions (name, created, updated, mix) VALUES (?, ?, ?, ?)", (name, now, now, mix)
                )
        except sqlite3.IntegrityError as e:
            raise UsageError(f"a session named {name!r} already exists") from e
        return cur.lastrowid

    def _session(self, where: str, *args) -> SessionInfo | None:
        row = self._conn.execute(f"{_SESSION_SQL} {where}", args).fetchone()
        return _info(row) if row else None

    @_guarded
    def find_session(self, name_or_id: str) -> SessionInfo | None:
        """A numeric string is tried as an id first (names can't be all digits), then as a name."""
        key = str(name_or_id).strip()
        # Only an ASCII number SQLite can hold is an id: "²" is a digit to isdigit() but not to
        # int(), and an id past 2**63 raises OverflowError in the driver; neither is a session id.
        is_id = key.isascii() and key.isdigit() and int(key) < 2**63
        found = self._session("WHERE s.id = ?", int(key)) if is_id else None
        return found or self._session("WHERE s.name = ?", key)

    @_guarded
    def last_session(self) -> SessionInfo | None:
        return self._session("ORDER BY s.updated DESC, s.id DESC LIMIT 1")

    @_guarded
    def get_or_create_named(self, name: str, mix: str = "") -> SessionInfo:
        """An existing session keeps its own mix; `mix` only applies to a new one."""
        name, now = self._check_name(name), time.time()
        with self._write() as c:  # ON CONFLICT: two processes may race to create the same name
            c.execute(
                "INSERT INTO sessions (name, created, updated, mix) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (name, now, now, mix),
            )
        return self._session("WHERE s.name = ?", name)

    @_guarded
    def list_sessions(self, limit: int = 50) -> list[SessionInfo]:
        rows = self._conn.execute(f"{_SESSION_SQL} ORDER BY s.updated DESC, s.id DESC LIMIT ?", (limit,))
        return [_info(row) for row in rows]

    @_guarded
    def delete_session(self, session_id: int) -> bool:
        with self._write() as c:  # turns and proposals go with it (ON DELETE CASCADE)
            return c.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0

    @_guarded
    def set_role(self, session_id: int, role: str | None) -> None:
        with self._write() as c:
            c.execute("UPDATE sessions SET role = ? WHERE id = ?", (role or None, session_id))

    @_guarded
    def session_role(self, session_id: int) -> str | None:
        row = self._conn.execute("SELECT role FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return row["role"] if row else None

    @_guarded
    def search(self, text: str, limit: int = 20) -> list[SearchHit]:
        """Turns whose question or final answer holds every word of `text`, newest first. Each
        word is matched as an FTS5 phrase, so quotes, `*` or `NEAR` in it are only text."""
        words = [w for w in text.split() if w.strip('"')]
        if not words:
            return []
        query = " ".join('"' + w.replace('"', '""') + '"' for w in words)
        rows = self._conn.execute(
            "SELECT t.session_id, s.name, t.seq, t.created, t.question,"
            " snippet(turns_fts, -1, '', '', '…', 12) AS excerpt"
            " FROM turns_fts JOIN turns t ON t.id = turns_fts.rowid JOIN sessions s ON s.id = t.session_id"
            " WHERE turns_fts MATCH ? ORDER BY t.created DESC, t.id DESC LIMIT ?", (query, limit))
        return [SearchHit(r["session_id"], r["name"], r["seq"], r["created"], r["question"], r["excerpt"]) for r in rows]

    # --- turns ---

    @_guarded
    def add_turn(
        self, session_id: int, question: str, result: TurnResult | None, *,
        status: str, error: str | None = None, cost: float | None = None, mix_json: str | None = None,
        replaces: int | None = None,
    ) -> int:
        """Save a finished, failed or interrupted turn (result may be partial or None) and commit.

        `replaces` names an earlier turn of the session that this one regenerates: it is marked in
        the same transaction, so it drops out of the context exactly when its successor is saved.
        """
        if status not in STATUSES:
            raise ValueError(f"turn status must be one of {STATUSES}, not {status!r}")
        if mix_json is not None:
            json.loads(mix_json)  # fail now, not when exporting months later
        now = time.time()
        with self._write() as c:
            row = c.execute("SELECT mix FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                raise UsageError(f"no session {session_id}")
            seq = c.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM turns WHERE session_id = ?", (session_id,)
            ).fetchone()[0]
            r = result or TurnResult(mix=row["mix"], started=now)  # nothing ran yet: an empty result
            usage = r.total_usage()
            turn_id = c.execute(
                "INSERT INTO turns (session_id, seq, created, question, final, status, mix, mix_json, elapsed, error,"
                " fallback, prompt_tokens, completion_tokens, cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (session_id, seq, _real(r.started) or now, question, r.final, status, r.mix or row["mix"], _scrub(mix_json),
                 _real(result.elapsed) if result else None, _scrub(error), r.fallback, _count(usage.prompt_tokens),
                 _count(usage.completion_tokens), _real(cost)),
            ).lastrowid
            # Every number is clamped and every error scrubbed: a server's 30-digit token count
            # or an error quoting a key must neither lose the turn nor end up in the file.
            c.executemany(
                "INSERT INTO proposals (turn_id, round, idx, role, model, status, text, error, prompt_tokens,"
                " completion_tokens, started, first_token, finished, finish_reason, failure_kind, failure_status)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(turn_id, p.call.round, p.call.index, p.call.role, p.call.label, p.status, p.text,
                  _scrub(p.failure.describe()) if p.failure else None,
                  _count(p.usage.prompt_tokens), _count(p.usage.completion_tokens), _real(p.started),
                  _real(p.first_token), _real(p.finished), p.finish_reason,
                  p.failure.kind.value if p.failure else None, _status(p.failure.status) if p.failure else None)
                 for p in r.calls()],
            )
            if replaces is not None:
                c.execute("UPDATE turns SET replaced_by = ? WHERE id = ? AND session_id = ?",
                          (turn_id, replaces, session_id))
            c.execute("UPDATE sessions SET updated = ? WHERE id = ?", (now, session_id))
        return turn_id

    @_guarded
    def turns(self, session_id: int) -> list[TurnRecord]:
        by_turn: dict[int, list[dict]] = {}
        for p in self._conn.execute(
            "SELECT p.* FROM proposals p JOIN turns t ON t.id = p.turn_id WHERE t.session_id = ?"
            " ORDER BY p.turn_id, p.round, p.idx", (session_id,)
        ):
            by_turn.setdefault(p["turn_id"], []).append({k: p[k] for k in p.keys() if k not in ("id", "turn_id")})
        rows = self._conn.execute("SELECT * FROM turns WHERE session_id = ? ORDER BY seq", (session_id,))
        return [TurnRecord(**{k: r[k] for k in _TURN_FIELDS}, proposals=by_turn.get(r["id"], [])) for r in rows]

    @_guarded
    def last_mix_json(self, session_id: int) -> str | None:
        """The mix the session's newest turn ran, as stored JSON (None before any turn)."""
        row = self._conn.execute(
            "SELECT mix_json FROM turns WHERE session_id = ? AND mix_json IS NOT NULL ORDER BY seq DESC LIMIT 1",
            (session_id,),
        ).fetchone()
        return row["mix_json"] if row else None

    @_guarded
    def context_messages(self, session_id: int) -> list[dict]:
        """The conversation so far; failed and interrupted turns never reached the user as answers,
        and a regenerated (`/retry`) answer was replaced by its successor."""
        messages = []
        for row in self._conn.execute(
            "SELECT question, final FROM turns WHERE session_id = ? AND status = 'ok' AND replaced_by IS NULL"
            " ORDER BY seq", (session_id,)
        ):
            messages += [{"role": "user", "content": row["question"]}, {"role": "assistant", "content": row["final"]}]
        return messages

    @_guarded
    def session(self, session_id: int) -> SessionInfo | None:
        return self._session("WHERE s.id = ?", session_id)

    @_guarded
    def export_json(self, session_id: int) -> str:
        """The session and its turns as JSON. (Markdown is transcript.py's, which reads the store.)"""
        info = self._session("WHERE s.id = ?", session_id)
        if info is None:
            raise UsageError(f"no session {session_id}")
        out = []
        for t in self.turns(session_id):
            d = asdict(t)
            d["mix_detail"] = json.loads(d.pop("mix_json")) if t.mix_json else None
            out.append(d)
        return json.dumps({"session": asdict(info), "turns": out}, indent=2, ensure_ascii=False)


def _status(value) -> int | None:
    """An HTTP status as stored: a whole number from 100 to 999, or None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 999 else None


def _writable(path: Path) -> bool:
    """Whether the database file, or the nearest directory that would hold it, can be written."""
    folder = next((p for p in path.parents if p.exists()), path.parent)
    return os.access(folder, os.W_OK) and (not path.exists() or os.access(path, os.W_OK))


def _scrub(error: str | None) -> str | None:
    from .secrets import redact

    return None if error is None else redact(error)


def _info(row: sqlite3.Row) -> SessionInfo:
    first = " ".join((row["first"] or "").split())
    preview = first if len(first) <= 60 else first[:59] + "…"
    return SessionInfo(row["id"], row["name"], row["created"], row["updated"], row["mix"], row["turns"], preview)


def _opening_failed(conn, path: Path, error: BaseException) -> None:
    """Close a connection that was opened but not handed out; a file or SQLite error becomes one
    usage line (the caller re-raises anything else)."""
    if conn is not None:
        conn.close()
    if isinstance(error, (OSError, sqlite3.Error)):
        raise UsageError(f"cannot open session database {path}: {error}") from error
