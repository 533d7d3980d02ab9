"""Issue 19: live panels must not flood tmux's scrollback, and printed lines are not padded.

The real `moa ask` runs in a real tmux (its own server socket under tmp_path), against the fake
server, after `clear`, so the live region starts on the screen's top row: the case where erasing
"to the end of the screen" from the top-left corner made tmux copy every redraw into its history.
Skipped where tmux is missing.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import MOA, wait_for

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
ROWS, COLS = 40, 100


@pytest.fixture
def tmux(tmp_path, moa_env):
    socket = str(tmp_path / "tmux.sock")
    env = {**moa_env, "TERM": "xterm-256color"}
    env.pop("TMUX", None)

    def run(*args: str) -> str:
        return subprocess.run([TMUX, "-S", socket, *args], env=env, capture_output=True, text=True,
                              timeout=30, check=True).stdout

    run("-f", "/dev/null", "new-session", "-d", "-s", "t", "-x", str(COLS), "-y", str(ROWS), "sh")
    run("set-option", "-t", "t", "history-limit", "10000")
    try:
        yield run
    finally:
        subprocess.run([TMUX, "-S", socket, "kill-server"], env=env, capture_output=True, timeout=30)


def _ask_in_tmux(tmux, server, tmp_path) -> None:
    words = " ".join(f"w{i}" for i in range(40))
    for name in ("m1", "m2", "m3"):
        server.script(name, reply=f"{name} {words}", chunk_delay=0.04)  # many redraws per panel
    server.script("agg", reply="The final answer, in a few short words.", chunk_delay=0.04)
    moa = MOA or "python -m moa_cli"
    tmux("send-keys", "-t", "t",
         f"cd {tmp_path} && clear && {moa} ask -r openai:m1,openai:m2,openai:m3 -a openai:agg q; echo DONE-$?", "Enter")
    wait_for(lambda: "DONE-0" in tmux("capture-pane", "-p", "-t", "t"), "moa to finish in tmux", timeout=60)


def _padded(lines: list[str]) -> list[str]:
    """Lines ending in spaces, but for the shell's own prompt ("# ", "$ ")."""
    return [line for line in lines if line != line.rstrip() and line.rstrip() not in ("#", "$")]


def test_redraws_from_the_top_row_do_not_go_into_tmux_history(tmux, server, tmp_path):
    _ask_in_tmux(tmux, server, tmp_path)
    history = int(tmux("display-message", "-p", "-t", "t", "#{history_size}").strip())
    screen = tmux("capture-pane", "-p", "-t", "t")
    assert "final answer" in screen
    # Everything fits on the 40-row screen: nothing needs to scroll off, let alone 100s of copies.
    assert history <= 5, f"{history} lines of scrollback"


def test_printed_lines_are_not_padded_to_the_width(tmux, server, tmp_path):
    _ask_in_tmux(tmux, server, tmp_path)
    # -J keeps the spaces that were printed (and joins wrapped lines): none may trail a line.
    lines = tmux("capture-pane", "-p", "-J", "-t", "t").splitlines()
    assert not _padded(lines)
    tmux("resize-window", "-t", "t", "-x", str(COLS // 2))
    wait_for(lambda: tmux("display-message", "-p", "-t", "t", "#{window_width}").strip() == str(COLS // 2),
             "the resize")
    # Narrower, tmux re-wraps what was printed: no line turns into a line of blanks.
    after = tmux("capture-pane", "-p", "-J", "-t", "t").splitlines()
    assert not _padded(after)
    assert "final answer" in "\n".join(after)
