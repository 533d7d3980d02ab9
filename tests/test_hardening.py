"""Hostile input, driven through the real `moa` against the fake server: leaked keys, endless
streams, odd numbers, broken files, foreign databases, signals. Each test names the class of
attack it covers (see SECURITY.md)."""

from __future__ import annotations

import base64
import json
import os
import random
import sqlite3
import string
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import moa_command, spawn_moa

ALONE = ["--rounds", "0", "-a"]  # the aggregator alone: one call, the simplest turn


def random_key(length: int = 40) -> str:
    """A key shaped like no known provider's: only the known-secret redaction can catch it."""
    return "".join(random.choices(string.ascii_letters + string.digits, k=length))


def leaks(key: str, *texts: str | bytes) -> list[str]:
    """Where the key, or a long piece of it, or a common encoding of it, shows up."""
    forms = {key, key[:16], key[-16:], quote(key), base64.b64encode(key.encode()).decode()[:20]}
    found = []
    for text in texts:
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        found += [form for form in forms if form in text]
    return found


def stored_bytes(home: Path) -> bytes:
    """Everything under MOA_HOME (the database with its WAL), as bytes."""
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


# ---------------------------------------------------------------- secrets


@pytest.fixture
def key():
    return random_key()


def test_a_key_quoted_by_a_streamed_error_is_nowhere(moa, server, moa_env, key, tmp_path):
    """Errors raised inside the stream (an error event, a malformed event, an HTTP error body)
    quoting the key, also URL-encoded and repr-escaped: not on stdout, stderr, --json, in the
    session database or an export."""
    server.script("quota", raw=['data: {"error":{"message":"quota exceeded for key %s"}}\n\n' % key])
    server.script("broken", raw=['data: {"choices": [%s %s\n\n' % (key, quote(key))])
    server.script("body", response={"status": 400, "body": {"error": {"message": f"bad key {key!r} {key}"}}})
    server.script("agg", reply="the final answer")
    env = {"OPENAI_API_KEY": key}
    refs = ["-r", "openai:quota,openai:broken,openai:body,openai:ok", "-a", "openai:agg", "--retries", "0"]
    asked = moa("ask", *refs, "--json", "q", env=env)
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["final"] == "the final answer"
    assert "***" in asked.stdout  # the errors are there, scrubbed
    plain = moa("ask", *refs, "q", env=env)
    failed = moa("ask", *ALONE, "openai:quota", "--json", "q", env=env)
    assert failed.returncode == 1
    md = moa("history", "export", "1")
    exported = moa("history", "export", "3", "--format", "json")
    assert md.returncode == 0 and exported.returncode == 0
    home = Path(moa_env["MOA_HOME"])
    assert not leaks(key, asked.stdout, asked.stderr, plain.stdout, plain.stderr, failed.stdout, failed.stderr,
                     md.stdout, exported.stdout, stored_bytes(home))


def test_a_key_read_with_whitespace_is_stripped(moa, moa_env, tmp_path):
    """`KEY\\r` in the environment or a quoted "KEY\\n" in .env: the key works and never leaks
    through an illegal-header error."""
    from fakeserver import FakeServer

    key = random_key()
    with FakeServer(api_key=key) as strict:
        strict.script("m", reply="authorised")
        base = {"OPENAI_BASE_URL": strict.v1}
        from_env = moa("ask", *ALONE, "openai:m", "q", env={**base, "OPENAI_API_KEY": key + "\r"})
        (tmp_path / ".env").write_text(f'OPENAI_API_KEY="{key}\\n"\n')
        from_dotenv = moa("ask", *ALONE, "openai:m", "q", env={**base, "OPENAI_API_KEY": None})
    for run in (from_env, from_dotenv):
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "authorised"
    assert not leaks(key, from_env.stderr, from_dotenv.stderr, stored_bytes(Path(moa_env["MOA_HOME"])))


def test_an_expanded_header_value_is_secret_whatever_its_name(moa, server, moa_env, tmp_path):
    """`X-Custom = "${CUSTOM}"` is not named like a credential; a server echoing it in an error
    still shows ***."""
    value = random_key(24)
    config = tmp_path / "config.toml"
    config.write_text(f'[providers.lab]\nbase_url = "{server.v1}"\nheaders = {{ "X-Custom" = "${{CUSTOM}}" }}\n')
    server.script("m", response={"status": 400, "body": {"error": {"message": f"bad X-Custom {value}"}}})
    run = moa("ask", *ALONE, "lab:m", "--json", "q", env={"MOA_CONFIG": str(config), "CUSTOM": value})
    assert run.returncode == 1
    assert server.log[-1]["headers"]["x-custom"] == value  # it was sent...
    assert not leaks(value, run.stdout, run.stderr, stored_bytes(Path(moa_env["MOA_HOME"])))  # ...never shown


# ---------------------------------------------------------------- bounded waits
# Retry-After, keep-alives, endless drips, empty and redirected answers, absurd usage: policy,
# tested in-process in test_policy_inprocess.py.


def test_the_deadline_has_a_config_key_and_a_range(moa_inprocess, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[defaults]\ndeadline = -1\n")
    run = moa_inprocess("ask", "q", env={"MOA_CONFIG": str(config)})
    assert run.returncode == 2 and "[defaults] deadline" in run.stderr
    assert moa_inprocess("ask", "--deadline", "inf", "q").returncode == 2


# ---------------------------------------------------------------- numbers

HUGE = "9" * 400


@pytest.mark.parametrize("flag", ["--max-tokens", "--rounds", "--concurrency", "--retries", "--min-proposers",
                                  "--reference-max-tokens", "--timeout", "--deadline", "--proposer-deadline"])
def test_a_400_digit_flag_is_one_line_and_exit_2(moa_inprocess, flag):
    run = moa_inprocess("ask", flag, HUGE, "q")
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "internal error" not in run.stderr and flag in run.stderr


@pytest.mark.parametrize("setting", ["max_tokens", "seed", "retries", "context_window", "weight", "timeout"])
def test_a_400_digit_config_value_is_one_line_and_exit_2(moa_inprocess, tmp_path, setting):
    config = tmp_path / "config.toml"
    config.write_text(f"[mixes.m]\nreferences = [\"openai:a\"]\naggregator = {{ model = \"openai:b\", {setting} = {HUGE} }}\n"
                      if setting in ("seed", "weight", "context_window") else f"[defaults]\n{setting} = {HUGE}\n")
    run = moa_inprocess("ask", "q", env={"MOA_CONFIG": str(config)})
    assert run.returncode == 2 and "internal error" not in run.stderr and setting in run.stderr


def test_a_huge_number_in_a_slash_command_does_not_end_the_chat(moa, server):
    server.script("*", reply="still here")
    run = moa("chat", *ALONE, "openai:m", input=f"/max-tokens {HUGE}\n/rounds {'9' * 5000}\nhello\n")
    assert "still here" in run.stdout
    assert "max-tokens" in run.stderr and "/rounds" in run.stderr and "internal error" not in run.stderr


# ---------------------------------------------------------------- config files


@pytest.mark.parametrize("text", ["a = " + "[" * 50000, "a = " + "{b = " * 50000, f"[defaults]\nseed = {'9' * 5000}\n"])
def test_a_pathological_config_file_is_one_line(moa_inprocess, tmp_path, text):
    config = tmp_path / "config.toml"
    config.write_text(text)
    run = moa_inprocess("config", "show", env={"MOA_CONFIG": str(config)})
    assert run.returncode == 2 and run.stderr.startswith(f"moa: error: config error in {config}")
    assert run.stderr.count("\n") == 1


def test_a_config_that_is_not_a_regular_file_is_refused(moa, tmp_path):
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo), str(tmp_path)):
        run = moa("ask", "q", env={"MOA_CONFIG": path}, timeout=30)  # a hang would time out here
        assert run.returncode == 2 and "not a regular file" in run.stderr, run.stderr


@pytest.mark.parametrize("url, problem", [
    ("http://127.0.0.1:notaport/v1", "port"), ("http://127.0.0.1:99999/v1", "port"),
    ("ftp://example.org/v1", "http://"), ("http:///v1", "no host"),
])
def test_a_bad_base_url_is_caught_when_the_config_is_read(moa_inprocess, tmp_path, url, problem):
    config = tmp_path / "config.toml"
    config.write_text(f'[providers.lab]\nbase_url = "{url}"\n')
    run = moa_inprocess("config", "show", env={"MOA_CONFIG": str(config)})
    assert run.returncode == 2 and "[providers.lab] base_url" in run.stderr and problem in run.stderr
    from_env = moa_inprocess("ask", *ALONE, "openai:m", "q", env={"OPENAI_BASE_URL": url})
    assert from_env.returncode == 2 and "OPENAI_BASE_URL" in from_env.stderr


# ---------------------------------------------------------------- the store and files


def test_a_foreign_sqlite_file_is_refused_and_left_untouched(moa, server, moa_env):
    home = Path(moa_env["MOA_HOME"])
    home.mkdir(parents=True)
    with sqlite3.connect(home / "sessions.db") as db:
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    before = (home / "sessions.db").read_bytes()
    run = moa("ask", *ALONE, "openai:m", "q")
    assert run.returncode == 2 and "not a moa session database" in run.stderr
    assert (home / "sessions.db").read_bytes() == before and not server.requests()


def test_a_dropped_table_is_one_line(moa, server, moa_env):
    assert moa("ask", *ALONE, "openai:m", "q").returncode == 0
    with sqlite3.connect(Path(moa_env["MOA_HOME"]) / "sessions.db") as db:
        db.execute("DROP TABLE proposals")
    for args in (("ask", *ALONE, "openai:m", "q"), ("history", "list")):
        run = moa(*args)
        assert run.returncode == 2 and "damaged" in run.stderr and "Error" not in run.stderr


def test_moa_home_is_created_private_under_any_umask(moa_env, tmp_path):
    home = tmp_path / "fresh" / "home"
    proc = subprocess.run([*moa_command(), "config", "init"],
                          env={**moa_env, "MOA_HOME": str(home)}, capture_output=True, preexec_fn=lambda: os.umask(0))
    assert proc.returncode == 0, proc.stderr
    assert home.stat().st_mode & 0o777 == 0o700
    assert (home / "config.toml").stat().st_mode & 0o077 == 0
    assert not [p for p in home.iterdir() if p.name.endswith(".tmp")]


def test_unwritable_moa_home_is_one_line_for_keys_and_config(moa, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a directory should be")
    env = {"MOA_HOME": str(blocker / "home")}
    for args, stdin in ((("config", "init"), None), (("keys", "set", "openai"), "k" * 20 + "\n")):
        run = moa(*args, input=stdin, env=env)
        assert run.returncode == 2 and run.stderr.startswith("moa: error: cannot") and "internal" not in run.stderr


def test_config_init_never_overwrites(moa_inprocess, moa_env):
    assert moa_inprocess("config", "init").returncode == 0
    path = Path(moa_env["MOA_HOME"]) / "config.toml"
    path.write_text("# mine\n")
    run = moa_inprocess("config", "init")
    assert run.returncode == 2 and path.read_text() == "# mine\n"


# ---------------------------------------------------------------- minor classes


@pytest.mark.parametrize("args", [["-a", ":::"], ["-r", "-,:", "-a", "openai:m"], ["--session", ""],
                                  ["--session", "   "]])
def test_nonsense_names_are_refused(moa_inprocess, server, args):
    run = moa_inprocess("ask", *args, "q")
    assert run.returncode == 2 and not server.requests()


def test_piped_chat_goes_on_after_a_line_that_is_not_utf8(moa, server):
    server.script("*", reply="answered")
    run = moa("chat", *ALONE, "openai:m", input=b"first\n\xff\xfe bad\nsecond\n")
    assert run.stdout.count("answered") == 2 and "not UTF-8" in run.stderr
    assert run.returncode == 2


def test_escape_codes_in_errors_model_ids_and_descriptions_are_made_visible(moa, server, tmp_path):
    evil = "\x1b]52;c;aGk=\x07\x1b[2J\x9b31m"
    server.script("m", response={"status": 400, "body": {"error": {"message": f"no {evil} way"}}})
    server.known_models = {f"model{evil}", "m"}
    config = tmp_path / "config.toml"
    config.write_text(f'[mixes.e]\ndescription = {json.dumps(evil)}\nreferences = ["openai:a"]\naggregator = "openai:b"\n')
    runs = [moa("ask", *ALONE, "openai:m", "q"), moa("models", "openai"),
            moa("mixes", env={"MOA_CONFIG": str(config)}), moa("mixes", "show", "e", env={"MOA_CONFIG": str(config)})]
    for run in runs:
        for text in (run.stdout, run.stderr):
            assert "\x1b" not in text and "\x9b" not in text and "\x07" not in text
    assert "\\x1b]52" in runs[0].stderr and "model\\x1b" in runs[1].stdout


# ---------------------------------------------------------------- signals


def _entry_command() -> list[str]:
    """The module entry itself (not the installed script): what this test's signal timing is about."""
    return [sys.executable, "-m", "moa_cli"]


def test_ctrl_c_while_starting_prints_no_traceback(moa_env, tmp_path):
    """Ctrl-C at any moment of start-up: one line and exit 130, never a traceback. The child
    starts with SIGINT ignored, so a signal that lands while the interpreter itself is still
    initialising (before any moa code runs, outside moa's reach) is discarded; from moa's first
    line on, moa handles it."""
    import signal

    outcomes = []
    for after in (0.0, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1, 0.12):
        proc = subprocess.Popen([*_entry_command(), "mixes"], env=moa_env, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        time.sleep(after)
        # Keep pressing Ctrl-C until it exits: the first press lands at `after` into start-up, the
        # later ones make sure one arrives once moa handles it, however slow a loaded machine is.
        end = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < end:
            proc.send_signal(signal.SIGINT)
            time.sleep(0.005)
        _, err = proc.communicate(timeout=30)
        assert b"Traceback" not in err, err.decode()
        outcomes.append(proc.returncode)
    assert set(outcomes) <= {0, 130}, outcomes
    assert 130 in outcomes  # at least one signal arrived while moa was starting or running


def _pty_moa(args: list[str], env: dict, cwd: Path):
    return spawn_moa(*args, env=env, cwd=cwd, pty=True, rows=30, cols=100, timeout=30)


def _wait_for_request(server, model: str) -> None:
    for _ in range(600):
        if server.requests(model):
            return
        time.sleep(0.05)
    raise AssertionError(f"no request for {model}")


def test_sigterm_during_a_chat_turn_restores_echo_and_saves_the_turn(moa_env, server, tmp_path):
    import termios

    server.script("slow", reply="late", delay=30)
    child = _pty_moa(["chat", *ALONE, "openai:slow"], moa_env, tmp_path)
    child.expect("slow>")
    child.sendline("a question")
    _wait_for_request(server, "slow")
    child.kill(15)
    child.expect(pexpect_eof())
    attrs = termios.tcgetattr(child.child_fd)
    child.close()
    assert attrs[3] & termios.ECHO, "echo is still off"
    assert child.exitstatus == 143
    with sqlite3.connect(Path(moa_env["MOA_HOME"]) / "sessions.db") as db:
        assert db.execute("SELECT question, status FROM turns").fetchall() == [("a question", "interrupted")]


def test_sigterm_during_ask_shows_the_cursor_again(moa_env, server, tmp_path):
    server.script("slow", reply="late", delay=30)
    server.script("ref", reply="early")
    child = _pty_moa(["ask", "-r", "openai:ref", "-a", "openai:slow", "q"], moa_env, tmp_path)
    _wait_for_request(server, "slow")
    child.kill(15)
    child.expect(pexpect_eof())
    out = child.before
    child.close()
    assert child.exitstatus == 143
    hidden, shown = out.rfind(b"\x1b[?25l"), out.rfind(b"\x1b[?25h")
    assert hidden == -1 or shown > hidden, out[-200:]


def pexpect_eof():
    import pexpect

    return pexpect.EOF
