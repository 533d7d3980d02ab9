"""`moa history`: list, show, export and delete saved chat sessions.

Rich tables and Markdown on a terminal; tab-separated lines and plain Markdown text otherwise, so
`moa history list | cut -f1` and `moa history show 3 > chat.md` do what they look like.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from ..errors import UsageError
from ..store import SessionInfo, Store, TurnRecord

ACTIONS = ("list", "show", "export", "delete")


def run(action: str, target: str | None, *, fmt: str = "md", output: str | None = None, proposals: bool = False,
        limit: int = 50) -> None:
    if action not in ACTIONS:
        raise UsageError(f"unknown history action '{action}' (use {', '.join(ACTIONS)})")
    if action != "list" and not target:
        raise UsageError(f"usage: moa history {action} ID (see `moa history list`)")
    if limit < 1:
        raise UsageError("--limit: expected a whole number of at least 1")
    with Store.open() as store:
        if action == "list":
            return list_sessions(store.list_sessions(limit))
        info = store.find_session(target)
        if info is None:
            raise UsageError(f"no session '{target}' (see `moa history list`)")
        if action == "show":
            return show(info, store.turns(info.id), proposals)
        if action == "export":
            return export(store.export(info.id, fmt), output)
        store.delete_session(info.id)
        sys.stderr.write(f"moa: deleted session {_label(info)} ({info.turns} turns)\n")


def list_sessions(sessions: list[SessionInfo]) -> None:
    if not sessions:
        sys.stderr.write("moa: no saved sessions yet (`moa chat` starts one)\n")
        return
    if not sys.stdout.isatty():
        for s in sessions:
            sys.stdout.write(f"{s.id}\t{s.name or '-'}\t{_when(s.updated)}\t{s.mix or '-'}\t{s.turns}\t{s.preview}\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("id", "name", "updated", "mix", "turns", "first question"):
        table.add_column(column, justify="right" if column in ("id", "turns") else "left",
                         overflow="ellipsis", no_wrap=column != "first question")
    for s in sessions:
        table.add_row(str(s.id), s.name or "", _when(s.updated), s.mix, str(s.turns), s.preview)
    Console(highlight=False).print(table)


def show(info: SessionInfo, turns: list[TurnRecord], proposals: bool) -> None:
    text = transcript(info, turns, proposals)
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console(highlight=False).print(Markdown(text))
    else:
        sys.stdout.write(text + "\n")


def transcript(info: SessionInfo, turns: list[TurnRecord], proposals: bool = False) -> str:
    """A session as Markdown: each question, its final answer and (optionally) every proposal."""
    lines = [f"# Session {_label(info)}", "", f"*{_when(info.created)} · mix {info.mix or '-'} · {len(turns)} turns*"]
    for t in turns:
        note = t.status if t.status != "ok" else "replaced by a retry" if t.replaced_by else ""
        lines += ["", f"## Turn {t.seq}" + (f" ({note})" if note else ""), ""]
        lines += [f"> {line}" if line else ">" for line in t.question.splitlines() or [""]]
        lines += ["", t.final or "*(no answer)*"]
        if t.error:
            lines += ["", f"**Error:** {t.error}"]
        if proposals:
            for p in t.proposals:
                if p["role"] == "reference":
                    lines += ["", f"### {p['model']} · round {p['round']} · {p['status']}", "",
                              p["text"] or f"*({p['error'] or 'no text'})*"]
        lines += ["", f"*{t.prompt_tokens:,} in / {t.completion_tokens:,} out tokens"
                  + (f" · {t.elapsed:.1f}s" if t.elapsed is not None else "")
                  + (f" · ${t.cost:.4f}" if t.cost is not None else "") + "*"]
    return "\n".join(lines)


def export(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text + "\n")
        return
    path = Path(output).expanduser()
    try:
        path.write_text(text + "\n")
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror}") from None
    sys.stderr.write(f"moa: wrote {path}\n")


def _label(info: SessionInfo) -> str:
    return f"{info.id} '{info.name}'" if info.name else str(info.id)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")
