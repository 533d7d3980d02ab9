"""A session as Markdown: the one writer behind `moa history show`, `history export` and `/save`.

It reads the store, never the other way round: `export` is where a session becomes md or json.

Questions are quoted, each final answer follows as the model wrote it, and every turn ends with
its facts (models, tokens, time, cost). Model names and failures are stored outside text: they are
escaped so they cannot turn into Markdown structure. Making the whole text terminal-safe is the
caller's job (it depends on where the text goes).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from .errors import UsageError
from .events import Role
from .sanitize import one_line_safe

if TYPE_CHECKING:
    from .store import SessionInfo, Store, TurnRecord


def export(store: "Store", session_id: int, fmt: str = "md") -> str:
    """A saved session as Markdown (`md`) or JSON (`json`)."""
    if fmt not in ("md", "json"):
        raise UsageError(f"unknown export format {fmt!r} (use md or json)")
    if fmt == "json":
        return store.export_json(session_id)
    info = store.session(session_id)
    if info is None:
        raise UsageError(f"no session {session_id}")
    return markdown(info, store.turns(session_id))


def markdown(info: "SessionInfo", turns: "list[TurnRecord]", *, proposals: bool = False) -> str:
    """The session's turns, in order; with `proposals`, every reference answer under its turn."""
    name = f" '{one_line_safe(info.name)}'" if info.name else ""
    lines = [f"# Session {info.id}{name}", "",
             f"*{when(info.created)} · mix {info.mix or '-'} · {len(turns)} turns*", ""]
    for t in turns:
        note = t.status if t.status != "ok" else "replaced by a retry" if t.replaced_by else ""
        lines += [f"## Turn {t.seq}" + (f" ({note})" if note else ""), ""]
        lines += [f"> {q}" if q else ">" for q in t.question.splitlines() or [""]] + [""]
        lines += [t.final or "*(no answer)*", ""]
        if t.error:
            lines += [f"**Error:** {t.error}", ""]
        if proposals and (answers := proposals_markdown(t)):
            lines += [answers, ""]
        lines += [f"*{_facts(t)}*", ""]
    return "\n".join(lines)


def proposals_markdown(turn: "TurnRecord") -> str:
    """Every reference answer of one turn, in full (`/proposals`, `history show --proposals`)."""
    lines: list[str] = []
    for p in turn.proposals:
        if p["role"] == Role.AGGREGATOR:
            continue
        role = f" · {p['role']}" if p["role"] != Role.REFERENCE else ""  # a review is no answer
        lines += ["", f"### {_escape_md(p['model'])} · round {p['round']}{role} · {p['status']}"
                  + _failure_note(p)
                  + (" · truncated at max_tokens" if p.get("finish_reason") == "length" else ""), "",
                  p["text"] or f"*({_escape_md(p.get('error') or 'no text')})*"]
    return "\n".join(lines).strip("\n")


def _failure_note(proposal: dict) -> str:
    """` (http 500)`, ` (timeout)`: the stored failure's kind and status (none before schema 5)."""
    kind = proposal.get("failure_kind")
    if not kind or kind == proposal["status"]:  # "cut" and "cancelled" already say it all
        return ""
    status = proposal.get("failure_status")
    return f" ({_escape_md(str(kind))}{f' {status}' if isinstance(status, int) else ''})"


def _escape_md(text: str) -> str:
    return "".join("\\" + ch if ch in "\\`*_[]<>#|" else ch for ch in one_line_safe(text))


def when(ts: float) -> str:
    """A stored time as the user reads it: local, to the minute."""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _facts(t: "TurnRecord") -> str:
    refs = list(dict.fromkeys(p["model"] for p in t.proposals if p["role"] == "reference"))
    aggs = [p["model"] for p in t.proposals if p["role"] == "aggregator"]
    parts = [f"{t.mix} mix" if t.mix else "", ", ".join(refs) + (f" → {aggs[0]}" if aggs else "")]
    if t.fallback:
        parts.append(f"fallback {t.fallback}")
    parts.append(f"{t.prompt_tokens:,} in / {t.completion_tokens:,} out tokens")
    if t.elapsed is not None:
        parts.append(f"{t.elapsed:.1f}s")
    if t.cost is not None:
        parts.append(f"${t.cost:.4f}")
    return " · ".join(p for p in parts if p)
