"""The `moa` command: parses flags, builds Settings, and hands off to a frontend."""

from __future__ import annotations

import errno
import os
import sys
from typing import Annotated, List, Optional

import typer

from .errors import EXIT_INTERRUPTED, EXIT_USAGE, MoaError, print_error
from .output import exit_code_for_output

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


Log = Annotated[Optional[bool], typer.Option("--log/--no-log", help="Save the turn in the sessions database (default on).")]


def _settings(**flags):
    """Settings from the flags a command was given, passed by name (see Overrides.from_flags)."""
    from .config import Overrides, load_settings

    return load_settings(Overrides.from_flags(**flags))


@app.command()
def ask(
    question: Annotated[Optional[List[str]], typer.Argument(help="The question; '-' reads stdin. Piped stdin is prepended.")] = None,
    mix: Mix = None, references: References = None, aggregator: Aggregator = None, rounds: Rounds = None,
    temperature: Temperature = None, max_tokens: MaxTokens = None, reference_max_tokens: RefMaxTokens = None,
    system: System = None, timeout: Timeout = None, retries: Retries = None, min_proposers: MinProposers = None,
    proposer_deadline: Deadline = None, fallback: Fallback = None, concurrency: Concurrency = None,
    log: Log = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object with every answer.")] = False,
    plain: Annotated[bool, typer.Option("--plain", help="Plain text even on a terminal.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Plain text with the model's bytes exactly as sent (control characters kept).")] = False,
    continue_: Annotated[bool, typer.Option("--continue", "-c", help="Add this turn to the last session.")] = False,
    session: Annotated[Optional[str], typer.Option("--session", help="Add this turn to the named session.")] = None,
):
    """Answer one question with a Mixture-of-Agents."""
    from .ask import ask_once
    from .inputs import prompt_from

    text = prompt_from(question)
    settings = _settings(
        mix=mix, references=references, aggregator=aggregator, rounds=rounds, temperature=temperature,
        max_tokens=max_tokens, reference_max_tokens=reference_max_tokens, system=system, timeout=timeout,
        retries=retries, min_proposers=min_proposers, proposer_deadline=proposer_deadline, fallback=fallback,
        concurrency=concurrency, log=log,
    )
    raise typer.Exit(ask_once(settings, text, json_output=json_output, plain=plain or raw, raw=raw,
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
    log: Log = None,
):
    """Chat with a Mixture-of-Agents: multi-turn, saved as a session. Piped stdin: one turn per line."""
    from .repl import run_chat

    settings = _settings(
        mix=mix, references=references, aggregator=aggregator, rounds=rounds, temperature=temperature,
        max_tokens=max_tokens, reference_max_tokens=reference_max_tokens, system=system, timeout=timeout,
        retries=retries, min_proposers=min_proposers, proposer_deadline=proposer_deadline, fallback=fallback,
        concurrency=concurrency, multi_turn=multi_turn, log=log,
    )
    raise typer.Exit(run_chat(settings, continue_last=continue_, session_name=session, plain=plain))


@app.command()
def bench(
    suite: Annotated[str, typer.Argument(help="humaneval, chat (30 built-in instructions), or a FILE.jsonl with instruction fields.")],
    mix: Mix = None,
    baseline: Annotated[Optional[List[str]], typer.Option("--baseline", help="Another model to compare, PROVIDER:MODEL; repeatable.")] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", help="Model calls in flight at most (default 4; 1 when every model is local).")] = None,
    out: Annotated[Optional[str], typer.Option("--out", help="Output directory (default: moa-bench/SUITE-MIX).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out: finished items are kept.")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Only the first N items.")] = None,
    sample: Annotated[Optional[int], typer.Option("--sample", help="N items picked at random (see --seed).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for --sample.")] = 0,
    judge: Annotated[Optional[str], typer.Option("--judge", help="Judge model for instruction sets, PROVIDER:MODEL.")] = None,
):
    """Is a mix worth its cost? Run a suite on the mix and on each of its models alone; report quality, latency and cost."""
    from .bench import command

    raise typer.Exit(command.run(suite, mix=mix, baselines=list(baseline or []), concurrency=concurrency, out=out,
                                 resume=resume, limit=limit, sample=sample, seed=seed, judge=judge))


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
    from .commands import history as command

    command.run(action, session, fmt=fmt, output=output, proposals=proposals, limit=limit)


@app.command()
def mixes(
    action: Annotated[str, typer.Argument(help="'list' (default), 'show', or a mix name to show.")] = "list",
    name: Annotated[Optional[str], typer.Argument(help="The mix to show (default: the one `moa ask` would use).")] = None,
):
    """List the mixes and where each comes from, or `moa mixes show NAME` to print one resolved, as TOML."""
    from .commands import mixes as command

    command.run(action, name)


@app.command()
def models(provider: Annotated[str, typer.Argument(help="Provider name (see `moa keys list`).")] = "together"):
    """List the models a provider serves (from its /models endpoint), as PROVIDER:MODEL."""
    from .commands import models as command

    command.run(provider)


@app.command()
def config(action: Annotated[str, typer.Argument(help="path | show | init")] = "show"):
    """Print the config file's path, check and show it (secrets redacted), or write a commented example (`init`, never overwrites)."""
    from .commands import config as command

    command.run(action)


@app.command()
def keys(
    action: Annotated[str, typer.Argument(help="list | set")] = "list",
    provider: Annotated[Optional[str], typer.Argument(help="Provider, for `set`.")] = None,
):
    """`moa keys set PROVIDER` saves an API key (hidden input, file mode 0600); `moa keys list` shows which providers have one."""
    from .commands import keys as command

    command.run(action, provider)


def main() -> None:
    """Entry point: run the command, then exit with its code through the normal interpreter exit,
    so atexit handlers (local models' cleanup) run."""
    from .output import guard_standard_streams

    guard_standard_streams()
    sys.exit(run(sys.argv[1:]))


def run(argv: list[str]) -> int:
    """Run one command: one-line errors with documented exit codes, never a traceback."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="moa", standalone_mode=False)
        sys.stdout.flush()  # a full disk shows up here, not in a write: report it while we can
    except MoaError as error:
        print_error(error.message)
        code = error.exit_code
    except KeyboardInterrupt:
        print_error("interrupted")
        code = EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001
        if isinstance(error, OSError) and _is_output_error(error):
            return exit_code_for_output(error)  # `moa mixes | head -1`, `moa history list > /dev/full`
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


def _is_output_error(error: OSError) -> bool:
    return error.errno in (errno.EPIPE, errno.ENOSPC, errno.EBADF, errno.EIO, errno.EDQUOT)
