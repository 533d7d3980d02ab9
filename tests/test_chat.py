"""`moa chat` end to end: the real command in a pseudo-terminal (pexpect) or fed by a pipe,
against the fake OpenAI-compatible server. Synchronisation is always on visible output or on
what the server logged, never on sleeps."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
from pathlib import Path

import pexpect
import pytest

from conftest import spawn_moa, wait_for
from moa_cli.store import Store

MIX = ["-r", "openai:m1,openai:m2", "-a", "openai:agg"]
PROMPT = "m1,m2→agg>"  # the prompt names the mix in use; its trailing space is drawn as a cursor move
WAIT = 20  # seconds any single expectation may take before the test fails


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


@pytest.fixture
def chat(moa_env, tmp_path):
    """Start `moa chat` in a 40x120 pseudo-terminal; returns a function, so a test can start several."""
    children = []

    def start(*args: str, prompt: str = PROMPT) -> pexpect.spawn:
        env = {**moa_env, "PROMPT_TOOLKIT_NO_CPR": "1"}
        child = spawn_moa("chat", *args, env=env, cwd=tmp_path, pty=True, rows=40, cols=120, encoding="utf-8",
                          timeout=WAIT)
        children.append(child)
        child.expect_exact(prompt)
        return child

    yield start
    for child in children:
        if child.isalive():
            child.kill(signal.SIGKILL)
        child.close(force=True)


def ask(child: pexpect.spawn, text: str, answer: str, prompt: str = PROMPT) -> None:
    """Send one line, wait for its final answer and for the prompt to come back."""
    child.send(text + "\r")
    child.expect_exact(answer)
    child.expect_exact(prompt)


def leave(child: pexpect.spawn) -> int:
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def db(moa_env) -> Store:
    return Store.open(Path(moa_env["MOA_HOME"]) / "sessions.db")


def test_second_turn_carries_the_first_turn_as_context(chat, server, moa_env):
    child = chat(*MIX)
    ask(child, "q1", "agg answer 1: q1")
    ask(child, "q2", "agg answer 2: q2")
    assert leave(child) == 0
    context = [user("q1"), assistant("agg answer 1: q1"), user("q2")]
    for model in ("m1", "m2"):
        first, second = (r["body"]["messages"] for r in server.requests(model))
        assert first == [user("q1")]
        assert second == context  # earlier reference answers are not resent, only the final one
    assert server.requests("agg")[1]["body"]["messages"][1:] == context
    with db(moa_env) as store:
        (session,) = store.list_sessions()
        assert [(t.question, t.status) for t in store.turns(session.id)] == [("q1", "ok"), ("q2", "ok")]
    assert "q1" in (Path(moa_env["MOA_HOME"]) / "input_history").read_text()  # input history persists


def test_no_multi_turn_sends_only_the_new_question(chat, server):
    child = chat(*MIX, "--no-multi-turn")
    ask(child, "q1", "agg answer 1: q1")
    ask(child, "q2", "agg answer 2: q2")
    assert server.requests("m1")[1]["body"]["messages"] == [user("q2")]


def test_rounds_command_changes_the_next_turn(chat, server):
    child = chat(*MIX)
    child.send("/rounds 2\r")
    child.expect_exact("now using m1,m2→agg ×2")
    child.expect_exact("m1,m2→agg ×2>")  # the prompt shows the changed mix
    child.send("q\r")
    child.expect_exact("agg answer 1: q")
    assert len(server.requests("m1")) == 2 and len(server.requests("m2")) == 2
    assert "m2 answer 1: q" in server.requests("m1")[1]["body"]["messages"][0]["content"]


def test_ctrl_c_cancels_the_turn_and_the_conversation_goes_on(chat, server, moa_env):
    server.script("m1", hang=True)  # m1 never answers: the turn can only end by Ctrl-C
    child = chat(*MIX)
    child.send("slow question\r")
    child.expect_exact("m2 answer 1: slow question")  # the turn is under way, its panels drawn
    wait_for(lambda: server.requests("m1"), "m1's request")
    child.sendintr()
    child.expect_exact("interrupted")
    child.expect_exact(PROMPT)
    wait_for(lambda: server.requests("m1")[0].get("client_closed"), "the cut stream to be closed")

    server.script("m1")  # answers at once again
    ask(child, "next question", "agg answer 1: next question")  # the aggregator's first call
    assert server.requests("m1")[1]["body"]["messages"] == [user("next question")]
    assert leave(child) == 0
    with db(moa_env) as store:
        (session,) = store.list_sessions()
        first, second = store.turns(session.id)
        assert (first.question, first.status, first.final) == ("slow question", "interrupted", "")
        assert {p["model"]: p["status"] for p in first.proposals} == {"openai:m1": "cancelled", "openai:m2": "ok"}
        assert (second.status, store.context_messages(session.id)[0]) == ("ok", user("next question"))


def test_ctrl_c_at_the_prompt_clears_the_line_and_ctrl_d_leaves_with_0(chat, server):
    child = chat(*MIX)
    child.send("half typed")
    child.sendintr()
    ask(child, "q", "agg answer 1: q")
    assert server.requests("m1")[0]["body"]["messages"] == [user("q")]  # "half typed" was dropped
    assert leave(child) == 0


def test_exit_command_leaves_with_0(chat):
    child = chat(*MIX)
    child.send("/exit\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_continue_resumes_the_last_session(chat, server, moa_env):
    child = chat(*MIX)
    ask(child, "remember 42", "agg answer 1: remember 42")
    assert leave(child) == 0
    child = chat(*MIX, "--continue")
    assert re.search(r"continuing session \d+, 1 turns", child.before)
    ask(child, "what number?", "agg answer 2: what number?")
    assert server.requests("m1")[1]["body"]["messages"] == [
        user("remember 42"), assistant("agg answer 1: remember 42"), user("what number?")]
    with db(moa_env) as store:
        (session,) = store.list_sessions()
        assert session.turns == 2


def test_named_session_is_created_then_resumed(chat, server, moa_env):
    child = chat(*MIX, "--session", "work")
    assert "new session 'work'" in child.before
    ask(child, "q1", "agg answer 1: q1")
    leave(child)
    child = chat(*MIX, "--session", "work")
    assert "continuing session 'work'" in child.before
    ask(child, "q2", "agg answer 2: q2")
    assert server.requests("m1")[1]["body"]["messages"][0] == user("q1")


def test_bad_commands_print_one_line_errors_and_the_repl_goes_on(chat, server):
    child = chat(*MIX)
    for line, error in [("/frobnicate", "unknown command /frobnicate"), ("/rounds two", "/rounds: bad value 'two'"),
                        ("/temperature 9", "temperature: expected a number from 0 to 2"),
                        ("/rounds", "usage: /rounds N"), ("/mix nosuchmix", "unknown mix 'nosuchmix'")]:
        child.send(line + "\r")
        child.expect(r"moa: error: ([^\r\n]*)\r\n")
        assert error in child.match.group(1)
        assert "Traceback" not in child.before
    ask(child, "still here?", "agg answer 1: still here?")
    assert all(r["body"].get("temperature") is None for r in server.requests())  # the bad value never applied


def test_slash_commands_for_the_mix_and_the_session(chat, server, tmp_path):
    child = chat(*MIX)
    child.send("/rou\t")  # Tab completes a command name
    child.send(" 0\r")
    child.expect_exact("now using agg")
    child.send("/temperature 0.3\r")
    child.expect_exact("now using agg")
    child.send("/models\r")
    child.expect_exact("aggregator: openai:agg")
    ask(child, "solo", "agg answer 1: solo", prompt="agg>")
    assert [r["model"] for r in server.requests()] == ["agg"]
    assert server.requests("agg")[0]["body"]["temperature"] == 0.3
    child.send("/usage\r")
    child.expect(r"1 turn · [\d,]+ in / [\d,]+ out tokens")
    child.send("/save chat.md\r")
    child.expect_exact("saved to")
    assert "> solo" in (tmp_path / "chat.md").read_text()
    child.send("/new\r")
    child.expect_exact("new conversation")
    ask(child, "fresh", "agg answer 2: fresh", prompt="agg>")
    assert server.requests("agg")[1]["body"]["messages"] == [user("fresh")]  # no context from before /new


def test_retry_regenerates_the_last_answer_and_replaces_it_in_the_context(chat, server, moa_env):
    child = chat(*MIX)
    ask(child, "q1", "agg answer 1: q1")
    child.send("/retry\r")
    child.expect_exact("agg answer 2: q1")
    child.expect_exact(PROMPT)
    assert server.requests("m1")[1]["body"]["messages"] == [user("q1")]  # same context as the first try
    ask(child, "q2", "agg answer 3: q2")
    assert server.requests("m1")[2]["body"]["messages"] == [user("q1"), assistant("agg answer 2: q1"), user("q2")]
    child.send("/history\r")
    child.expect(r"1\. \[replaced\] q1")
    with db(moa_env) as store:
        (session,) = store.list_sessions()
        assert [(t.question, t.final, bool(t.replaced_by)) for t in store.turns(session.id)] == [
            ("q1", "agg answer 1: q1", True), ("q1", "agg answer 2: q1", False), ("q2", "agg answer 3: q2", False)]


def test_alt_enter_adds_a_line_and_a_paste_stays_one_message(chat, server):
    child = chat(*MIX)
    child.send("first line\x1b\rsecond line\r")  # Alt-Enter arrives as Esc, Enter
    child.expect_exact("agg answer 1: first line second line")
    child.expect_exact(PROMPT)
    child.send("\x1b[200~pasted one\npasted two\n\x1b[201~\r")  # a bracketed paste, then Enter
    child.expect_exact("agg answer 2: pasted one pasted two")
    messages = [r["body"]["messages"][-1]["content"] for r in server.requests("m1")]
    assert messages == ["first line\nsecond line", "pasted one\npasted two"]


def test_a_failed_turn_is_reported_stored_and_skipped_as_context(chat, server, moa_env):
    server.script("m1", status=400).script("m2", status=400)
    child = chat(*MIX)
    child.send("doomed\r")
    child.expect(r"moa: error: every reference model failed[^\r\n]*\r\n")
    server.script("m1").script("m2")
    ask(child, "fine", "agg answer 1: fine")
    assert server.requests("m1")[-1]["body"]["messages"] == [user("fine")]
    with db(moa_env) as store:
        (session,) = store.list_sessions()
        assert [t.status for t in store.turns(session.id)] == ["failed", "ok"]


def test_finished_turns_survive_sigkill_mid_turn(chat, server, moa, moa_env):
    child = chat(*MIX)
    ask(child, "kept question", "agg answer 1: kept question")
    server.script("m1", hang=True)
    child.send("doomed question\r")
    wait_for(lambda: len(server.requests("m1")) == 2, "the second turn's request")
    child.kill(signal.SIGKILL)
    child.expect(pexpect.EOF)
    child.close()
    assert child.signalstatus == signal.SIGKILL

    shown = moa("history", "show", "1")
    assert shown.returncode == 0, shown.stderr
    assert "kept question" in shown.stdout and "agg answer 1: kept question" in shown.stdout
    assert "doomed question" not in shown.stdout  # the turn in flight never committed
    conn = sqlite3.connect(Path(moa_env["MOA_HOME"]) / "sessions.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_piped_lines_are_turns_of_one_conversation(moa, server):
    out = moa("chat", *MIX, input="q1\n\nq2\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "agg answer 1: q1\n\nagg answer 2: q2\n"  # answers only, a blank line apart
    assert server.requests("m1")[1]["body"]["messages"] == [user("q1"), assistant("agg answer 1: q1"), user("q2")]
    listed = moa("history", "list")
    assert listed.stdout.split("\t")[4] == "2"  # one session, two turns


def test_piped_failure_continues_and_sets_the_exit_code(moa, server):
    server.script("m1", errors=[{"status": 400}]).script("m2", errors=[{"status": 400}])
    out = moa("chat", *MIX, input="q1\nq2\n")
    assert out.returncode == 1
    assert out.stdout == "agg answer 1: q2\n"
    assert "moa: error: every reference model failed" in out.stderr
    assert server.requests("m1")[-1]["body"]["messages"] == [user("q2")]
    bad = moa("chat", *MIX, input="/rounds x\nq3\n")
    assert bad.returncode == 2 and bad.stdout == "agg answer 2: q3\n"


def test_ask_continue_appends_to_the_last_chat_session(moa, server):
    assert moa("chat", *MIX, input="q1\n").returncode == 0
    out = moa("ask", *MIX, "--continue", "q2")
    assert out.returncode == 0, out.stderr
    assert server.requests("m1")[1]["body"]["messages"] == [user("q1"), assistant("agg answer 1: q1"), user("q2")]
    exported = json.loads(moa("history", "export", "1", "--format", "json").stdout)
    assert [t["question"] for t in exported["turns"]] == ["q1", "q2"]


def test_startup_notices_go_to_stderr(moa, moa_env, tmp_path):
    pytest.importorskip("llama_cpp")
    env = {"TOGETHER_API_KEY": None, "MOA_CONFIG": str(tmp_path / "none.toml")}
    out = moa("chat", env=env, input="")
    assert out.returncode == 0, out.stderr
    assert "moa: no TOGETHER_API_KEY set" in out.stderr and "local" in out.stderr and out.stdout == ""


def test_piped_ctrl_c_mid_turn_stores_the_turn_as_interrupted_and_exits_130(server, moa_env, tmp_path):
    import subprocess

    server.script("m1", hang=True)
    proc = spawn_moa("chat", *MIX, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     env=moa_env, cwd=tmp_path)
    try:
        proc.stdin.write(b"stuck\n")
        proc.stdin.flush()
        wait_for(lambda: server.requests("m1"), "m1's request")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert b"interrupted" in err and b"Traceback" not in err
    wait_for(lambda: server.requests("m1")[0].get("client_closed"), "the cut stream to be closed")
    with db(moa_env) as store:
        (session,) = store.list_sessions()
        assert [(t.question, t.status) for t in store.turns(session.id)] == [("stuck", "interrupted")]


def test_mix_command_switches_to_a_named_mix_and_its_provider(chat, server):
    child = chat(*MIX)
    ask(child, "q1", "agg answer 1: q1")
    child.send("/mix together-2025\r")
    child.expect_exact("now using together-2025")  # the -r/-a flags described the old mix: dropped
    ask(child, "q2", "deepseek-ai/DeepSeek-V3 answer", prompt="together-2025>")
    models = {r["model"] for r in server.requests()[3:]}  # after the first turn's m1, m2 and agg
    assert "deepseek-ai/DeepSeek-V3" in models and not models & {"m1", "m2", "agg"}
    agg = [r for r in server.requests("deepseek-ai/DeepSeek-V3") if r["body"]["messages"][0]["role"] == "system"]
    assert agg[-1]["body"]["messages"][1:] == [user("q1"), assistant("agg answer 1: q1"), user("q2")]
