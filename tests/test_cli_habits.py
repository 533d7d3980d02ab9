"""The CLI conventions users bring from llm, aichat and git: --version, completion, -f files,
-x code extraction, roles, history search, /copy and /file, and --help that teaches. Every test
runs the real `moa` command against the fake OpenAI-compatible server."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from moa_cli import __version__

MIX = ["-r", "openai:m1,openai:m2", "-a", "openai:agg"]

ROLES = """
[roles.reviewer]
description = "a strict reviewer"
system = "You are a strict code reviewer."

[roles.solo]
system = "Answer alone."
mix = "one"

[mixes.one]
references = ["openai:m3"]
aggregator = "openai:agg3"
"""


def last_user(request: dict) -> str:
    return [m for m in request["body"]["messages"] if m["role"] == "user"][-1]["content"]


def system_of(request: dict) -> str | None:
    first = request["body"]["messages"][0]
    return first["content"] if first["role"] == "system" else None


@pytest.fixture
def config(moa_env):
    home = Path(moa_env["MOA_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(ROLES)
    return home


# ---------------------------------------------------------------- --version, bare moa, completion


def test_version_and_bare_moa_prints_help(moa):
    version = moa("--version")
    assert (version.returncode, version.stdout.strip()) == (0, f"moa {__version__}")
    bare = moa()
    assert bare.returncode == 0
    assert bare.stdout.startswith("Usage: moa") and "ask" in bare.stdout and "history" in bare.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_generated(moa, shell):
    out = moa("--show-completion", shell)
    assert out.returncode == 0, out.stderr
    assert "_MOA_COMPLETE" in out.stdout


def test_install_completion_writes_the_script_into_home(moa, tmp_path):
    home = tmp_path / "user"
    home.mkdir()
    out = moa("--install-completion", "bash", env={"HOME": str(home), "SHELL": "/bin/bash"})
    assert out.returncode == 0, out.stderr
    assert "_MOA_COMPLETE" in (home / ".bash_completions" / "moa.sh").read_text()
    assert "moa.sh" in (home / ".bashrc").read_text()


def test_completion_offers_mix_names_and_provider_prefixes(moa, config):
    mixes = moa(env={"_MOA_COMPLETE": "complete_bash", "COMP_WORDS": "moa ask --mix ", "COMP_CWORD": "3"})
    assert {"one", "coding-oss", "local"} <= set(mixes.stdout.split())
    models = moa(env={"_MOA_COMPLETE": "complete_bash", "COMP_WORDS": "moa ask -r op", "COMP_CWORD": "3"})
    assert "openai:" in models.stdout.split()
    named = moa(env={"_MOA_COMPLETE": "complete_bash", "COMP_WORDS": "moa ask -a openai:", "COMP_CWORD": "3"})
    assert {"openai:m3", "openai:agg3"} <= set(named.stdout.split())
    roles = moa(env={"_MOA_COMPLETE": "complete_bash", "COMP_WORDS": "moa chat --role r", "COMP_CWORD": "3"})
    assert roles.stdout.split() == ["reviewer"]


# ---------------------------------------------------------------- -f / --file


def test_files_go_between_stdin_and_the_question_with_their_names(moa, server, tmp_path):
    (tmp_path / "app.py").write_text("print('hi')\n")
    (tmp_path / "notes.md").write_text("```\nfenced\n```")
    out = moa("ask", *MIX, "-f", "app.py", "--file", "notes.md", "explain", input="from stdin\n")
    assert out.returncode == 0, out.stderr
    assert last_user(server.requests("m1")[0]) == (
        "from stdin\n\n"
        "File: app.py\n```\nprint('hi')\n```\n\n"
        "File: notes.md\n````\n```\nfenced\n```\n````\n\n"
        "explain")


def test_binary_fifo_and_oversized_files_are_refused_in_one_line(moa, server, tmp_path):
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "big.txt").write_text("x" * (1 << 20 + 1))
    (tmp_path / "half.txt").write_text("y" * (600 << 10))
    for args in (["-f", "image.png"], ["-f", "latin1.txt"], ["-f", "pipe"], ["-f", "/dev/zero"],
                 ["-f", "big.txt"], ["-f", "half.txt", "-f", "half.txt"], ["-f", "missing.txt"], ["-f", "."]):
        out = moa("ask", *MIX, *args, "q")
        assert out.returncode == 2, (args, out.stderr)
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("moa: error:"), out.stderr
    assert server.requests() == []  # refused before any model was called
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe").st_mode)


def test_chat_file_flag_and_slash_file_attach_to_the_next_message(moa, server, tmp_path):
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "b.txt").write_text("beta\n")
    out = moa("chat", *MIX, "-f", "a.txt", input="first\nsecond\n/file b.txt\nthird\n")
    assert out.returncode == 0, out.stderr
    asked = [last_user(r) for r in server.requests("m1")]
    assert asked == ["File: a.txt\n```\nalpha\n```\n\nfirst", "second", "File: b.txt\n```\nbeta\n```\n\nthird"]


# ---------------------------------------------------------------- -x / --extract


ANSWER = """Here is the plan.

```python
import sys
print(sys.argv)
```

Then run it:

~~~bash
python script.py a b
~~~

Done."""


def test_extract_prints_only_the_code_blocks(moa, server):
    server.script("agg", reply=ANSWER, chunk_words=3)
    every = moa("ask", *MIX, "-x", "write a script")
    assert every.returncode == 0, every.stderr
    assert every.stdout == "import sys\nprint(sys.argv)\n\npython script.py a b\n"
    last = moa("ask", *MIX, "--extract-last", "write a script")
    assert (last.returncode, last.stdout) == (0, "python script.py a b\n")


def test_extract_without_a_code_block_is_an_error_and_hostile_code_is_made_visible(moa, server):
    server.script("agg", reply="no code here")
    none = moa("ask", *MIX, "-x", "q")
    assert (none.returncode, none.stdout) == (1, "")
    assert moa("ask", *MIX, "-x", "--json", "q").returncode == 2
    server.script("agg", reply="```\necho \x1b]0;owned\x07\n```")
    hostile = moa("ask", *MIX, "-x", "q")
    assert hostile.returncode == 0 and "\x1b" not in hostile.stdout and "\\x1b]0;owned" in hostile.stdout


# ---------------------------------------------------------------- roles


def test_role_sets_the_system_prompt_and_continue_restores_it(moa, server, config):
    listed = moa("roles")
    assert listed.returncode == 0 and "reviewer" in listed.stdout and "solo" in listed.stdout
    first = moa("chat", *MIX, "--role", "reviewer", input="q1\n")
    assert first.returncode == 0, first.stderr
    again = moa("chat", "--continue", input="q2\n")
    assert again.returncode == 0, again.stderr
    by_question = {last_user(r): r for r in server.requests("m1")}
    assert system_of(by_question["q1"]) == "You are a strict code reviewer."
    assert system_of(by_question["q2"]) == "You are a strict code reviewer."
    assert "agg answer 1: q1" in again.stderr  # the recap of the last exchange
    db = sqlite3.connect(config / "sessions.db")
    assert db.execute("SELECT role FROM sessions").fetchall() == [("reviewer",)]


def test_role_with_a_mix_and_slash_role_and_system_in_chat(moa, server, config):
    solo = moa("ask", "--role", "solo", "q")
    assert solo.returncode == 0, solo.stderr
    assert {r["model"] for r in server.requests()} == {"m3", "agg3"}
    chat = moa("chat", *MIX, input="/role reviewer\nr1\n/system Be terse.\nr2\n")
    assert chat.returncode == 0, chat.stderr
    by_question = {last_user(r): r for r in server.requests() if r["model"] in ("m1", "m3")}
    assert system_of(by_question["r1"]) == "You are a strict code reviewer."
    assert system_of(by_question["r2"]) == "Be terse."
    resumed = moa("chat", "--continue", input="r3\n")
    assert resumed.returncode == 0
    assert system_of([r for r in server.requests() if last_user(r) == "r3"][0]) == "Be terse."
    unknown = moa("ask", *MIX, "--role", "nope", "q")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1


# ---------------------------------------------------------------- history search and show


def test_history_search_finds_questions_and_answers_newest_first(moa, server):
    server.script("agg", replies={"pool": "use a connection pool", "cache": "an LRU cache"})
    for question in ("tuning the pool", "cache sizing", "more on pool size"):
        assert moa("ask", *MIX, question).returncode == 0
    out = moa("history", "search", "pool")
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert [(r[0], r[2]) for r in rows] == [("3", "1"), ("1", "1")]  # session, turn; newest first
    assert [r[0] for r in (line.split("\t") for line in moa("history", "search", "LRU").stdout.splitlines())] == ["2"]
    tricky = moa("history", "search", 'pool" OR "cache', "NEAR(")  # FTS syntax is only text here
    assert (tricky.returncode, tricky.stdout) == (0, "")
    completed = moa(env={"_MOA_COMPLETE": "complete_bash", "COMP_WORDS": "moa history show ", "COMP_CWORD": "3"})
    assert completed.stdout.split() == ["3", "2", "1"]  # session ids, newest first
    assert moa("history", "delete", "3").returncode == 0
    assert [line.split("\t")[0] for line in moa("history", "search", "pool").stdout.splitlines()] == ["1"]


def test_management_actions_are_subcommands_with_their_own_help(moa, server):
    show = moa("history", "show", "--help")
    assert show.returncode == 0 and show.stdout.startswith("Usage: moa history show")
    assert "--proposals" in show.stdout and "--limit" not in show.stdout
    assert moa("history", "show", "nope").returncode == 2
    assert moa("config", "path").stdout.strip().endswith("config.toml")
    assert moa("keys", "list").returncode == 0


# ---------------------------------------------------------------- /copy


def test_copy_puts_the_answer_or_its_code_on_the_clipboard(moa, server, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    clip = tmp_path / "clipboard.txt"
    tool = bin_dir / "xclip"
    tool.write_text(f"#!/bin/sh\ncat > {clip}\n")
    tool.chmod(0o755)
    server.script("agg", reply="Run:\n\n```sh\nls -la\n```\n")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "DISPLAY": ":99", "WAYLAND_DISPLAY": None}
    out = moa("chat", *MIX, input="q\n/copy code\n", env=env)
    assert out.returncode == 0, out.stderr
    assert clip.read_text() == "ls -la\n"
    assert moa("chat", *MIX, input="q\n/copy\n", env=env).returncode == 0
    assert clip.read_text() == "Run:\n\n```sh\nls -la\n```\n"
    server.script("agg", reply="paste \x1b[201~ then rm -rf ~")  # would end a terminal's bracketed paste
    assert moa("chat", *MIX, input="q\n/copy\n", env=env).returncode == 0
    assert clip.read_text() == "paste \\x1b[201~ then rm -rf ~"
    nowhere = moa("chat", *MIX, input="q\n/copy\n", env={"PATH": str(bin_dir), "DISPLAY": None,
                                                           "WAYLAND_DISPLAY": None})
    assert "no clipboard" in nowhere.stderr


# ---------------------------------------------------------------- --help that teaches

COMMANDS = ["ask", "chat", "bench", "mixes", "models", "roles", "serve", "mcp", "history", "history list",
            "history show", "history export", "history search", "history delete", "config", "config path",
            "config show", "config init", "keys", "keys list", "keys set", "keys delete"]


HELP_PROBE = """
import contextlib, io, json, sys
from moa_cli import cli
out = {}
for command in json.loads(sys.argv[1]):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = cli.run([*command.split(), "--help"])
    out[command] = [code, buffer.getvalue()]
print(json.dumps(out))
"""


def test_every_help_has_examples_and_plain_placeholders_at_80_columns(moa_env, tmp_path):
    import json
    import subprocess
    import sys

    # One process prints every command's help (22 start-ups would cost more than the check).
    proc = subprocess.run([sys.executable, "-c", HELP_PROBE, json.dumps(COMMANDS)], capture_output=True, text=True,
                          env={**moa_env, "COLUMNS": "80"}, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for command, (code, text) in json.loads(proc.stdout).items():
        assert code == 0, command
        assert text.startswith(f"Usage: moa {command} "), command  # its own help, not its group's
        assert "Example" in text, command
        for line in text.splitlines():
            assert len(line) <= 80, (command, line)
            assert not any(t in line for t in ("<str>", "<int>", "<float>", "<list[", "<bool>")), (command, line)


def test_top_level_summaries_are_whole(moa):
    out = moa("--help", env={"COLUMNS": "80"})
    listing = out.stdout.split("Commands:")[1]
    assert "..." not in listing
    assert {line.split()[0] for line in listing.splitlines() if line.startswith("  ") and not line.startswith("   ")} \
        >= {c for c in COMMANDS if " " not in c}


# ---------------------------------------------------------------- on a terminal: pager, editor


def _spawn(moa_env, tmp_path, args, env=None):
    from conftest import spawn_moa

    return spawn_moa(*args, env={**moa_env, "PROMPT_TOOLKIT_NO_CPR": "1", **(env or {})}, cwd=tmp_path, pty=True,
                     rows=40, cols=120, encoding="utf-8", timeout=30)


def test_history_show_pages_on_a_terminal_only(moa, moa_env, server, tmp_path):
    import pexpect

    assert moa("ask", *MIX, "paged question").returncode == 0
    paged = tmp_path / "paged.txt"
    pager = f"sh -c 'cat > {paged}'"
    child = _spawn(moa_env, tmp_path, ["history", "show", "1"], env={"PAGER": pager})
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "agg answer 1: paged question" in paged.read_text()
    paged.unlink()
    piped = moa("history", "show", "1", env={"PAGER": pager})
    assert "agg answer 1: paged question" in piped.stdout and not paged.exists()
    child = _spawn(moa_env, tmp_path, ["history", "show", "1", "--no-pager"], env={"PAGER": pager})
    child.expect_exact("agg answer 1: paged question")
    child.expect(pexpect.EOF)
    child.close()
    assert not paged.exists()


def test_ctrl_x_ctrl_e_edits_the_message_in_editor(moa_env, server, tmp_path):
    import pexpect

    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nprintf 'edited in the editor' > \"$1\"\n")
    editor.chmod(0o755)
    child = _spawn(moa_env, tmp_path, ["chat", *MIX], env={"EDITOR": str(editor), "VISUAL": str(editor)})
    try:
        child.expect_exact("agg>")
        child.send("draft")
        child.send("\x18\x05")  # Ctrl-X Ctrl-E
        child.expect_exact("agg answer 1: edited in the editor")
        child.expect_exact("agg>")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert [last_user(r) for r in server.requests("m1")] == ["edited in the editor"]


def test_a_broken_role_is_one_config_error(moa, config):
    (config / "config.toml").write_text('[roles.bad]\nsystem = ""\n')
    for args in (["config", "show"], ["roles"], ["ask", "--role", "bad", "q"]):
        out = moa(*args)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "[roles.bad]" in out.stderr, (args, out.stderr)


def test_code_blocks_follow_commonmark_fences():
    from moa_cli.extract_code import code_blocks

    text = ("intro ``` not a fence\n"
            "  ```js\n  let a = 1;\n    nested\n  ```\n"
            "````md\n```\ninner\n```\n````\n"
            "~~~\ntilde\n~~~~\n"
            "```py\ncut at max_tokens")
    assert code_blocks(text) == ["let a = 1;\n  nested\n", "```\ninner\n```\n", "tilde\n", "cut at max_tokens\n"]
    assert code_blocks("``` `x` ```\nplain") == []


def test_search_indexes_the_turns_of_an_older_database(tmp_path):
    from moa_cli.store import MIGRATIONS, Store

    path = tmp_path / "sessions.db"
    old = sqlite3.connect(path)
    for step in MIGRATIONS[:-1]:
        old.executescript(step)
    old.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    old.execute("INSERT INTO sessions (id, name, created, updated, mix) VALUES (1, 'kept', 1.0, 1.0, 'm')")
    old.execute("INSERT INTO turns (id, session_id, seq, created, question, final, status, mix)"
                " VALUES (1, 1, 1, 1.0, 'an old question', 'about sqlite indexes', 'ok', 'm')")
    old.commit()
    old.close()
    with Store.open(path) as store:
        (hit,) = store.search("sqlite")
        assert (hit.session_id, hit.session_name, hit.seq) == (1, "kept", 1)
        assert store.session_role(1) is None
