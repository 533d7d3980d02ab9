"""Live terminal output: one panel per reference model side by side, then the final answer.

The final answer streams as Markdown the way a careful pager would: every block that can no
longer change is printed once, and only the short unfinished tail lives in the redrawn region,
so long answers never flicker. Run `python -m moa_cli.render.live` for a demo.
"""

from __future__ import annotations

import sys
import time
from typing import Mapping

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..events import Call, CallDelta, CallFinished, CallRestarted, CallStarted, Event, TurnResult
from .summary import summary_line, warning_for

PANEL_LINES = 6  # lines of each proposer's text kept visible
MIN_PANEL_WIDTH = 28
REFRESH_EVERY = 0.04  # seconds; the first token of a call is always drawn at once

STATUS_STYLE = {"running": "yellow", "ok": "green", "failed": "red", "cut": "magenta", "cancelled": "red"}


class ProposalPanel:
    """One reference model's answer so far, showing its tail."""

    def __init__(self, call: Call):
        self.call = call
        self.text = ""
        self.status = "running"
        self.detail = ""

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(options.max_width - 4, 8)
        lines = Text(self.text or "…", style="dim" if self.status != "ok" else "").wrap(console, width)
        tail = Text("\n").join(lines[-PANEL_LINES:])
        style = STATUS_STYLE.get(self.status, "white")
        title = f"[bold]{_short_model(self.call.label)}[/] · r{self.call.round}"
        subtitle = f"[{style}]{self.status}{' · ' + self.detail if self.detail else ''}[/]"
        yield Panel(tail, title=title, subtitle=subtitle, border_style=style, height=PANEL_LINES + 2)


class PanelGrid:
    """Panels laid out in as many columns as the terminal width allows."""

    def __init__(self, panels: list[ProposalPanel]):
        self.panels = panels

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.panels:
            return
        per_row = max(1, min(len(self.panels), options.max_width // MIN_PANEL_WIDTH, 4))
        grid = Table.grid(expand=True, padding=(0, 1))
        for _ in range(per_row):
            grid.add_column(ratio=1)
        for start in range(0, len(self.panels), per_row):
            row = self.panels[start : start + per_row]
            grid.add_row(*row, *([""] * (per_row - len(row))))
        yield grid


class LiveRenderer:
    def __init__(self, prices: Mapping, show_proposers: bool = True, console: Console | None = None):
        self.prices = prices
        self.show_proposers = show_proposers
        self.console = console or Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)
        self._live: Live | None = None
        self._panels: dict[Call, ProposalPanel] = {}
        self._round = 0
        self._final = ""  # aggregator text not yet printed for good
        self._last_refresh = 0.0

    # -- the live region
    def _ensure_live(self) -> Live:
        if self._live is None:
            self._live = Live(console=self.console, auto_refresh=False, transient=False, redirect_stderr=False)
            self._live.start()
        return self._live

    def _renderable(self):
        parts = []
        if self._panels:
            if self.show_proposers:
                parts.append(PanelGrid(list(self._panels.values())))
            else:
                done = sum(p.status != "running" for p in self._panels.values())
                parts.append(Text(f"round {self._round}: {done}/{len(self._panels)} references done", style="dim"))
        if self._final:
            parts.append(Markdown(self._final))
        return Group(*parts)

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_refresh >= REFRESH_EVERY:
            live = self._ensure_live()
            live.update(self._renderable(), refresh=True)
            self._last_refresh = now

    def _settle_round(self) -> None:
        """Print the finished round's panels for good and clear them from the live region."""
        if self._panels:
            if self.show_proposers:
                self._ensure_live().console.print(PanelGrid(list(self._panels.values())))
            self._panels = {}

    # -- events
    def __call__(self, event: Event) -> None:
        if isinstance(event, CallStarted):
            if event.call.role == "reference":
                if event.call.round != self._round:
                    self._settle_round()
                    self._round = event.call.round
                self._panels[event.call] = ProposalPanel(event.call)
            else:
                self._settle_round()
            self._refresh(force=True)
        elif isinstance(event, CallDelta):
            if event.call.role == "aggregator":
                first = not self._final
                self._final += event.text
                self._print_stable_prefix()
                self._refresh(force=first)
            else:
                panel = self._panels.get(event.call)
                if panel is not None:
                    first = not panel.text
                    panel.text += event.text
                    self._refresh(force=first)
        elif isinstance(event, CallRestarted):
            if event.call.role == "aggregator":
                self._final = ""
            elif event.call in self._panels:
                self._panels[event.call].text = ""
            self._refresh(force=True)
        elif isinstance(event, CallFinished):
            result = event.result
            panel = self._panels.get(event.call)
            if panel is not None:
                panel.status = result.status
                if result.status == "ok" and result.started is not None and result.finished is not None:
                    panel.detail = f"{result.finished - result.started:.1f}s · {result.usage.completion_tokens} tok"
                elif result.error and result.error != result.status:
                    panel.detail = result.error[:40]
            self._refresh(force=True)
        message = warning_for(event)
        if message is not None:
            self.warn(message)

    def _print_stable_prefix(self) -> None:
        """Move complete Markdown blocks (up to the last blank line outside a code fence) above the live region."""
        cut = _stable_cut(self._final)
        if cut > 0:
            stable, self._final = self._final[:cut], self._final[cut:]
            self._ensure_live().console.print(Markdown(stable))

    def warn(self, message: str) -> None:
        if self._live is not None:
            self._live.console.print(Text(f"moa: warning: {message}", style="yellow"))
        else:
            self.err.print(Text(f"moa: warning: {message}", style="yellow"))

    def finish(self, turn: TurnResult, error: str | None = None) -> None:
        if error is not None:
            self.close()
            return
        self._settle_round()
        if turn.fallback and not self._final:
            self._final = turn.final
        self._refresh(force=True)
        self._stop()
        self._final = ""
        self.console.print(Text(summary_line(turn, self.prices), style="dim"))

    def _stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def close(self) -> None:
        """Stop drawing (after an error or Ctrl-C) keeping what is on screen."""
        self._panels = {}
        self._final = ""
        self._stop()


def _stable_cut(text: str) -> int:
    """Index just past the last paragraph break that is not inside a ``` fence; 0 if none."""
    cut, in_fence, pos = 0, False, 0
    for line in text.splitlines(keepends=True):
        pos += len(line)
        stripped = line.strip()
        if stripped.startswith("```") or stripped.startswith("~~~"):
            in_fence = not in_fence
        elif not stripped and not in_fence and pos < len(text):
            cut = pos
    return cut


def _short_model(label: str) -> str:
    return label.split(":", 1)[-1].rsplit("/", 1)[-1]


if __name__ == "__main__":  # a self-demo with made-up events
    from ..events import CallResult
    from ..providers.base import Usage

    demo = LiveRenderer({}, console=Console())
    calls = [Call("reference", 1, i, f"demo:model-{i}") for i in range(3)]
    for c in calls:
        demo(CallStarted(c))
    for step in range(30):
        for i, c in enumerate(calls):
            if step % (i + 1) == 0:
                demo(CallDelta(c, f"word{step} "))
        time.sleep(0.03)
    for c in calls:
        demo(CallFinished(c, CallResult(c, status="ok", started=0.0, finished=1.0, usage=Usage(10, 30))))
    agg = Call("aggregator", 2, 0, "demo:aggregator")
    demo(CallStarted(agg))
    for piece in "# Final answer\n\nThe mix agrees.\n\n- one\n- two\n\n```python\nprint('hi')\n```\n".split(" "):
        demo(CallDelta(agg, piece + " "))
        time.sleep(0.03)
    turn = TurnResult(mix="demo", started=time.time(), elapsed=1.5)
    demo.finish(turn)
    sys.exit(0)
