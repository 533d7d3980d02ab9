"""A redrawn region at the bottom of the terminal, with text printed for good above it.

Like `rich.live`, but every redraw is one write (erase the region, print what became final, draw
the region again), the region is never taller than the terminal (so moving the cursor back to its
top always works), and a terminal that got narrower is accounted for: terminals that re-wrap long
lines on resize make the old region taller, and erasing only the old height would leave a torn
copy of it in the scrollback.
"""

from __future__ import annotations

import sys

from rich.console import Console, RenderableType
from rich.segment import Segment

HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


class LiveRegion:
    def __init__(self, console: Console):
        self.console = console
        self._widths: list[int] = []  # cell width of each line now drawn
        self._drawn_at = 0  # terminal width when they were drawn
        self._active = False

    def update(self, region: RenderableType | None, above: list[RenderableType] = (), stderr: list[str] = ()) -> None:
        """Erase the region, print `above` for good (and `stderr` lines on stderr), draw `region`."""
        width, height = self.console.size  # asks the terminal: once per redraw
        out = [self._erase(width, height)]
        if not self._active:
            out.insert(0, HIDE_CURSOR)
            self._active = True
        if above:
            with self.console.capture() as capture:
                for renderable in above:
                    self.console.print(renderable)
            out.append(_unpadded(capture.get()))
        if stderr:
            self._write("".join(out))  # stdout first, so the two streams keep their order
            out = []
            for line in stderr:
                sys.stderr.write(line + "\n")
            sys.stderr.flush()
        lines = self._lines(region, width, height) if region is not None else []
        self._widths = [Segment.get_line_length(line) for line in lines]
        self._drawn_at = width
        if lines:
            with self.console.capture() as capture:
                for line in lines:
                    self.console.print(_Line(line), end="")
            out.append(capture.get())
        self._write("".join(out))

    def stop(self, above: list[RenderableType] = ()) -> None:
        """Erase the region, print `above`, give the cursor back."""
        if self._active or above:
            self.update(None, above)
        if self._active:
            self._write(SHOW_CURSOR)
            self._active = False

    def _lines(self, region: RenderableType, width: int, height: int) -> list[list[Segment]]:
        options = self.console.options.update(width=width, height=None)
        lines = self.console.render_lines(region, options, pad=False)
        room = max(height - 1, 1)  # the cursor waits on the line below the region
        return lines[-room:]

    def _erase(self, width: int, height: int) -> str:
        if not self._widths:
            return ""
        rows = len(self._widths)
        if width < self._drawn_at:
            # Re-wrapping terminals now show each old line on more rows.
            rows = sum(max(1, -(-w // max(width, 1))) for w in self._widths)
        rows = min(rows, max(height - 1, 1))
        self._widths = []
        # Line by line, bottom up, never "erase to the end of the screen": sent from the top-left
        # corner (a region that starts on the top row, after `clear` or a resize) that sequence
        # makes tmux copy the whole screen into its scrollback, once per redraw.
        return "\r\x1b[2K" + "\x1b[1A\x1b[2K" * rows

    def _write(self, text: str) -> None:
        if text:
            self.console.file.write(text)
            self.console.file.flush()


_TRAILING = None


def _unpadded(text: str) -> str:
    """Printed lines without the spaces Rich pads them with to the terminal's width (keeping any
    style codes after them): a terminal that gets narrower would otherwise re-wrap every printed
    line into a second line of blanks."""
    global _TRAILING
    if _TRAILING is None:
        import re

        _TRAILING = re.compile(r" +((?:\x1b\[[0-9;]*m)*)$", re.M)
    return _TRAILING.sub(r"\1", text)


class _Line:
    """One pre-rendered line of segments, printed as is, then a line break."""

    def __init__(self, segments: list[Segment]):
        self.segments = segments

    def __rich_console__(self, console, options):
        yield from self.segments
        yield Segment.line()
