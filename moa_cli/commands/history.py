"""`moa history`: list, show, export and delete saved chat sessions.

Rich tables and Markdown on a terminal; tab-separated lines and plain Markdown text otherwise, so
`moa history list | cut -f1` and `moa history show 3 > chat.md` do what they look like. Stored
sessions are outside text: control characters are shown as `\x1b`, never sent, and nothing in
them is read as Rich markup.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UsageError
from ..output import warn
from ..sanitize import json_dumps, one_line_safe, terminal_safe
from ..store import SessionInfo, Store, TurnRecord
from .. import transcript
from ..transcript import when

ACTIONS = ("list", "show", "export", "delete")


def run(action: str, target: str | None, *, fmt: str = "md", output: str | None = None, proposals: bool = False,
        limit: int = 50, pager: bool | None = None) -> None:
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
            return show(info, store.turns(info.id), proposals, pager)
        if action == "export":
            return export(safe_export(store, info.id, fmt), output)
        store.delete_session(info.id)
        warn(f"deleted session {_label(info)} ({info.turns} turns)")  # the name is stored text: warn sanitizes it


def list_sessions(sessions: list[SessionInfo]) -> None:
    if not sessions:
        warn("no saved sessions yet (`moa chat` starts one)")
        return
    if not sys.stdout.isatty():
        for s in sessions:
            fields = (s.id, s.name or "-", when(s.updated), s.mix or "-", s.turns, s.preview)
            sys.stdout.write("\t".join(one_line_safe(str(f)) for f in fields) + "\n")  # one_line_safe: tabs become spaces
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold")
    # A mix named by its models ("local:smollm2,local:smollm2 → local:smollm2") or a long session
    # name is cut short, so the first question keeps most of the width.
    widths = {"name": 12, "mix": 18}
    for column in ("id", "name", "updated", "mix", "turns", "first question"):
        table.add_column(column, justify="right" if column in ("id", "turns") else "left",
                         overflow="ellipsis", no_wrap=column != "first question", max_width=widths.get(column),
                         min_width=24 if column == "first question" else None)
    for s in sessions:
        cells = (str(s.id), s.name or "", when(s.updated), s.mix or "", str(s.turns), s.preview)
        table.add_row(*(Text(one_line_safe(c)) for c in cells))
    _console().print(table)


def show(info: SessionInfo, turns: list[TurnRecord], proposals: bool, pager: bool | None = None) -> None:
    text = terminal_safe(transcript.markdown(info, turns, proposals=proposals))
    if sys.stdout.isatty():
        from ..render.mdstream import markdown

        console = _console()
        if pager is False:
            console.print(markdown(text))
            return
        with console.capture() as captured:
            console.print(markdown(text))
        page(captured.get())
    else:
        sys.stdout.write(text + "\n")


def page(text: str) -> None:
    """Like git: through $PAGER (default `less`, with LESS=FRX unless set: quit when it fits on
    one screen, keep colours, leave the text on screen), and only on a terminal."""
    import os
    import shlex
    import shutil
    import subprocess

    command = shlex.split(os.environ.get("MOA_PAGER") or os.environ.get("PAGER") or "less")
    if not command or command[0] == "cat" or shutil.which(command[0]) is None:
        sys.stdout.write(text)
        return
    env = {**os.environ, "LESS": os.environ.get("LESS", "FRX"), "LV": os.environ.get("LV", "-c")}
    sys.stdout.flush()
    try:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, env=env)
    except OSError:
        sys.stdout.write(text)
        return
    try:
        process.communicate(text.encode("utf-8", "replace"))
    except (BrokenPipeError, KeyboardInterrupt):  # q in less, or Ctrl-C: the reader is done
        pass
    finally:
        if process.poll() is None:
            process.wait()


def search(text: str, limit: int = 20) -> None:
    """Turns matching every word of `text`, newest first: session id, session name, turn number,
    date, question, excerpt (tab-separated), so `moa history show SESSION` is one copy away."""
    if not text.strip():
        raise UsageError("usage: moa history search TEXT")
    if limit < 1:
        raise UsageError("--limit: expected a whole number of at least 1")
    with Store.open() as store:
        hits = store.search(text, limit)
    if not hits:
        warn(f"no turn mentions {one_line_safe(text)!r}")
        return
    for hit in hits:
        question = one_line_safe(hit.question)
        fields = (str(hit.session_id), hit.session_name or "-", str(hit.seq), when(hit.created),
                  question if len(question) <= 60 else question[:59] + "…", one_line_safe(hit.excerpt))
        sys.stdout.write("\t".join(one_line_safe(f) for f in fields) + "\n")
    if sys.stdout.isatty():
        warn("`moa history show SESSION` prints a whole session")


def safe_export(store: Store, session_id: int, fmt: str) -> str:
    """A session exported as Markdown or JSON, with no raw control character in it."""
    text = transcript.export(store, session_id, fmt)
    if fmt == "json":
        import json

        return json_dumps(json.loads(text), indent=2)
    return terminal_safe(text)


def _console():
    from ..render.live import make_console

    return make_console()


def export(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text + "\n")
        return
    from ..files import write_atomic

    path = Path(output).expanduser()
    write_atomic(path, text + "\n", mode=0o600)  # a private conversation, like /save and the database
    warn(f"wrote {path}")


def _label(info: SessionInfo) -> str:
    """`3 'notes'`: the session's name is stored outside text, so it is made one terminal-safe line."""
    return f"{info.id} '{one_line_safe(info.name)}'" if info.name else str(info.id)
