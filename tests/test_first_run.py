"""Issue 19: what a newcomer hits on a first run, and the last hostile-input failures.

The real `moa` command against the fake OpenAI-compatible server (tests/fakeserver.py), or the
real local model with tiny token caps. Assertions are on exit codes, the server's log and what
was saved, never on timings.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import MOA, wait_for
from moa_cli.service import mix_from_json
from moa_cli.store import Store

ALONE = ["--rounds", "0", "-a"]  # the aggregator alone: one call


def _store(moa_env) -> Store:
    return Store.open(Path(moa_env["MOA_HOME"]) / "sessions.db")


def _command() -> list[str]:
    return [MOA] if MOA else ["python", "-m", "moa_cli"]


# ---------------------------------------------------------------- a reader that leaves


def test_a_reader_that_leaves_stops_the_aggregator_and_what_was_answered_is_saved(server, moa_env, tmp_path):
    lines = " ".join(f"line {i}\n" for i in range(400))
    server.script("agg", reply=lines, chunk_delay=0.05)  # 20 s of answer if nobody stopped it
    server.script("ref", reply="a short reference answer")
    script = (f"{' '.join(_command())} ask -r openai:ref -a openai:agg q | head -3; "
              "echo \"moa=${PIPESTATUS[0]}\" >&2")
    run = subprocess.run(["bash", "-c", script], env=moa_env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=60)
    assert "moa=0" in run.stderr  # a reader that left is no error (as for `moa mixes | head -1`)
    assert len(run.stdout.splitlines()) == 3
    agg = wait_for(lambda: [r for r in server.requests("agg") if "finished" in r or r.get("client_closed")],
                   "the aggregator stream to end")[0]
    assert agg.get("client_closed") is True and agg["outcome"] == "client closed"
    with _store(moa_env) as store:
        turn = store.turns(store.last_session().id)[-1]
    assert turn.status == "interrupted"
    assert any(p["role"] == "reference" and p["text"] == "a short reference answer" for p in turn.proposals)


# ---------------------------------------------------------------- Retry-After and permanent failures


def test_retry_after_past_the_cap_fails_at_once_without_a_second_try(moa, server):
    server.script("m", errors=[{"status": 429, "retry_after": 100000}], reply="too early")
    run = moa("ask", *ALONE, "openai:m", "--retries", "2", "--json", "q")
    assert run.returncode != 0
    assert len(server.requests("m")) == 1  # never asked again "in 27 hours" after a 60 s wait
    error = json.loads(run.stdout)["aggregator"]["error"] if run.stdout.strip() else run.stderr
    assert "27.8 hours" in error


def test_retry_after_past_the_time_left_fails_at_once(moa, server):
    server.script("m", errors=[{"status": 503, "retry_after": 30}], reply="later")
    run = moa("ask", *ALONE, "openai:m", "--retries", "2", "--deadline", "5", "q")
    assert run.returncode != 0 and len(server.requests("m")) == 1


def test_a_reference_that_answered_404_is_not_asked_again_in_round_2(moa, server):
    server.known_models = {"good", "agg"}
    run = moa("ask", "-r", "openai:gone,openai:good", "--rounds", "2", "-a", "openai:agg", "--json", "q")
    assert run.returncode == 0
    assert len(server.requests("gone")) == 1 and len(server.requests("good")) == 2
    data = json.loads(run.stdout)
    assert [r["model"] for r in data["rounds"][1]] == ["openai:good"]


# ---------------------------------------------------------------- names and small things


def test_model_ids_after_a_provider_are_opaque(moa, server):
    server.script("[/]", reply="bracketed")
    run = moa("ask", *ALONE, "openai:[/]", "q")
    assert run.returncode == 0 and "bracketed" in run.stdout
    assert server.requests("[/]")


def test_an_unknown_provider_prefix_says_how_it_was_read(moa, server):
    run = moa("ask", "-r", "nolab:x", "-a", "openai:agg", "q", env={"TOGETHER_API_KEY": None})
    assert run.returncode == 2 and not server.requests()
    assert "nolab:x" in run.stderr and "together" in run.stderr.lower()


def test_an_unknown_local_model_is_refused_when_set(moa, server):
    run = moa("chat", input="/aggregator local:nope\n/models\n")
    assert run.returncode == 2 and not server.requests()
    assert "local:nope" in run.stderr.splitlines()[0] or "local:nope" in run.stderr


def test_history_export_is_private(moa, server, tmp_path):
    server.script("*", reply="private answer")
    assert moa("ask", *ALONE, "openai:m", "q").returncode == 0
    out = tmp_path / "export.md"
    os.umask(0o022)
    run = moa("history", "export", "1", "-o", str(out))
    assert run.returncode == 0 and "private answer" in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_chat_with_stdin_closed_ends_cleanly(moa_env, tmp_path):
    run = subprocess.run(["bash", "-c", f"{' '.join(_command())} chat <&-"], env=moa_env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "internal error" not in run.stderr


# ---------------------------------------------------------------- chat keeps the mix in use


LOCAL_TINY = {"TOGETHER_API_KEY": None}  # no key: the offline local mix stands in


@pytest.mark.skipif(shutil.which("moa") is None and not MOA, reason="needs the moa command")
def test_chat_slash_commands_keep_the_local_mix_and_continue_resumes_it(moa, moa_env):
    pytest.importorskip("llama_cpp")
    lines = "/references local:smollm2,local:smollm2\n/max-tokens 4\nSay hi.\n"
    run = moa("chat", input=lines, env=LOCAL_TINY, timeout=300)
    assert run.returncode == 0, run.stderr
    with _store(moa_env) as store:
        session = store.last_session()
        mix = mix_from_json(store.last_mix_json(session.id))
        assert store.turns(session.id)[-1].status == "ok"
    assert mix is not None and mix.aggregator.label == "local:smollm2"
    assert [m.label for m in mix.layers[0]] == ["local:smollm2", "local:smollm2"]
    # Resumed, a change to one part keeps the rest of the resumed mix.
    run = moa("chat", "--continue", input="/rounds 2\n/max-tokens 4\nAgain.\n", env=LOCAL_TINY, timeout=300)
    assert run.returncode == 0, run.stderr
    with _store(moa_env) as store:
        mix = mix_from_json(store.last_mix_json(session.id))
        assert store.turns(session.id)[-1].status == "ok"
    assert mix.aggregator.label == "local:smollm2" and mix.rounds == 2
    assert [m.label for m in mix.layers[1]] == ["local:smollm2", "local:smollm2"]


# ---------------------------------------------------------------- a read-only MOA_HOME


def _read_only(moa_env, tmp_path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    """`moa ARGS` with MOA_HOME bind-mounted read-only (bubblewrap), everything else as it is."""
    home = moa_env["MOA_HOME"]
    return subprocess.run(["bwrap", "--dev-bind", "/", "/", "--ro-bind", home, home, "--", *_command(), *args],
                          env=moa_env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          input=input, stdin=None if input is not None else subprocess.DEVNULL)


def test_a_read_only_home_reads_answers_unsaved_and_refuses_writes_in_one_line(moa, moa_env, server, tmp_path):
    if not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed")
    server.script("*", reply="an answer")
    assert moa("ask", *ALONE, "openai:m", "first").returncode == 0
    probe = _read_only(moa_env, tmp_path, "--help")
    if probe.returncode != 0:
        pytest.skip(f"cannot make a read-only bind here: {probe.stderr.strip()[:200]}")
    db = Path(moa_env["MOA_HOME"]) / "sessions.db"
    before = db.read_bytes()

    listed = _read_only(moa_env, tmp_path, "history", "list")
    assert listed.returncode == 0 and "first" in listed.stdout
    shown = _read_only(moa_env, tmp_path, "history", "show", "1")
    assert shown.returncode == 0 and "an answer" in shown.stdout

    asked = _read_only(moa_env, tmp_path, "ask", *ALONE, "openai:m", "second")
    assert asked.returncode == 0 and "an answer" in asked.stdout
    assert len([line for line in asked.stderr.splitlines() if str(db) in line]) == 1  # one warning
    chatted = _read_only(moa_env, tmp_path, "chat", *ALONE, "openai:m", input="one\ntwo\n")
    assert chatted.returncode == 0 and chatted.stdout.count("an answer") == 2
    # The second question of the chat still had the first as its context, from memory.
    assert server.requests()[-1]["body"]["messages"][-3]["content"] == "one"

    deleted = _read_only(moa_env, tmp_path, "history", "delete", "1")
    assert deleted.returncode == 2 and str(db) in deleted.stderr and len(deleted.stderr.splitlines()) == 1
    keys = _read_only(moa_env, tmp_path, "keys", "set", "openai", input="sk-" + "x" * 20 + "\n")
    assert keys.returncode == 2 and "keys" in keys.stderr and "Traceback" not in keys.stderr
    assert db.read_bytes() == before  # nothing was written


def test_history_list_leaves_room_for_the_first_question(moa, moa_env, server):
    from terminal_screen import TerminalRun

    server.script("*", reply="ok")
    question = "What is the airspeed velocity of an unladen swallow, roughly?"
    assert moa("ask", "-r", "openai:a-rather-long-model-name,openai:another-long-model-name", "-a",
               "openai:yet-another-long-aggregator", question).returncode == 0
    run = TerminalRun(["history", "list"], moa_env, rows=24, cols=80)
    assert run.run() == 0
    row = next(line for line in run.display() if line.lstrip().startswith("1 "))
    assert "What is the airspeed" in row  # not squeezed into a 13-character column
