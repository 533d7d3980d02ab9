"""Code out of an answer: `moa ask -x` (every fenced block), `--extract-last`, `/copy code`.

A fenced block is CommonMark's: a line of three or more backticks or tildes (indented at most
three spaces, an info string after it allowed for backticks without backticks in it), up to a
line of at least as many of the same character and nothing else. An unclosed block runs to the
end of the answer, as a Markdown renderer shows it (an answer cut at max_tokens keeps its code).
"""

from __future__ import annotations

import re
import sys

from .events import Event
from .render.summary import warning_for

_OPEN = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")


def code_blocks(markdown: str) -> list[str]:
    """The text of each fenced code block, in order, each ending with a newline."""
    blocks: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        opening = _OPEN.match(lines[i])
        if opening is None or (opening.group(2)[0] == "`" and "`" in opening.group(3)):
            i += 1
            continue
        indent, fence = len(opening.group(1)), opening.group(2)
        close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body: list[str] = []
        i += 1
        while i < len(lines) and not close.match(lines[i]):
            line = lines[i]
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))):])  # the fence's indent comes off
            i += 1
        i += 1  # past the closing fence
        blocks.append("".join(line + "\n" for line in body))
    return blocks


def extracted(markdown: str, which: str) -> str | None:
    """`which` = "all" (every block, one after another) or "last"; None when there is none."""
    blocks = code_blocks(markdown)
    if not blocks:
        return None
    return blocks[-1] if which == "last" else "\n".join(blocks)


class QuietRenderer:
    """While `-x` waits for the answer: warnings to stderr, nothing on stdout but the code."""

    def __call__(self, event: Event) -> None:
        from .output import warn

        message = warning_for(event)
        if message is not None:
            warn(f"warning: {message}")

    def finish(self, turn, error=None) -> None:
        pass

    def close(self) -> None:
        pass


def write_code(text: str, raw: bool) -> None:
    from .sanitize import terminal_safe

    sys.stdout.write(text if raw else terminal_safe(text))
    sys.stdout.flush()
