"""The reference panels: one per model, sized so that all of them fit the terminal.

Every piece of outside text here (answers, model names, error messages) is made terminal-safe
and put into `Text` objects, never read as Rich markup.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..config.schema import short_model_name
from ..events import Call, CallResult, CallStalled
from ..sanitize import one_line_safe, terminal_safe
from ..strategies import Role
from .summary import truncated

PANEL_LINES = 6  # text lines of a panel when there is room
MIN_PANEL_WIDTH = 28
MAX_COLUMNS = 4
TAIL_CHARS = 4000  # only the end of an answer can show in a panel

STATUS_STYLE = {"running": "yellow", "ok": "green", "failed": "red", "cut": "magenta", "cancelled": "red",
                "truncated": "magenta"}


@dataclass
class ProposalPanel:
    call: Call
    title: Text
    text: str = ""
    tokens: int = 0
    note: str = ""  # "loading smollm2…" until the first token
    started: float = field(default_factory=time.monotonic)  # reset when a queued call's turn comes
    last_token: float | None = None
    result: CallResult | None = None
    # The engine said this call went quiet (CallStalled), and when it will cut it: shown until the
    # call speaks again.
    cut_at: float | None = None
    queued: bool = False  # "waiting for smollm2 (2nd in line)": no clock runs yet
    finished_at: float | None = None

    def progress(self, note: str, queued: bool = False, began: bool = False) -> None:
        """A note before the first token. A panel's time counts from its own start: when the
        model became free for it, not when the round started."""
        self.note = note
        if began or (self.queued and not queued):
            self.started = time.monotonic()
        self.queued = queued

    def finish(self, result: CallResult) -> None:
        self.result, self.finished_at, self.queued = result, time.monotonic(), False

    def add(self, text: str) -> None:
        self.text = (self.text + terminal_safe(text))[-TAIL_CHARS:]
        self.tokens += 1
        self.last_token = time.monotonic()
        self.note = ""
        self.cut_at = None

    def stalled(self, event: CallStalled) -> None:
        self.cut_at = time.monotonic() + event.cut_in

    @property
    def state(self) -> str:
        if self.result is None:
            return "running"
        if truncated(self.result):
            return "truncated"
        return self.result.status

    def status(self, now: float) -> Text:
        """The panel's subtitle: what it is doing, how long it took, how many tokens."""
        result = self.result
        if result is None:
            if self.queued:
                return Text(self.note or "waiting", style="yellow")
            parts = [f"{now - self.started:.1f}s", f"{self.tokens} tok"]
            if self.note and not self.tokens:
                parts.insert(0, self.note)
            if self.cut_at is not None:
                silent = now - (self.last_token or self.started)
                parts.append(f"no tokens for {silent:.0f}s, cut in {max(self.cut_at - now, 0):.0f}s")
            return Text(" · ".join(parts), style="yellow")
        took = f"{(self.finished_at or now) - self.started:.1f}s"
        tokens = f"{result.usage.completion_tokens or self.tokens} tok"
        if self.state == "truncated":
            words = ["truncated at max_tokens", took, tokens]
        elif result.status == "ok":
            words = ["ok", took, tokens]
        elif result.status == "cut":
            words = [short_reason(result), took]
        else:
            words = [short_reason(result)]
        return Text(" · ".join(words), style=STATUS_STYLE.get(self.state, "white"))

    def render(self, console: Console, width: int, lines: int, status: Text) -> Panel:
        inner = max(width - 4, 8)
        style = STATUS_STYLE.get(self.state, "white")
        body = Text(self.text[-(inner * lines * 2 + 200):] or "…", style="" if self.state in ("ok", "truncated") else "dim")
        wrapped = body.wrap(console, inner)
        tail = Text("\n").join(wrapped[-lines:]) if lines > 0 else Text("")
        return Panel(tail, title=self.title, subtitle=status, border_style=style, height=lines + 2,
                     title_align="left", subtitle_align="right")


def short_reason(result: CallResult) -> str:
    """`HTTP 500`, `timed out`, `cut: too slow`: the failure in a few words, without the label."""
    return one_line_safe(result.failure.describe(short=True) if result.failure else result.status)


def panel_titles(calls: list[Call]) -> dict[Call, Text]:
    """`m1 · r1`; repeated samples of one model get `#2 · t=0.7` so they can be told apart."""
    counts: dict[tuple[int, str], int] = {}
    for call in calls:
        counts[(call.round, call.label)] = counts.get((call.round, call.label), 0) + 1
    seen: dict[tuple[int, str], int] = {}
    titles = {}
    for call in calls:
        key = (call.round, call.label)
        seen[key] = seen.get(key, 0) + 1
        title = Text(one_line_safe(short_model_name(call.label)), style="bold")
        if counts[key] > 1:
            title.append(f" #{seen[key]}")
            if call.temperature is not None:
                title.append(f" · t={call.temperature:g}")
        # A call that is not answering (a peer review) says what it does.
        title.append(f" · r{call.round}" + ("" if call.role == Role.REFERENCE else f" {call.role}"), style="dim")
        titles[call] = title
    return titles


class PanelGrid:
    """All panels of a round in a grid that fits `rows` terminal rows: with more models the
    panels get shorter, and past three rows each (border, one line, border) a model gets one
    line, so every title and status stays visible."""

    def __init__(self, panels: list[ProposalPanel], rows: int):
        self.panels = panels
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.panels:
            return
        now = time.monotonic()
        width = options.max_width
        per_row = max(1, min(len(self.panels), width // MIN_PANEL_WIDTH, MAX_COLUMNS))
        grid_rows = -(-len(self.panels) // per_row)
        height = min(PANEL_LINES + 2, self.rows // grid_rows)
        if height < 3:
            per_row = max(1, min(len(self.panels), -(-len(self.panels) // max(self.rows, 1)), width // 20))
            lines = [Text.assemble(p.title, " ", p.status(now)) for p in self.panels]
            yield _grid(lines, per_row, no_wrap=True, overflow="ellipsis")
            return
        cell = (width - (per_row - 1)) // per_row
        yield _grid([p.render(console, cell, height - 2, p.status(now)) for p in self.panels], per_row)


def _grid(cells: list, per_row: int, **column_options) -> Table:
    """`cells` in rows of `per_row` equal columns, the last row padded with empty cells."""
    grid = Table.grid(expand=True, padding=(0, 1))
    for _ in range(per_row):
        grid.add_column(ratio=1, **column_options)
    for start in range(0, len(cells), per_row):
        row = cells[start:start + per_row]
        grid.add_row(*row, *([""] * (per_row - len(row))))
    return grid


def round_line(panels: list[ProposalPanel], round_no: int) -> Text:
    done = sum(p.result is not None for p in panels)
    roles = {p.call.role for p in panels}
    calls = "references" if roles <= {Role.REFERENCE} else f"{'/'.join(sorted(roles))}s"
    return Text(f"round {round_no}: {done}/{len(panels)} {calls} done", style="dim")


def status_group(*parts) -> Group:
    return Group(*[p for p in parts if p is not None])
