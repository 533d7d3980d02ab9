"""`moa history list|show|export|delete`, on sessions made by the real `moa chat` and `moa ask`. The
history commands run no turn: they run in-process (moa_inprocess), except on a terminal."""

from __future__ import annotations

import json

import pytest

MIX = ["-r", "openai:m1,openai:m2", "-a", "openai:agg"]


@pytest.fixture
def two_sessions(moa, server):
    """Session 1 (unnamed): q1, q2. Session 2 ('notes'): n1."""
    assert moa("chat", *MIX, input="q1\nq2\n").returncode == 0
    assert moa("chat", *MIX, "--session", "notes", input="n1\n").returncode == 0


def test_list_is_tab_separated_newest_first_when_piped(moa_inprocess, two_sessions):
    out = moa_inprocess("history", "list")
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert [(r[0], r[1], r[4], r[5]) for r in rows] == [("2", "notes", "1", "n1"), ("1", "-", "2", "q1")]
    assert "\x1b[" not in out.stdout


def test_list_with_no_sessions_says_so_on_stderr(moa_inprocess):
    out = moa_inprocess("history", "list")
    assert (out.returncode, out.stdout) == (0, "")
    assert "no saved sessions" in out.stderr


def test_show_prints_each_question_and_answer(moa_inprocess, two_sessions):
    out = moa_inprocess("history", "show", "1")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.index("> q1") < text.index("agg answer 1: q1") < text.index("> q2") < text.index("agg answer 2: q2")
    assert "m1 answer" not in text  # reference answers only with --proposals
    with_refs = moa_inprocess("history", "show", "notes", "--proposals").stdout  # a name works as well as an id
    assert "### openai:m1 · round 1 · ok" in with_refs and "m1 answer 3: n1" in with_refs


def test_export_markdown_and_json(moa_inprocess, two_sessions, tmp_path):
    md = moa_inprocess("history", "export", "1", "--format", "md")
    assert md.returncode == 0, md.stderr
    assert md.stdout.startswith("# ") and "## Turn 2" in md.stdout and "agg answer 2: q2" in md.stdout
    data = json.loads(moa_inprocess("history", "export", "1", "--format", "json").stdout)
    assert [t["question"] for t in data["turns"]] == ["q1", "q2"]
    assert {p["model"] for p in data["turns"][0]["proposals"]} == {"openai:m1", "openai:m2", "openai:agg"}
    assert data["turns"][0]["mix_detail"]["aggregator"]["model"] == "agg"
    out = moa_inprocess("history", "export", "notes", "-f", "json", "-o", "notes.json")
    assert out.returncode == 0 and out.stdout == ""
    assert json.loads((tmp_path / "notes.json").read_text())["session"]["name"] == "notes"
    bad = moa_inprocess("history", "export", "1", "--format", "html")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "moa: error:" in bad.stderr


def test_delete_removes_a_session_and_unknown_ids_are_errors(moa_inprocess, two_sessions):
    out = moa_inprocess("history", "delete", "1")
    assert out.returncode == 0, out.stderr
    assert "deleted session 1" in out.stderr
    assert [line.split("\t")[0] for line in moa_inprocess("history", "list").stdout.splitlines()] == ["2"]
    for args in (["delete", "1"], ["show", "99"], ["export", "nosuch"]):
        missing = moa_inprocess("history", *args)
        assert missing.returncode == 2
        assert missing.stderr.startswith("moa: error: no session") and missing.stderr.count("\n") == 1


def test_bad_action_and_missing_id_are_usage_errors(moa_inprocess):
    for args in (["frobnicate"], ["show"], ["delete"]):
        out = moa_inprocess("history", *args)
        assert out.returncode == 2, args
        assert out.stderr.startswith("moa: error:") and "Traceback" not in out.stderr


def test_on_a_terminal_list_and_show_are_formatted(moa_env, two_sessions, tmp_path):
    import re

    import pexpect

    from conftest import spawn_moa

    for args, expected in ((["list"], r"id\s+name\s+updated"), (["show", "notes"], r"Session 2 'notes'")):
        child = spawn_moa("history", *args, env=moa_env, cwd=tmp_path, pty=True, rows=40, cols=120,
                          encoding="utf-8", timeout=20)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", child.before)
        assert re.search(expected, text), text
        assert "\t" not in text  # a table or rendered Markdown, not the pipe format
