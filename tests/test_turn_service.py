"""The turn service (issue 9): output failures kept apart from model failures, every turn logged,
sessions that remember their mix, and records that name what actually ran."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
from pathlib import Path

from conftest import moa_command

from moa_cli.config import Overrides, resolve
from moa_cli.providers.pool import ProviderPool
from moa_cli.events import CallDelta
from moa_cli.providers.base import CallableProvider
from moa_cli.service import TurnService

MIX = ["-r", "openai:m1,openai:m2", "-a", "openai:agg"]
LONG = " ".join(f"word{i}" for i in range(3000))  # far more than a pipe reader takes


def _settings():
    return resolve(Overrides(references=("openai:m1", "openai:m2"), aggregator="openai:agg"),
                   {"OPENAI_API_KEY": "k"}, {})


def _memory_pool() -> ProviderPool:
    async def answer(request):
        for word in f"{request.model} says hello".split():
            yield word + " "

    return ProviderPool(lambda name: CallableProvider(answer, name))


def test_a_listener_that_raises_mid_turn_changes_no_model_result():
    seen: list[str] = []

    def broken(event):
        if isinstance(event, CallDelta):
            raise OSError(28, "No space left on device")

    def healthy(event):
        if isinstance(event, CallDelta):
            seen.append(event.text)

    async def main():
        service = TurnService(_settings(), pool=_memory_pool())
        return await service.run("q", listeners=[broken, healthy])

    outcome = asyncio.run(main())
    assert outcome.status == "ok" and outcome.error is None
    assert outcome.turn.final.strip() == "agg says hello"
    assert [r.status for r in outcome.turn.rounds[0]] == ["ok", "ok"]
    assert all(r.failure is None for r in outcome.turn.calls())
    assert len(outcome.output_errors) == 1 and outcome.output_errors[0].errno == 28
    assert "".join(seen).count("hello") == 3  # the other listener heard the whole turn


def test_a_listener_that_raises_is_closed_and_hears_nothing_more():
    class Broken:
        def __init__(self):
            self.calls, self.closed = 0, 0

        def __call__(self, event):
            self.calls += 1
            raise ValueError("renderer bug")

        def close(self):
            self.closed += 1

    broken = Broken()

    async def main():
        return await TurnService(_settings(), pool=_memory_pool()).run("q", listeners=[broken])

    outcome = asyncio.run(main())
    assert outcome.ok and outcome.turn.final.strip() == "agg says hello"
    assert (broken.calls, broken.closed) == (1, 1)  # stopped at once, told to stop drawing once
    assert [type(e) for e in outcome.output_errors] == [ValueError]


def _sessions(home: Path) -> list[tuple]:
    db = sqlite3.connect(home / "sessions.db")
    try:
        return db.execute("SELECT question, status, final, mix FROM turns ORDER BY id").fetchall()
    finally:
        db.close()


def _shell(command: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """Run a bash pipeline in which "$MOA" is the real `moa` command."""
    import shlex

    moa = shlex.join(moa_command())
    return subprocess.run(["bash", "-c", command.replace('"$MOA"', moa)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_a_reader_that_goes_away_ends_ask_quietly_with_0_and_the_turn_is_saved(server, moa_env, tmp_path):
    server.script("agg", reply=LONG, chunk_words=5)
    out = _shell(f'"$MOA" ask {" ".join(MIX)} q | head -c 5; echo "moa=${{PIPESTATUS[0]}}" >&2', moa_env, tmp_path)
    assert out.stdout == LONG[:5]
    assert "moa=0" in out.stderr
    assert out.stderr.strip() == "moa=0", out.stderr  # no warning, no error, no traceback
    (question, status, final, _), = _sessions(Path(moa_env["MOA_HOME"]))
    # The reader's leaving cancels the turn (issue 19), saved as interrupted, unless the whole
    # answer had already arrived: then it is kept whole.
    assert question == "q" and (status == "interrupted" or (status, final) == ("ok", LONG))


def test_a_full_disk_is_one_line_exit_5_and_the_turn_is_saved(server, moa_env, tmp_path):
    out = _shell(f'"$MOA" ask {" ".join(MIX)} q > /dev/full', moa_env, tmp_path)
    assert out.returncode == 5
    assert out.stderr.splitlines() == ["moa: error: cannot write the output: No space left on device"]
    assert [row[:2] for row in _sessions(Path(moa_env["MOA_HOME"]))] == [("q", "ok")]


def test_a_closed_stdout_is_one_line_exit_5_and_the_turn_is_saved(server, moa_env, tmp_path):
    out = _shell(f'"$MOA" ask {" ".join(MIX)} q >&-', moa_env, tmp_path)
    assert out.returncode == 5
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("moa: error: cannot write the output"), out.stderr
    rows = _sessions(Path(moa_env["MOA_HOME"]))
    assert [row[:2] for row in rows] == [("q", "ok")] and rows[0][2] == "agg answer 1: q"


def test_piped_chat_into_head_stops_cleanly_and_keeps_the_finished_turns(server, moa_env, tmp_path):
    server.script("agg", reply=LONG, chunk_words=5)
    out = _shell(f'printf "q1\\nq2\\nq3\\n" | "$MOA" chat {" ".join(MIX)} | head -c 10; '
                 'echo "moa=${PIPESTATUS[1]}" >&2', moa_env, tmp_path)
    assert "moa=0" in out.stderr and "Traceback" not in out.stderr
    rows = _sessions(Path(moa_env["MOA_HOME"]))
    assert rows and rows[0][:2] == ("q1", "ok") and rows[0][2] == LONG
    assert all(status == "ok" for _, status, _, _ in rows)


def test_every_ask_is_logged_unless_no_log(moa, moa_env, tmp_path):
    assert moa("ask", *MIX, "first question").returncode == 0
    assert moa("ask", *MIX, "--no-log", "secret question").returncode == 0
    config = tmp_path / "quiet.toml"
    config.write_text("[defaults]\nlog = false\n")
    assert moa("ask", *MIX, "config says no", env={"MOA_CONFIG": str(config)}).returncode == 0
    rows = _sessions(Path(moa_env["MOA_HOME"]))
    assert [r[0] for r in rows] == ["first question"]
    listing = moa("history", "list")
    assert listing.returncode == 0 and "first question" in listing.stdout
    assert "secret question" not in listing.stdout


def test_history_show_proposals_has_every_reference_answer_of_a_one_shot_turn(moa, server):
    server.script("m2", finish_reason="length")
    assert moa("ask", *MIX, "--rounds", "2", "q").returncode == 0
    shown = moa("history", "show", "1", "--proposals")
    assert shown.returncode == 0
    for answer in ("m1 answer 1: q", "m2 answer 1: q", "m1 answer 2: q", "m2 answer 2: q"):
        assert answer in shown.stdout
    # Why a call stopped is kept: the truncated reference says so, the others do not.
    assert shown.stdout.count("truncated at max_tokens") == 2  # m2, in both rounds


def test_resuming_a_session_uses_the_mix_it_last_ran(moa, server):
    first = moa("chat", "--session", "work", "-r", "openai:x1,openai:x2", "-a", "openai:xagg", input="q1\n")
    assert first.returncode == 0, first.stderr
    resumed = moa("chat", "--session", "work", input="q2\n")  # no flags: the session's own mix
    assert resumed.returncode == 0, resumed.stderr
    assert "using the offline" not in resumed.stderr
    again = moa("ask", "--continue", "q3")
    assert again.returncode == 0, again.stderr
    for question in ("q2", "q3"):
        asked = {r["model"] for r in server.requests()
                 if r["body"]["messages"][-1]["content"] == question}
        assert asked == {"x1", "x2", "xagg"}, (question, asked)
    # Flags still win over the session's mix.
    moa("ask", "--continue", "-r", "openai:y", "-a", "openai:yagg", "q4")
    assert {r["model"] for r in server.requests() if r["body"]["messages"][-1]["content"] == "q4"} == {"y", "yagg"}


def test_json_and_history_name_what_actually_ran(moa, moa_env):
    out = moa("ask", "--json", *MIX, "q")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["mix"] == "openai:m1,openai:m2 → openai:agg"
    assert _sessions(Path(moa_env["MOA_HOME"]))[0][3] == "openai:m1,openai:m2 → openai:agg"
    listing = moa("history", "list")
    assert "openai:m1,openai:m2 → openai:agg" in listing.stdout
    assert "together-2025" not in listing.stdout
    named = moa("ask", "--json", "-m", "self-moa", "-t", "0.1", "q",
                env={"TOGETHER_API_KEY": "tk-" + os.urandom(8).hex()})
    assert json.loads(named.stdout)["mix"] == "self-moa"  # a named mix with only sampling changed


def test_a_full_interpreter_exit_shows_no_leaked_resource(moa_env, tmp_path, server):
    """`python -X dev` runs the normal interpreter teardown (no fast exit) and turns on
    ResourceWarning: an unclosed client, store or task would be reported on stderr."""
    import sys

    for args in (["ask", *MIX, "q"], ["ask", "--json", *MIX, "--no-log", "q"], ["chat", *MIX]):
        proc = subprocess.run([sys.executable, "-X", "dev", "-m", "moa_cli", *args], env=moa_env, cwd=tmp_path,
                              input="q1\nq2\n" if args[0] == "chat" else None, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        for sign in ("ResourceWarning", "Exception ignored", "Task was destroyed", "Traceback", "unclosed"):
            assert sign not in proc.stderr, (args, proc.stderr)


def test_an_aggregator_failing_part_way_still_prints_the_fallback_answer(moa, server):
    server.script("agg", reply="the start of a long answer that never ends", drop_after=3)
    out = moa("ask", *MIX, "--retries", "0", "q")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "the start of"  # the fragment that went out before the failure...
    assert lines[-1] in ("m1 answer 1: q", "m2 answer 1: q")  # ...then the whole fallback answer
    assert "answering with openai:m" in out.stderr
