"""Live terminal output: the reference panels while a round runs, then the final answer.

Layout, top to bottom: each finished round's panels stay on screen, printed for good; below them
the final answer streams as Markdown. The redrawn region at the bottom only ever holds what can
still change: the running round's panels (sized to fit the terminal), an `aggregating with MODEL…`
line, and the short unfinished tail of the answer (see `mdstream.py`), so the cost of a chunk
never grows with the answer. A timer redraws a few times a second, so elapsed times tick.
Warnings go to stderr, printed above the region.
"""

from __future__ import annotations

import asyncio
import time
from typing import Mapping

from rich.console import Console
from rich.text import Text

from ..events import (Call, CallDelta, CallFinished, CallProgress, CallRestarted, CallStalled, CallStarted, Event,
                      TurnResult)
from ..sanitize import one_line_safe, terminal_safe
from ..strategies import Role
from .mdstream import MarkdownStream, Piece, markdown
from ..config.schema import short_model_name
from .panels import PanelGrid, ProposalPanel, panel_titles, round_line, status_group
from .region import LiveRegion
from .summary import summary_line, truncated, warning_for

REFRESH_EVERY = 0.05  # seconds between redraws while text streams; the first token draws at once
TICK_EVERY = 0.25  # seconds between redraws while nothing arrives, so the clocks tick


def make_console(**kwargs) -> Console:
    """A console for outside text: no emoji codes, no guessing of numbers or URLs to colour."""
    return Console(emoji=False, highlight=False, **kwargs)


class LiveRenderer:
    def __init__(self, prices: Mapping, show_proposers: bool = True, console: Console | None = None):
        self.prices = prices
        self.show_proposers = show_proposers
        self.console = console or make_console()
        self.region = LiveRegion(self.console)
        self._panels: dict[Call, ProposalPanel] = {}
        self._round = 0
        self._aggregator: Call | None = None
        self._agg_started = 0.0
        self._agg_tokens = 0
        self._agg_note = ""
        self._answer: MarkdownStream | None = None
        self._above: list = []  # printed for good at the next redraw
        self._warnings: list[str] = []
        self._last_draw = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ events

    def __call__(self, event: Event) -> None:
        force = False
        if isinstance(event, CallStarted):
            force = True
            if event.call.role != Role.AGGREGATOR:  # references and reviewers alike get a panel
                if event.call.round != self._round:
                    self._settle_round()
                    self._round = event.call.round
                self._panels[event.call] = ProposalPanel(event.call, Text())
                titles = panel_titles(list(self._panels))
                for call, panel in self._panels.items():
                    panel.title = titles[call]
            else:
                self._settle_round()
                self._aggregator, self._agg_started, self._agg_tokens = event.call, time.monotonic(), 0
                self._answer = MarkdownStream(self.console)
        elif isinstance(event, CallDelta):
            if event.call.role == "aggregator" and self._answer is not None:
                force = self._agg_tokens == 0
                self._agg_tokens += 1
                self._queue(self._answer.feed(terminal_safe(event.text)))
            elif (panel := self._panels.get(event.call)) is not None:
                force = panel.tokens == 0
                panel.add(event.text)
        elif isinstance(event, CallProgress):
            force = True
            if (panel := self._panels.get(event.call)) is not None:
                panel.progress(one_line_safe(event.note), event.queued, event.began)
            elif event.call.role == "aggregator":
                self._agg_note = one_line_safe(event.note)
                if event.began:
                    self._agg_started = time.monotonic()  # its time counts from its own start
        elif isinstance(event, CallRestarted):
            force = True
            if event.call.role == "aggregator" and self._answer is not None:
                # What was committed stays on screen; the retried answer starts below it.
                self._queue(self._answer.finish())
                self._above.append(Text("(the answer above was cut off; retrying)", style="dim"))
                self._answer, self._agg_tokens = MarkdownStream(self.console), 0
            elif (panel := self._panels.get(event.call)) is not None:
                panel.text, panel.tokens = "", 0
        elif isinstance(event, CallStalled):
            force = True
            if (panel := self._panels.get(event.call)) is not None:
                panel.stalled(event)
        elif isinstance(event, CallFinished):
            force = True
            if (panel := self._panels.get(event.call)) is not None:
                panel.finish(event.result)
        message = warning_for(event)
        if message is not None:
            self._warnings.append(f"moa: warning: {one_line_safe(message)}")
            force = True
        self._refresh(force)

    def _queue(self, pieces: list[Piece]) -> None:
        for piece in pieces:
            if piece.gap:
                self._above.append(Text(""))
            self._above.append(piece.renderable)

    def _settle_round(self) -> None:
        """The round is over: its panels are printed for good, above everything that follows."""
        if self._panels:
            if self.show_proposers:
                self._above.append(PanelGrid(list(self._panels.values()), self._grid_rows()))
            self._panels = {}

    # ------------------------------------------------------------------ drawing

    def _grid_rows(self) -> int:
        return max(self.console.size.height - 3, 1)  # a status line and the cursor's line below

    def _region(self):
        now = time.monotonic()
        if self._panels:
            panels = list(self._panels.values())
            if self.show_proposers:
                return status_group(PanelGrid(panels, self._grid_rows()), round_line(panels, self._round))
            return round_line(panels, self._round)
        if self._aggregator is None:
            return None
        name = one_line_safe(short_model_name(self._aggregator.label))
        elapsed = now - self._agg_started
        if self._agg_tokens == 0:
            note = f" · {self._agg_note}" if self._agg_note else ""
            return Text(f"aggregating with {name}… {elapsed:.1f}s{note}", style="yellow")
        tail = self._answer.tail() if self._answer is not None else None
        return status_group(tail, Text(f"{name} · {elapsed:.1f}s · {self._agg_tokens} tok", style="dim"))

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < REFRESH_EVERY:
            self._arm_timer(REFRESH_EVERY - (now - self._last_draw))
            return
        self._draw()

    def _draw(self) -> None:
        above, self._above = self._above, []
        warnings, self._warnings = self._warnings, []
        self.region.update(self._region(), above, warnings)
        self._last_draw = time.monotonic()
        self._arm_timer(TICK_EVERY)

    def _arm_timer(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # driven outside an event loop: no ticking
            return
        if self._timer is not None:
            if self._timer.when() <= loop.time() + delay:
                return
            self._timer.cancel()
        self._timer = loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        try:
            self._draw()
        except Exception:  # noqa: BLE001 - a failed redraw must not raise inside the event loop
            self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------------ the end

    def finish(self, turn: TurnResult, error: str | None = None) -> None:
        if error is not None:
            self.close()
            return
        self._settle_round()
        if self._answer is not None:
            self._queue(self._answer.finish())
        if turn.fallback:
            # The aggregator failed, maybe part-way: its fragment stays on screen, marked, and
            # the reference answer that stands in for it follows in full.
            if self._agg_tokens:
                fallback = one_line_safe(turn.fallback)
                self._above.append(Text(f"[aggregator failed; the answer of {fallback} follows]", style="magenta"))
            self._queue([Piece(markdown(terminal_safe(turn.final)))])
        if truncated(turn.aggregate):
            self._above.append(Text("[truncated at max_tokens]", style="magenta"))
        self._above.append(Text(""))  # the summary is not part of the answer
        self._above.append(Text(summary_line(turn, self.prices), style="dim"))
        self._end()

    def close(self) -> None:
        """Stop drawing (after an error or Ctrl-C), keeping what is on screen."""
        self._settle_round()
        if self._answer is not None:
            self._queue(self._answer.finish())
        self._end()

    def _end(self) -> None:
        self._cancel_timer()
        self._panels, self._aggregator, self._answer = {}, None, None
        above, self._above = self._above, []
        self.region.stop(above)
