"""The `moa` command: parses flags, builds Settings, and hands off to a frontend."""

from __future__ import annotations

import os
import sys
from typing import Annotated, List, Optional

import typer

from .errors import EXIT_INTERRUPTED, EXIT_USAGE, MoaError, print_error

app = typer.Typer(
    name="moa",
    help="Mixture-of-Agents chat: several models answer, one aggregator writes the final answer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)

# Flags shared by `ask` and `chat` (and later `serve`).
Mix = Annotated[Optional[str], typer.Option("--mix", "-m", help="Named mix (see `moa mixes`).")]
References = Annotated[
    Optional[List[str]],
    typer.Option("--reference-models", "-r", help="Reference model, PROVIDER:MODEL; repeat or comma-separate."),
]
Aggregator = Annotated[Optional[str], typer.Option("--aggregator", "-a", help="Aggregator model.")]
Rounds = Annotated[Optional[int], typer.Option("--rounds", help="Reference rounds before the aggregator (0 = aggregator alone).")]
Temperature = Annotated[Optional[float], typer.Option("--temperature", "-t", help="Sampling temperature for every call.")]
MaxTokens = Annotated[Optional[int], typer.Option("--max-tokens", help="Output token cap for every call.")]
RefMaxTokens = Annotated[Optional[int], typer.Option("--reference-max-tokens", help="Output cap for reference models only.")]
System = Annotated[Optional[str], typer.Option("--system", "-s", help="System prompt for every model.")]
Timeout = Annotated[Optional[float], typer.Option("--timeout", help="Connect/read timeout per call, seconds.")]
Retries = Annotated[Optional[int], typer.Option("--retries", help="Extra tries on 429/5xx/connection errors.")]
MinProposers = Annotated[Optional[int], typer.Option("--min-proposers", help="Answers a round needs before stragglers are cut.")]
Deadline = Annotated[Optional[float], typer.Option("--proposer-deadline", help="Seconds into a round after which stragglers are cut.")]
Fallback = Annotated[Optional[bool], typer.Option("--fallback/--no-fallback", help="On aggregator failure, answer with the best reference.")]
Concurrency = Annotated[Optional[int], typer.Option("--concurrency", help="Calls in flight per provider.")]


def overrides(mix=None, references=None, aggregator=None, rounds=None, temperature=None, max_tokens=None,
              reference_max_tokens=None, system=None, timeout=None, retries=None, min_proposers=None,
              proposer_deadline=None, fallback=None, concurrency=None, multi_turn=None):
    from .config import Overrides

    refs = None
    if references is not None:
        refs = tuple(part.strip() for item in references for part in item.split(",") if part.strip())
    return Overrides(
        mix=mix, references=refs, aggregator=aggregator, rounds=rounds, temperature=temperature,
        max_tokens=max_tokens, reference_max_tokens=reference_max_tokens, system=system, timeout=timeout,
        retries=retries, min_proposers=min_proposers, proposer_deadline=proposer_deadline, fallback=fallback,
        concurrency=concurrency, multi_turn=multi_turn,
    )


@app.command()
def ask(
    question: Annotated[Optional[List[str]], typer.Argument(help="The question; '-' reads stdin. Piped stdin is prepended.")] = None,
    mix: Mix = None, references: References = None, aggregator: Aggregator = None, rounds: Rounds = None,
    temperature: Temperature = None, max_tokens: MaxTokens = None, reference_max_tokens: RefMaxTokens = None,
    system: System = None, timeout: Timeout = None, retries: Retries = None, min_proposers: MinProposers = None,
    proposer_deadline: Deadline = None, fallback: Fallback = None, concurrency: Concurrency = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object with every answer.")] = False,
    plain: Annotated[bool, typer.Option("--plain", help="Plain text even on a terminal.")] = False,
    continue_: Annotated[bool, typer.Option("--continue", "-c", help="Add this turn to the last chat session.")] = False,
    session: Annotated[Optional[str], typer.Option("--session", help="Add this turn to the named session.")] = None,
):
    """Answer one question with a Mixture-of-Agents."""
    from .config import load_settings
    from .frontends import ask_once
    from .inputs import prompt_from

    text = prompt_from(question)
    settings = load_settings(overrides(
        mix, references, aggregator, rounds, temperature, max_tokens, reference_max_tokens, system, timeout,
        retries, min_proposers, proposer_deadline, fallback, concurrency,
    ))
    raise typer.Exit(ask_once(settings, text, json_output=json_output, plain=plain,
                              continue_last=continue_, session_name=session))


@app.command()
def chat(
    mix: Mix = None, references: References = None, aggregator: Aggregator = None, rounds: Rounds = None,
    temperature: Temperature = None, max_tokens: MaxTokens = None, reference_max_tokens: RefMaxTokens = None,
    system: System = None, timeout: Timeout = None, retries: Retries = None, min_proposers: MinProposers = None,
    proposer_deadline: Deadline = None, fallback: Fallback = None, concurrency: Concurrency = None,
    multi_turn: Annotated[Optional[bool], typer.Option(
        "--multi-turn/--no-multi-turn", help="Send earlier questions and answers as context (default on).")] = None,
    continue_: Annotated[bool, typer.Option("--continue", "-c", help="Resume the last session.")] = False,
    session: Annotated[Optional[str], typer.Option("--session", help="Resume or create the named session.")] = None,
    plain: Annotated[bool, typer.Option("--plain", help="Plain text answers, no live panels.")] = False,
):
    """Chat with a Mixture-of-Agents: multi-turn, saved as a session. Piped stdin: one turn per line."""
    from .config import load_settings
    from .repl import run_chat

    settings = load_settings(overrides(
        mix, references, aggregator, rounds, temperature, max_tokens, reference_max_tokens, system, timeout,
        retries, min_proposers, proposer_deadline, fallback, concurrency, multi_turn,
    ))
    raise typer.Exit(run_chat(settings, continue_last=continue_, session_name=session, plain=plain))


@app.command()
def history(
    action: Annotated[str, typer.Argument(help="list | show | export | delete")] = "list",
    session: Annotated[Optional[str], typer.Argument(help="Session id or name (show, export, delete).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="Export format: md or json.")] = "md",
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Export to this file, not stdout.")] = None,
    proposals: Annotated[bool, typer.Option("--proposals", "-p", help="`show`: every reference answer too.")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", help="`list`: at most this many sessions.")] = 50,
):
    """Saved chat sessions: `list`, `show ID`, `export ID --format md|json`, `delete ID`."""
    from . import history as sessions

    sessions.run(action, session, fmt=fmt, output=output, proposals=proposals, limit=limit)


@app.command()
def mixes(
    action: Annotated[str, typer.Argument(help="'list' (default), 'show', or a mix name to show.")] = "list",
    name: Annotated[Optional[str], typer.Argument(help="The mix to show (default: the one `moa ask` would use).")] = None,
):
    """List the mixes and where each comes from, or `moa mixes show NAME` to print one resolved, as TOML."""
    from . import commands

    commands.mixes(action, name)


@app.command()
def models(provider: Annotated[str, typer.Argument(help="Provider name (see `moa keys list`).")] = "together"):
    """List the models a provider serves (from its /models endpoint), as PROVIDER:MODEL."""
    from . import commands

    commands.models(provider)


@app.command()
def config(action: Annotated[str, typer.Argument(help="path | show | init")] = "show"):
    """Print the config file's path, check and show it (secrets redacted), or write a commented example (`init`, never overwrites)."""
    from . import commands

    commands.config(action)


@app.command()
def keys(
    action: Annotated[str, typer.Argument(help="list | set")] = "list",
    provider: Annotated[Optional[str], typer.Argument(help="Provider, for `set`.")] = None,
):
    """`moa keys set PROVIDER` saves an API key (hidden input, file mode 0600); `moa keys list` shows which providers have one."""
    from . import commands

    commands.keys(action, provider)


def main() -> None:
    """Entry point: run, then leave with the exit code."""
    _exit(run(sys.argv[1:]))


def run(argv: list[str]) -> int:
    """Run one command: one-line errors with documented exit codes, never a traceback."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="moa", standalone_mode=False)
    except MoaError as error:
        print_error(error.message)
        code = error.exit_code
    except KeyboardInterrupt:
        print_error("interrupted")
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        code = 0  # `moa ask ... | head` closed the pipe early: not an error
    except Exception as error:  # noqa: BLE001
        # Typer may vendor its own copy of click, so its exceptions are matched by class name.
        kinds = {cls.__name__ for cls in type(error).__mro__}
        if "NoArgsIsHelpError" in kinds:
            code = 0  # bare `moa` printed its help: nothing went wrong
        elif "UsageError" in kinds:
            ctx = getattr(error, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            print_error(error.format_message().replace("\n", " ") + hint)
            code = EXIT_USAGE
        elif "Abort" in kinds:
            print_error("interrupted")
            code = EXIT_INTERRUPTED
        elif "Exit" in kinds:
            code = error.exit_code
        elif os.environ.get("MOA_DEBUG"):
            raise
        else:
            # A bug in moa, not bad input: still one line, with the way to see more.
            print_error(f"internal error: {type(error).__name__}: {error} (run with MOA_DEBUG=1 for a traceback)")
            code = 1
    return code if isinstance(code, int) else 0


def _exit(code: int) -> None:
    """Flush and leave without interpreter teardown.

    Everything worth keeping is written by now (sessions commit per turn, output is flushed
    here). Tearing down the thousands of SDK model classes costs ~0.2 s on every run.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass
    os._exit(code)
