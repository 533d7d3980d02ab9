import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from moa_cli import transcript
from moa_cli.errors import UsageError
from moa_cli.events import Call, CallResult, TurnResult
from moa_cli.providers.base import Usage
from moa_cli.store import MIGRATIONS, Store

ROOT = Path(__file__).resolve().parents[1]


def make_result(final="The answer.", *, mix="default", aggregate=True) -> TurnResult:
    refs = [
        CallResult(Call("reference", 1, i, label), "ok", f"proposal {i}", usage=Usage(10, 20),
                   started=0.0, first_token=0.5, finished=1.0 + i)
        for i, label in enumerate(["together:model-a", "together:model-b"])
    ]
    agg = CallResult(Call("aggregator", 2, 0, "together:agg"), "ok", final, usage=Usage(50, 30),
                     started=2.0, first_token=2.2, finished=3.0)
    return TurnResult(
        mix=mix, started=1_700_000_000.0, rounds=[refs],
        aggregate=agg if aggregate else None, final=final if aggregate else "", elapsed=3.0,
    )


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "sessions.db")
    yield s
    s.close()


def test_migrations_set_user_version_and_wal(tmp_path):
    path = tmp_path / "nested" / "sessions.db"  # parent is created
    Store.open(path).close()
    Store.open(path).close()  # reopening applies nothing twice
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) >= 1
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"sessions", "turns", "proposals"} <= tables
    db.close()


def test_default_path_follows_moa_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MOA_HOME", str(tmp_path / "home"))
    Store.open().close()
    assert (tmp_path / "home" / "sessions.db").is_file()


def test_add_turns_and_list(store):
    sid = store.create_session(mix="default")
    t1 = store.add_turn(sid, "What is  MoA?\nExplain.", make_result(), status="ok", cost=0.0012)
    t2 = store.add_turn(sid, "And then?", make_result("Second."), status="ok")
    assert t2 > t1

    turns = store.turns(sid)
    assert [t.seq for t in turns] == [1, 2]
    first = turns[0]
    assert (first.question, first.final, first.status, first.mix) == ("What is  MoA?\nExplain.", "The answer.", "ok", "default")
    assert (first.prompt_tokens, first.completion_tokens, first.tokens) == (70, 70, 140)
    assert first.cost == 0.0012 and first.elapsed == 3.0 and first.error is None
    assert [(p["role"], p["round"], p["idx"], p["model"]) for p in first.proposals] == [
        ("reference", 1, 0, "together:model-a"),
        ("reference", 1, 1, "together:model-b"),
        ("aggregator", 2, 0, "together:agg"),
    ]
    assert first.proposals[0]["text"] == "proposal 0" and first.proposals[2]["first_token"] == 2.2

    (info,) = store.list_sessions()
    assert (info.id, info.turns, info.mix) == (sid, 2, "default")
    assert info.preview == "What is MoA? Explain."


def test_list_preview_is_shortened(store):
    sid = store.create_session()
    store.add_turn(sid, "x" * 200, make_result(), status="ok")
    (info,) = store.list_sessions()
    assert len(info.preview) == 60 and info.preview.endswith("…")


def test_export_markdown(store):
    sid = store.create_session("notes", mix="default")
    store.add_turn(sid, "What is MoA?\n\nBriefly.", make_result(), status="ok", cost=0.5)
    store.add_turn(sid, "Stopped one", make_result(aggregate=False), status="interrupted")
    md = transcript.export(store, sid, "md")
    assert md.startswith(f"# Session {sid} 'notes'\n")
    assert "> What is MoA?\n>\n> Briefly." in md
    assert "The answer." in md
    assert "together:model-a, together:model-b → together:agg" in md
    assert "70 in / 70 out tokens" in md and "$0.5000" in md
    assert "## Turn 2 (interrupted)" in md and "*(no answer)*" in md


def test_export_json(store):
    sid = store.create_session("j")
    store.add_turn(sid, "Q", make_result(), status="ok", mix_json=json.dumps({"name": "default", "rounds": 1}))
    data = json.loads(store.export_json(sid))
    assert data["session"]["name"] == "j" and data["session"]["turns"] == 1
    (turn,) = data["turns"]
    assert turn["question"] == "Q" and turn["final"] == "The answer."
    assert turn["mix_detail"] == {"name": "default", "rounds": 1}
    assert len(turn["proposals"]) == 3 and turn["proposals"][2]["role"] == "aggregator"


def test_export_rejects_unknown_format_and_session(store):
    sid = store.create_session()
    with pytest.raises(UsageError):
        transcript.export(store, sid, "html")
    with pytest.raises(UsageError):
        transcript.export(store, sid + 100, "md")


def test_context_messages_skip_interrupted_and_failed(store):
    sid = store.create_session()
    store.add_turn(sid, "one", make_result("first"), status="ok")
    store.add_turn(sid, "two", make_result(aggregate=False), status="interrupted")
    store.add_turn(sid, "three", None, status="failed", error="every reference failed")
    store.add_turn(sid, "four", make_result("fourth"), status="ok")
    assert store.context_messages(sid) == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "first"},
        {"role": "user", "content": "four"},
        {"role": "assistant", "content": "fourth"},
    ]
    failed = store.turns(sid)[2]
    assert (failed.status, failed.error, failed.final, failed.proposals) == ("failed", "every reference failed", "", [])
    assert failed.mix == ""  # the session's mix, which was empty


def test_add_turn_validates(store):
    sid = store.create_session()
    with pytest.raises(ValueError):
        store.add_turn(sid, "q", None, status="done")
    with pytest.raises(UsageError):
        store.add_turn(sid + 1, "q", None, status="failed")
    assert store.turns(sid) == []


def test_named_sessions(store):
    a = store.get_or_create_named("work", "default")
    again = store.get_or_create_named("work", "other")
    assert a.id == again.id and again.mix == "default"
    assert store.find_session("work").id == a.id
    assert store.find_session(str(a.id)).name == "work"
    assert store.find_session("nope") is None and store.find_session("999") is None
    with pytest.raises(UsageError):
        store.create_session("work")
    with pytest.raises(UsageError):
        store.create_session("42")  # would be shadowed by session ids


def test_last_session_is_most_recently_updated(store):
    assert store.last_session() is None
    a = store.create_session("a")
    b = store.create_session("b")
    assert store.last_session().id == b
    store.add_turn(a, "q", make_result(), status="ok")
    assert store.last_session().id == a


def test_delete_cascades(store):
    sid = store.create_session()
    keep = store.create_session()
    store.add_turn(sid, "q", make_result(), status="ok")
    store.add_turn(keep, "q", make_result(), status="ok")
    assert store.delete_session(sid) is True
    assert store.delete_session(sid) is False
    db = sqlite3.connect(store.path)
    assert db.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 1
    assert db.execute("SELECT COUNT(*) FROM proposals").fetchone()[0] == 3
    db.close()


def test_persists_across_instances(tmp_path):
    path = tmp_path / "s.db"
    with Store.open(path) as s:
        sid = s.create_session("p", mix="default")
        s.add_turn(sid, "q", make_result(), status="ok")
    with Store.open(path) as s:
        assert s.find_session("p").turns == 1
        assert s.context_messages(sid)[1]["content"] == "The answer."


def test_corrupt_file_is_a_usage_error_and_left_alone(tmp_path):
    path = tmp_path / "sessions.db"
    junk = b"this is not a database, but it is the user's file\n" * 100
    path.write_bytes(junk)
    with pytest.raises(UsageError) as err:
        Store.open(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == junk


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "sessions.db"
    Store.open(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.commit()
    db.close()
    with pytest.raises(UsageError, match="newer"):
        Store.open(path)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_committed_turn_survives_sigkill(tmp_path):
    path = tmp_path / "sessions.db"
    child = textwrap.dedent(
        f"""
        import sys, time
        from moa_cli.events import Call, CallResult, TurnResult
        from moa_cli.providers.base import Usage
        from moa_cli.store import Store

        store = Store.open({str(path)!r})
        sid = store.create_session("durable", mix="default")
        agg = CallResult(Call("aggregator", 2, 0, "x:agg"), "ok", "kept", usage=Usage(1, 2), started=0.0, first_token=0.1, finished=0.2)
        result = TurnResult(mix="default", started=time.time(), aggregate=agg, final="kept", elapsed=0.2)
        store.add_turn(sid, "first question", result, status="ok")
        # The next turn is under way: its write has begun but will never commit.
        store._conn.execute("BEGIN IMMEDIATE")
        store._conn.execute("INSERT INTO sessions (name, created, updated) VALUES ('in-flight', 0, 0)")
        print("committed", flush=True)
        time.sleep(600)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", child], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "committed", proc.stderr.read() if proc.poll() is not None else line
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()

    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with Store.open(path) as s:
        info = s.find_session("durable")
        (turn,) = s.turns(info.id)
        assert (turn.question, turn.final, turn.status) == ("first question", "kept", "ok")
        assert [p["model"] for p in turn.proposals] == ["x:agg"]
        assert s.find_session("in-flight") is None


def test_retry_replaces_a_turn_in_the_context_only_once_saved(store):
    sid = store.create_session()
    first = store.add_turn(sid, "one", make_result("first"), status="ok")
    old = store.add_turn(sid, "two", make_result("old answer"), status="ok")
    store.add_turn(sid, "two", None, status="interrupted", replaces=None)  # a cut retry replaces nothing
    assert store.context_messages(sid)[-1] == {"role": "assistant", "content": "old answer"}
    new = store.add_turn(sid, "two", make_result("new answer"), status="ok", replaces=old)
    assert store.context_messages(sid) == [
        {"role": "user", "content": "one"}, {"role": "assistant", "content": "first"},
        {"role": "user", "content": "two"}, {"role": "assistant", "content": "new answer"},
    ]
    turns = {t.id: t for t in store.turns(sid)}
    assert turns[old].replaced_by == new and turns[first].replaced_by is None
    assert "## Turn 2 (replaced by a retry)" in transcript.export(store, sid, "md")


def test_an_older_database_is_upgraded_in_place_and_keeps_its_turns(tmp_path):
    """Migrations are a list: a file written at an earlier schema gets the later steps only."""
    path = tmp_path / "sessions.db"
    old = sqlite3.connect(path)
    for step in MIGRATIONS[:2]:
        old.executescript(step)
    old.execute("PRAGMA user_version = 2")
    old.execute("INSERT INTO sessions (id, name, created, updated, mix) VALUES (1, 'kept', 1.0, 1.0, 'm')")
    old.execute("INSERT INTO turns (id, session_id, seq, created, question, final, status, mix)"
                " VALUES (1, 1, 1, 1.0, 'old question', 'old answer', 'ok', 'm')")
    old.commit()
    old.close()
    with Store.open(path) as store:
        assert store._version() == len(MIGRATIONS)
        (turn,) = store.turns(1)
        assert (turn.question, turn.final) == ("old question", "old answer")
        assert store.find_session("kept").turns == 1
