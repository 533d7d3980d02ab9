"""Chat commands for files, roles and the clipboard: `/file`, `/role`, `/system`, `/copy`.
They are rows of `slash.COMMANDS`; the work is here so slash.py stays a table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:
    from .chat_state import ChatState as Chat


def attach(chat: "Chat", path: str) -> None:
    from .attachments import TOTAL_CAP, read_file

    used = sum(len(a.text.encode("utf-8")) for a in chat.attachments)
    item = read_file(path, TOTAL_CAP - used)
    chat.attachments.append(item)
    chat.say(f"attached {item.name} ({len(item.text.encode('utf-8')):,} bytes) to your next message")


def role_names() -> list[str]:
    from .completion import complete_role

    return complete_role("")  # never fails: Tab on a broken config offers nothing


async def role(chat: "Chat", name: str) -> None:
    from .roles import find_role, load_roles

    if not name:
        roles = sorted(load_roles())
        current = chat.role or "none"
        chat.say(f"role: {current} · roles: {', '.join(roles) or 'none (add [roles.NAME] to the config)'}")
        return
    found = find_role(name)
    change = {"system": found.system}
    if found.mix:
        change["mix"] = found.mix
    await chat.change(**change)
    chat.role = found.name
    chat.say(f"role {found.name}")


async def system(chat: "Chat", text: str) -> None:
    if not text:
        prompt = chat.settings.mix.aggregator.system
        chat.say(f"system prompt: {prompt}" if prompt else "no system prompt (/system TEXT sets one)")
        return
    await chat.change(system=text)
    chat.role = None  # a prompt of one's own is no longer the role's
    chat.say("system prompt set for every model")


def copy(chat: "Chat", what: str) -> None:
    from .clipboard import copy as to_clipboard
    from .extract_code import extracted

    if what not in ("", "code"):
        raise UsageError("usage: /copy [code]")
    answered = [t for t in chat.turns() if t.status == "ok" and t.replaced_by is None and t.final]
    if not answered:
        raise UsageError("/copy: no answer yet")
    text = answered[-1].final
    if what == "code":
        text = extracted(text, "all")
        if text is None:
            raise UsageError("/copy code: the last answer has no fenced code block")
    from .sanitize import terminal_safe

    # Made safe like any answer: pasted into a terminal, an ESC could end bracketed paste
    # (ESC [201~) and type the rest as commands.
    text = terminal_safe(text)
    how = to_clipboard(text)
    if how is None:
        raise UsageError("/copy: no clipboard here (no wl-copy, xclip, xsel or pbcopy, and not a terminal for OSC 52)")
    chat.say(f"copied {'the code' if what else 'the answer'} ({len(text):,} characters) with {how}")
