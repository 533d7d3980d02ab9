"""The slash commands of `moa chat`.

One table drives dispatch, /help and Tab completion, so adding a command is adding a row. `/set
NAME VALUE` changes any option of the option table (config/options.py) that `moa chat` takes as
a flag; /mix, /temperature and the like are its aliases. Every change goes through
`ChatState.change`, i.e. the config source re-resolving the flags so far plus this one, so a value is
checked exactly as the same flag would be on the command line.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from . import slash_extras
from .chat_state import ChatState  # noqa: F401 - where the commands' view of the chat is declared
from .config.options import FLAG_OPTIONS, Option, find
from .errors import UsageError
from .files import write_atomic

QUIT = object()  # what /exit returns to end the chat


@dataclass(frozen=True)
class Command:
    arg: str  # the argument as /help shows it; "" = none, "[...]" = optional
    help: str
    run: Callable[["ChatState", str], object]  # may return a coroutine; QUIT ends the chat
    choices: Callable[["ChatState"], list[str]] | None = None  # what Tab offers for the argument


def settable() -> list[Option]:
    """The options `/set` changes: every flag of `moa chat` (options.py)."""
    return [o for o in FLAG_OPTIONS if "chat" in o.commands]


def set_option(chat: "ChatState", arg: str):
    """`/set NAME VALUE`: one option of the table, parsed by its kind and checked like its flag.
    A ValueError from parsing becomes a usage error (see dispatch)."""
    name, _, value = arg.partition(" ")
    option = find(name) if name else None
    if not name:
        for o in settable():
            chat.say(f"  {o.name.replace('_', '-').ljust(22)} {o.help_text()}")
        return None
    if option is None or option not in settable():
        raise UsageError(f"/set: unknown option {_short(name, 30)!r} (/set alone lists them)")
    if not value.strip():
        raise UsageError(f"usage: /set {name} VALUE ({option.describe_expected()})")
    return chat.change(**{option.name: option.parse(value)})


def _alias(name: str) -> Callable[["ChatState", str], object]:
    """A command that is `/set NAME` under a shorter name (`/temperature 0.2`)."""
    return lambda chat, arg: set_option(chat, f"{name} {arg}")


COMMANDS: dict[str, Command] = {
    "/help": Command("", "show these commands", lambda c, a: show_help(c)),
    "/exit": Command("", "leave (Ctrl-D works too)", lambda c, a: QUIT),
    "/quit": Command("", "leave", lambda c, a: QUIT),
    "/new": Command("", "start a fresh conversation (a new session)", lambda c, a: c.new()),
    "/history": Command("", "this conversation's turns, briefly", lambda c, a: history(c)),
    "/proposals": Command("[N]", "every reference answer of the last turn (or turn N), in full",
                          lambda c, a: proposals(c, a)),
    "/retry": Command("", "regenerate the last answer", lambda c, a: retry(c)),
    "/usage": Command("", "tokens and cost of this conversation so far", lambda c, a: usage(c)),
    "/save": Command("FILE", "export this conversation (Markdown, or JSON for *.json)", lambda c, a: save(c, a)),
    "/models": Command("", "the references, aggregator and rounds in use", lambda c, a: models(c)),
    "/set": Command("[NAME VALUE]", "change any option `moa chat` takes as a flag (alone: list them)",
                    set_option, lambda c: [o.name.replace("_", "-") for o in settable()]),
    "/mix": Command("NAME", "switch to a named mix", _alias("mix"), lambda c: c.source.mix_names()),
    "/references": Command("M[,M...]", "set the reference models", _alias("references")),
    "/aggregator": Command("M", "set the aggregator model", _alias("aggregator")),
    "/rounds": Command("N", "reference rounds (0 = aggregator alone)", _alias("rounds")),
    "/temperature": Command("X", "sampling temperature for every call", _alias("temperature")),
    "/max-tokens": Command("N", "output cap for every call", _alias("max_tokens")),
    "/file": Command("PATH", "attach a text file to your next message", lambda c, a: slash_extras.attach(c, a)),
    "/role": Command("[NAME]", "switch to a role ([roles.NAME] in the config); no NAME: show them",
                     lambda c, a: slash_extras.role(c, a), lambda c: slash_extras.role_names()),
    "/system": Command("[TEXT]", "set the system prompt for every model; no TEXT: show it",
                       lambda c, a: slash_extras.system(c, a)),
    "/copy": Command("[code]", "copy the last answer (or its code blocks) to the clipboard",
                     lambda c, a: slash_extras.copy(c, a), lambda c: ["code"]),
    "/proposers": Command("[on|off]", "show or hide the reference panels", lambda c, a: proposers(c, a),
                          lambda c: ["on", "off"]),
}


async def dispatch(chat: "ChatState", text: str):
    """Run one command line; whatever goes wrong is a one-line UsageError and the chat goes on."""
    name, _, arg = text.partition(" ")
    command = COMMANDS.get(name.lower())
    if command is None:
        raise UsageError(f"unknown command {name} (try /help)")
    arg = arg.strip()
    if command.arg and not command.arg.startswith("[") and not arg:
        raise UsageError(f"usage: {name} {command.arg}")
    try:
        outcome = command.run(chat, arg)
    except (ValueError, OverflowError):  # int("x"), float("1e999") -> inf is caught by the rules, "/proposers maybe"
        shown = arg if len(arg) <= 40 else arg[:39] + "…"
        raise UsageError(f"{name}: bad value {shown!r} (usage: {name} {command.arg})") from None
    return await outcome if asyncio.iscoroutine(outcome) else outcome


def completions(chat: "ChatState", text: str) -> Iterator[tuple[str, int]]:
    """(completion, how many characters it replaces) for a line starting with '/'."""
    if not text.startswith("/") or "\n" in text:
        return  # never complete inside a message
    name, space, word = text.partition(" ")
    command = COMMANDS.get(name)
    options = COMMANDS if not space else command.choices(chat) if command and command.choices else []
    current = word if space else name
    for option in options:
        if option.startswith(current) and " " not in word:
            yield option, len(current)


# ---------------------------------------------------------------- the commands


def retry(chat: "ChatState"):
    turns = chat.turns()
    if not turns:
        raise UsageError("/retry: nothing to retry yet")
    answered = next((t for t in reversed(turns) if t.status == "ok" and t.replaced_by is None), None)
    last = turns[-1]
    # A question that failed or was interrupted is asked again; it is not in the context anyway.
    # Otherwise (including after a failed retry) the newest answer is regenerated and replaced.
    if last.status != "ok" and (answered is None or last.question != answered.question):
        return chat.ask(last.question)
    return chat.ask(answered.question, replaces=answered)


def history(chat: "ChatState") -> None:
    turns = chat.turns()
    for t in turns:
        status = "replaced" if t.replaced_by else t.status
        chat.say(f"{t.seq:>3}. [{status}] {_short(t.question, 50)} → {_short(t.final, 60) or '-'}")
    if not turns:
        chat.say("no turns yet")


def proposals(chat: "ChatState", arg: str) -> None:
    from .transcript import proposals_markdown
    from .sanitize import terminal_safe

    turns = chat.turns()
    if not turns:
        raise UsageError("/proposals: no turns yet")
    turn = turns[-1] if not arg else next((t for t in turns if t.seq == int(arg)), None)
    if turn is None:
        raise UsageError(f"/proposals: no turn {arg} in this conversation (see /history)")
    text = terminal_safe(proposals_markdown(turn)) or "*(this turn has no reference answers)*"
    if not chat.piped and sys.stdout.isatty():
        from .render.live import make_console
        from .render.mdstream import markdown

        make_console().print(markdown(f"## Turn {turn.seq}: reference answers\n\n{text}"))
    else:
        chat.say(text)


def usage(chat: "ChatState") -> None:
    from .config.model_facts import cost as call_cost
    from .providers.base import Usage

    turns = chat.turns()
    tokens_in, tokens_out = sum(t.prompt_tokens for t in turns), sum(t.completion_tokens for t in turns)
    dollars, unpriced = 0.0, False
    for t in turns:
        if t.cost is not None:
            dollars += t.cost
            continue
        # Saved without a total (some call had no known price): the priced calls still count,
        # as they did in the turn's own summary line.
        for p in t.proposals:
            used = Usage(p.get("prompt_tokens") or 0, p.get("completion_tokens") or 0)
            price = call_cost(p["model"], used, chat.settings.prices)
            if price is None:
                unpriced = unpriced or bool(used.prompt_tokens or used.completion_tokens)
            else:
                dollars += price
    cost = ("cost unknown" if not dollars else f"${dollars:.4f} + unpriced") if unpriced else f"${dollars:.4f}"
    count = f"{len(turns)} turn" + ("" if len(turns) == 1 else "s")
    chat.say(f"{count} · {tokens_in:,} in / {tokens_out:,} out tokens · {cost}")


def save(chat: "ChatState", file: str) -> None:
    if chat.session_id is None:
        raise UsageError("/save: nothing to save yet")
    path = Path(file).expanduser()
    from .commands.history import safe_export

    text = safe_export(chat.store, chat.session_id, "json" if path.suffix == ".json" else "md") + "\n"
    try:
        write_atomic(path, text, mode=0o600)  # a full disk leaves the old file, never half of one
    except UsageError as error:
        raise UsageError(f"/save: {error.message}") from None
    chat.say(f"saved to {path}")


def models(chat: "ChatState") -> None:
    mix, options = chat.settings.mix, chat.settings.options
    chat.say(f"mix {mix.name} · {mix.rounds} round(s) · strategy {mix.strategy}")
    # Each model with its own sampling: the aggregator's values are not the mix's.
    for number, layer in enumerate(mix.layers, 1):
        chat.say(f"  round {number}: {', '.join(_with_sampling(m) for m in layer)}")
    chat.say(f"  aggregator: {_with_sampling(mix.aggregator)}")
    chat.say(f"  multi-turn {_on(options.multi_turn)} · panels {_on(chat.show_proposers)}")


def _with_sampling(model) -> str:
    return (f"{model.label} (temperature {_or_default(model.temperature)}, "
            f"max tokens {_or_default(model.max_tokens)})")


def proposers(chat: "ChatState", arg: str) -> None:
    if arg.lower() not in ("", "on", "off"):
        raise ValueError(arg)
    chat.show_proposers = not chat.show_proposers if not arg else arg.lower() == "on"
    chat.say(f"reference panels {_on(chat.show_proposers)}")


def show_help(chat: "ChatState") -> None:
    for name, command in COMMANDS.items():
        chat.say(f"  {(name + ' ' + command.arg).ljust(24)} {command.help}")
    chat.say("  Enter sends · Alt-Enter (or Esc Enter) adds a line · Ctrl-C stops an answer · Ctrl-D leaves")
    chat.say("  A line starting with // sends a message that begins with /")


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _or_default(value) -> str:
    return "default" if value is None else str(value)


def _on(flag: bool) -> str:
    return "on" if flag else "off"
