"""Run the real `moa` in a pseudo-terminal and read what a user would see, with `pyte` as the
terminal: the screen at any moment while it runs, the scrollback, and every byte written."""

from __future__ import annotations

import pexpect
import pyte

from spawning import MOA, spawn_moa  # noqa: F401 - MOA kept for the test files that import it


class TerminalRun:
    def __init__(self, args: list[str], env: dict, rows: int = 24, cols: int = 80, shell: str | None = None):
        self.rows, self.cols = rows, cols
        self.screen = pyte.HistoryScreen(cols, rows, history=100000, ratio=0.5)
        self.stream = pyte.ByteStream(self.screen)
        self.raw = b""
        if shell is not None:  # e.g. to redirect stderr: "moa ask q 2>/dev/null"
            env = {**env, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows)}
            self.child = pexpect.spawn("/bin/sh", ["-c", shell], env=env, dimensions=(rows, cols), timeout=60)
        else:
            self.child = spawn_moa(*args, env=env, pty=True, rows=rows, cols=cols, term="xterm-256color")

    def step(self, timeout: float = 0.2) -> bool:
        """Read what is there; False once the program has ended."""
        try:
            data = self.child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return True
        except pexpect.EOF:
            return False
        self.raw += data
        self.stream.feed(data)
        return True

    def run(self, watch=None) -> int:
        """Run to the end; `watch(self)` is called after every read. Returns the exit status."""
        while self.step():
            if watch is not None:
                watch(self)
        self.child.close()
        return self.child.exitstatus

    def display(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def transcript(self) -> list[str]:
        """Scrollback, then the screen, trailing blank lines dropped."""
        history = ["".join(line[x].data for x in range(self.cols)).rstrip() for line in self.screen.history.top]
        lines = history + self.display()
        while lines and not lines[-1]:
            lines.pop()
        return lines


def resize(run: TerminalRun, rows: int, cols: int) -> None:
    run.child.setwinsize(rows, cols)
    run.screen.resize(rows, cols)
    run.cols, run.rows = cols, rows


def contains_run(haystack: list[str], needle: list[str]) -> bool:
    """Whether `needle` appears as consecutive lines of `haystack`."""
    n = len(needle)
    return any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))

