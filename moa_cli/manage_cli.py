"""`moa history`, `moa config`, `moa keys`, `moa roles`: the management commands, as typer
sub-commands so that each action has its own `--help` (`moa history show --help`).

Thin like cli.py: every action hands off to its module in commands/, imported when it runs.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .completion import complete_provider, complete_session


def _group(name: str, help: str, short: str, epilog: str) -> typer.Typer:
    return typer.Typer(name=name, help=help, short_help=short, epilog=epilog, no_args_is_help=False,
                       invoke_without_command=True, rich_markup_mode=None,
                       context_settings={"help_option_names": ["-h", "--help"]})


# ---------------------------------------------------------------- history

history_app = _group(
    "history", "Saved sessions: list them, show or export one, search every question and answer, delete one.",
    "Saved sessions: list, show, export, search, delete.",
    """Examples:

\b
  moa history                      (the newest sessions)
  moa history show 3 --proposals   (session 3 with every reference answer)
  moa history search "race condition"
  moa history export notes -f json -o notes.json
""")

Session = Annotated[str, typer.Argument(help="Session id or name (see `moa history list`).",
                                        autocompletion=complete_session, metavar="SESSION")]


@history_app.callback()
def _history(ctx: typer.Context):
    if ctx.invoked_subcommand is None:
        from .commands import history as command

        command.run("list", None)


@history_app.command("list", epilog="Example:\n\n\b\n  moa history list -n 5 | cut -f1,6")
def history_list(limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many sessions.")] = 50):
    """The saved sessions, newest first (tab-separated when piped)."""
    from .commands import history as command

    command.run("list", None, limit=limit)


@history_app.command("show", epilog="Examples:\n\n\b\n  moa history show 3\n  moa history show notes --proposals | less")
def history_show(session: Session,
                 proposals: Annotated[bool, typer.Option("--proposals", "-p", help="Every reference answer too, in full.")] = False,
                 pager: Annotated[Optional[bool], typer.Option("--pager/--no-pager", help="Page long output on a terminal with $PAGER or less -R. [default: on a terminal]")] = None):
    """One session's questions and final answers, as Markdown."""
    from .commands import history as command

    command.run("show", session, proposals=proposals, pager=pager)


@history_app.command("export", epilog="Examples:\n\n\b\n  moa history export 3 > chat.md\n  moa history export notes -f json -o notes.json")
def history_export(session: Session,
                   fmt: Annotated[str, typer.Option("--format", "-f", help="md or json.", metavar="md|json")] = "md",
                   output: Annotated[Optional[str], typer.Option("--output", "-o", help="Write to this file, not stdout.", metavar="FILE")] = None):
    """One session as Markdown or JSON, every answer included."""
    from .commands import history as command

    command.run("export", session, fmt=fmt, output=output)


@history_app.command("search", short_help="Find turns by the words of their question or answer.", epilog='Examples:\n\n\b\n  moa history search "connection pool"\n  moa history search asyncio -n 5')
def history_search(text: Annotated[list[str], typer.Argument(help="Words to find (all of them), in questions and final answers.", metavar="TEXT")],
                   limit: Annotated[int, typer.Option("--limit", "-n", help="At most this many turns.")] = 20):
    """Find turns whose question or final answer has every word, newest first, with the session and turn to show."""
    from .commands import history as command

    command.search(" ".join(text), limit=limit)


@history_app.command("delete", epilog="Example:\n\n\b\n  moa history delete 3")
def history_delete(session: Session):
    """Delete one session and everything in it."""
    from .commands import history as command

    command.run("delete", session)


# ---------------------------------------------------------------- config

config_app = _group(
    "config", "The config file: print its path, check and show it (secrets redacted), or write a commented example.",
    "The config file: path, show (checked, secrets hidden), init.",
    """Examples:

\b
  moa config               (check the file and show it)
  $EDITOR "$(moa config path)"
  moa config init          (a commented example; never overwrites)
""")


@config_app.callback()
def _config(ctx: typer.Context):
    if ctx.invoked_subcommand is None:
        from .commands import config as command

        command.run("show")


@config_app.command("path", epilog='Example:\n\n\b\n  $EDITOR "$(moa config path)"')
def config_path():
    """Print the config file's path (MOA_CONFIG or MOA_HOME move it)."""
    from .commands import config as command

    command.run("path")


@config_app.command("show", epilog="Example:\n\n\b\n  moa config show")
def config_show():
    """Check the config file and print it, secrets shown as ***."""
    from .commands import config as command

    command.run("show")


@config_app.command("init", epilog="Example:\n\n\b\n  moa config init && moa config path")
def config_init():
    """Write a commented example config file (never overwrites one)."""
    from .commands import config as command

    command.run("init")


# ---------------------------------------------------------------- keys

keys_app = _group(
    "keys", "API keys saved by moa (file mode 0600): list which providers have one, save one, forget one.",
    "API keys: list, set (hidden input), delete.",
    """Examples:

\b
  moa keys                  (which providers have a key, and where from)
  moa keys set together     (asks for the key without echoing it)
  echo "$KEY" | moa keys set openai
  moa keys delete openai
""")

Provider = Annotated[str, typer.Argument(help="Provider name (see `moa keys list`).", autocompletion=complete_provider,
                                         metavar="PROVIDER")]


@keys_app.callback()
def _keys(ctx: typer.Context):
    if ctx.invoked_subcommand is None:
        from .commands import keys as command

        command.run("list", None)


@keys_app.command("list", short_help="Which providers have a key (never the key).", epilog="Example:\n\n\b\n  moa keys list")
def keys_list():
    """Which providers have a key, and where it comes from (never the key)."""
    from .commands import keys as command

    command.run("list", None)


@keys_app.command("set", short_help="Save a provider's API key (hidden input).", epilog="Examples:\n\n\b\n  moa keys set together\n  echo \"$KEY\" | moa keys set openai")
def keys_set(provider: Provider):
    """Save a provider's API key: hidden input on a terminal, one line from a pipe."""
    from .commands import keys as command

    command.run("set", provider)


@keys_app.command("delete", epilog="Example:\n\n\b\n  moa keys delete openai")
def keys_delete(provider: Provider):
    """Forget a saved key (one in the environment is not touched)."""
    from .commands import keys as command

    command.run("delete", provider)
