"""`moa ask` on a real pseudo-terminal: live proposer panels, the final answer, the summary line."""

from __future__ import annotations

import re

import pexpect

from conftest import spawn_moa as spawn

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def spawn_moa(args, env):
    return spawn(*args, env=env, pty=True, rows=40, cols=120, encoding="utf-8", timeout=30)


def test_live_panels_then_markdown_answer_then_summary(moa_env, server):
    server.script("m1", reply="alpha beta gamma", chunk_delay=0.01)
    server.script("m2", reply="one two three")
    server.script("agg", reply="# Title\n\nThe **final** answer.\n\n- first\n- second\n")
    child = spawn_moa(["ask", "-r", "openai:m1,openai:m2", "-a", "openai:agg", "hello"], moa_env)
    child.expect(pexpect.EOF)
    child.close()
    screen = ANSI.sub("", child.before)
    assert child.exitstatus == 0, screen
    # One titled panel per reference, with status, time and tokens when done.
    assert re.search(r"m1 · r1", screen) and re.search(r"m2 · r1", screen)
    assert re.search(r"ok · \d+\.\ds · 3 tok", screen)
    assert "alpha beta gamma" in screen and "one two three" in screen
    # Markdown is rendered, not echoed raw.
    assert "final answer" in screen and "**final**" not in screen
    assert "• first" in screen
    # The summary line: wall time, tokens per role, cost.
    assert re.search(r"\d+\.\d+s · refs \d+ in / 6 out · aggregator \d+ in / \d+ out", screen)


def test_failed_reference_shows_in_its_panel_and_the_turn_goes_on(moa_env, server):
    server.script("m2", status=500)
    child = spawn_moa(["ask", "-r", "openai:m1,openai:m2", "-a", "openai:agg", "--retries", "0", "hi"], moa_env)
    child.expect(pexpect.EOF)
    child.close()
    screen = ANSI.sub("", child.before)
    assert child.exitstatus == 0, screen
    assert "failed" in screen and "openai:m2" in screen
    assert "agg answer 1: hi" in screen
