"""The `moa` command: parses flags, builds Settings, and hands off to a frontend."""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Annotated, List, Optional

import typer

from .completion import complete_mix, complete_provider, complete_role
from .errors import EXIT_INTERRUPTED, EXIT_USAGE, MoaError
from .flags import table_options
from .output import print_error
from .output import exit_code_for_output

app = typer.Typer(
    name="moa",
    help="Mixture-of-Agents chat: several models answer, one aggregator writes the final answer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=True,  # --install-completion / --show-completion, typer's own mechanism
    # Plain click help: Rich's help tables cut long flag names ("--reference-max-tok…") at 80 columns.
    rich_markup_mode=None,
)



def _show_version(value: bool) -> None:
    if value:
        from . import __version__

        sys.stdout.write(f"moa {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _top(version: Annotated[bool, typer.Option(
        "--version", "-V", callback=_show_version, is_eager=True, help="Print moa's version and exit.")] = False):
    """Mixture-of-Agents chat: several models answer, one aggregator writes the final answer."""


# Flags of several commands that are not settings of a turn (those come from the option table).
Mix = Annotated[Optional[str], typer.Option("--mix", "-m", help="Named mix (see `moa mixes`).",
                                             autocompletion=complete_mix, metavar="NAME")]
Log = Annotated[Optional[bool], typer.Option("--log/--no-log", help="Save the turn in the sessions database (default on).")]
Files = Annotated[Optional[List[str]], typer.Option(
    "--file", "-f", metavar="PATH", help="Put this text file before the question, with its name; repeatable.")]
Role = Annotated[Optional[str], typer.Option(
    "--role", metavar="NAME", autocompletion=complete_role,
    help="A [roles.NAME] from the config: its system prompt, and its mix unless -m/-r/-a pick one (see `moa roles`).")]


def _source_and_settings(overrides, role: str | None = None):
    """This process's config source, and the Settings of the flags a command was given (an
    Overrides, see flags.table_options), with a `--role` on top (roles.with_role)."""
    from .config import load_source
    from .roles import with_role

    source = load_source()
    return source, source.settings(with_role(overrides, role))


ASK_EXAMPLES = """Examples:

\b
  moa ask "Explain Python's GIL in two paragraphs"
  git diff | moa ask "Review this patch" --mix coding-oss
  moa ask -r openai:gpt-4o-mini,together:deepseek-ai/DeepSeek-V3 "Hi"
  moa ask --mix local --json "What is MoA?" | jq .final
  moa ask -f app.py -f test_app.py "Why does the test fail?"
  moa ask -x "A Python script that dedups lines" > dedup.py
  moa ask --role reviewer -f patch.diff "Review this"
"""

CHAT_EXAMPLES = """Examples:

\b
  moa chat          (then /help; /proposals shows the references)
  moa chat --mix local --continue
  moa chat --role reviewer -f notes.md   (the file goes with message one)
  printf 'first question\\nsecond question\\n' | moa chat --plain
"""


@app.command(epilog=ASK_EXAMPLES, short_help="Answer one question with a Mixture-of-Agents.")
@table_options("ask")
def ask(
    question: Annotated[Optional[List[str]], typer.Argument(help="The question; '-' reads stdin. Piped stdin is prepended.")] = None,
    overrides=None,
    files: Files = None,
    role: Role = None,
    extract: Annotated[bool, typer.Option("--extract", "-x", help="Print only the fenced code blocks of the final answer.")] = False,
    extract_last: Annotated[bool, typer.Option("--extract-last", help="Print only the last fenced code block of the final answer.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object with every answer.")] = False,
    plain: Annotated[bool, typer.Option("--plain", help="Plain text even on a terminal.")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="Plain text with the model's bytes exactly as sent (control characters kept).")] = False,
    continue_: Annotated[bool, typer.Option("--continue", "-c", help="Add this turn to the last session.")] = False,
    session: Annotated[Optional[str], typer.Option("--session", help="Add this turn to the named session.")] = None,
):
    """Answer one question with a Mixture-of-Agents."""
    from .ask import ask_once
    from .inputs import prompt_from

    if (extract or extract_last) and json_output:
        from .errors import UsageError

        raise UsageError("-x/--extract-last print code, --json prints JSON: use one of them")
    text = prompt_from(question, files=files or ())
    _, settings = _source_and_settings(overrides, role)
    raise typer.Exit(ask_once(settings, text, json_output=json_output, plain=plain or raw, raw=raw,
                              continue_last=continue_, session_name=session, role=role,
                              extract="last" if extract_last else "all" if extract else None))


@app.command(epilog=CHAT_EXAMPLES, short_help="Chat with a Mixture-of-Agents, saved as a session.")
@table_options("chat")
def chat(
    overrides=None,
    continue_: Annotated[bool, typer.Option("--continue", "-c", help="Resume the last session.")] = False,
    session: Annotated[Optional[str], typer.Option("--session", help="Resume or create the named session.")] = None,
    plain: Annotated[bool, typer.Option("--plain", help="Plain text answers, no live panels.")] = False,
    files: Files = None,
    role: Role = None,
):
    """Chat with a Mixture-of-Agents: multi-turn, saved as a session. Piped stdin: one turn per line."""
    from .repl import run_chat
    from .attachments import read_files

    attached = read_files(files or ())  # a bad file is refused before the chat starts
    raise typer.Exit(run_chat(*_source_and_settings(overrides, role), continue_last=continue_, session_name=session,
                              plain=plain, role=role, attachments=attached))


BENCH_EXAMPLES = """Examples:

\b
  moa bench humaneval --mix coding-oss --limit 20
  moa bench chat --mix moa-lite --judge openai:gpt-4o
  moa bench prompts.jsonl --baseline openai:gpt-4o-mini --out runs/mine
  moa bench humaneval --out runs/he --resume
"""


@app.command(epilog=BENCH_EXAMPLES, short_help="Is a mix worth its cost? Quality, latency and cost against its models.")
def bench(
    suite: Annotated[str, typer.Argument(help="humaneval, chat (30 built-in instructions), or a FILE.jsonl with instruction fields.", metavar="SUITE")],
    mix: Mix = None,
    baseline: Annotated[Optional[List[str]], typer.Option("--baseline", help="Another model to compare, PROVIDER:MODEL; repeatable.")] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", help="Model calls in flight at most (default 4; 1 when every model is local).")] = None,
    out: Annotated[Optional[str], typer.Option("--out", help="Output directory (default: moa-bench/SUITE-MIX).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out: finished items are kept.")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="With --resume: ask again the items whose answer failed.")] = False,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Only the first N items.")] = None,
    sample: Annotated[Optional[int], typer.Option("--sample", help="N items picked at random (see --sample-seed).")] = None,
    sample_seed: Annotated[int, typer.Option("--sample-seed", help="Seed for picking the --sample items.")] = 0,
    judge: Annotated[Optional[str], typer.Option("--judge", help="Judge model for instruction sets, PROVIDER:MODEL.")] = None,
    search: Annotated[Optional[str], typer.Option("--search", help="Search every mix of a POOL of models (a mix name, or PROVIDER:MODEL,...) for the best one.")] = None,
    proposers: Annotated[Optional[str], typer.Option("--proposers", help="--search: proposer set sizes, e.g. 2,3 or 2-4. [default: 2 up to the pool size]")] = None,
    rounds: Annotated[Optional[str], typer.Option("--rounds", help="--search: reference round counts to try, e.g. 1,2. [default: 1]")] = None,
    strategies: Annotated[Optional[str], typer.Option("--strategies", help="--search: aggregation strategies to try, e.g. synthesize,coding.")] = None,
    max_cost: Annotated[Optional[float], typer.Option("--max-cost", help="--search: stop (exit 6) when the estimate or the spend passes this many dollars.")] = None,
    save: Annotated[Optional[str], typer.Option("--save", help="--search: write the chosen configuration into the config file as this named mix.")] = None,
    pick: Annotated[Optional[str], typer.Option("--pick", help="--search --save: best (default), cheapest (within the best one's CI) or a leaderboard rank.")] = None,
    answers: Annotated[Optional[str], typer.Option("--answers", help="An answer ledger to read and extend: answers already in it are replayed, not asked (--search default: OUT/answers.jsonl).")] = None,
):
    """Is a mix worth its cost? Run a suite on the mix and on each of its models alone; report quality, latency and cost.

    With --search POOL: run every mix of the pool's models and rank them (shared answers keep it affordable)."""
    from .bench import command

    if search is not None:
        from .bench import search_command

        raise typer.Exit(search_command.run(
            suite, pool=search, proposers=proposers, rounds=rounds, strategies=strategies, max_cost=max_cost,
            save=save, pick=pick, answers_file=answers, concurrency=concurrency, out=out, resume=resume,
            limit=limit, sample=sample, sample_seed=sample_seed, judge=judge, baselines=list(baseline or [])))
    search_only = [flag for flag, value in (("--proposers", proposers), ("--rounds", rounds), ("--strategies", strategies),
                   ("--max-cost", max_cost), ("--save", save), ("--pick", pick)) if value is not None]
    if search_only:
        from .errors import UsageError

        raise UsageError(f"{search_only[0]} is for --search")
    raise typer.Exit(command.run(suite, mix=mix, baselines=list(baseline or []), concurrency=concurrency, out=out,
                                 resume=resume, limit=limit, sample=sample, sample_seed=sample_seed, judge=judge,
                                 retry_failed=retry_failed, answers_file=answers))


from .manage_cli import config_app, history_app, keys_app  # noqa: E402 - after the shared option types

app.add_typer(history_app)


MIXES_EXAMPLES = """Examples:

\b
  moa mixes                      (every mix and where it comes from)
  moa mixes show coding-oss      (one mix resolved, as TOML)
  moa mixes show >> "$(moa config path)"
"""


@app.command(epilog=MIXES_EXAMPLES, short_help="List the mixes, or show one resolved, as TOML.")
def mixes(
    action: Annotated[str, typer.Argument(help="'list' (default), 'show', or a mix name to show.", metavar="ACTION",
                                          autocompletion=lambda incomplete: [c for c in ["list", "show", *complete_mix(incomplete)] if c.startswith(incomplete)])] = "list",
    name: Annotated[Optional[str], typer.Argument(help="The mix to show (default: the one `moa ask` would use).", metavar="NAME",
                                                  autocompletion=complete_mix)] = None,
):
    """List the mixes and where each comes from, or `moa mixes show NAME` to print one resolved, as TOML."""
    from .commands import mixes as command

    command.run(action, name)


MODELS_EXAMPLES = """Examples:

\b
  moa models                     (every provider with a key)
  moa models together | grep -i qwen
"""


@app.command(epilog=MODELS_EXAMPLES, short_help="List the models a provider serves, as PROVIDER:MODEL.")
def models(provider: Annotated[Optional[str], typer.Argument(
        help="Provider name (see `moa keys list`); default: every provider with a key.", metavar="PROVIDER",
        autocompletion=complete_provider)] = None):
    """List the models a provider serves (from its /models endpoint), as PROVIDER:MODEL."""
    from .commands import models as command

    command.run(provider)


app.add_typer(config_app)
app.add_typer(keys_app)


ROLES_EXAMPLES = """Examples:

\b
  moa roles
  moa ask --role reviewer -f patch.diff "Review this"
  moa chat --role tutor         (then /role NAME or /system TEXT to switch)
"""


@app.command(epilog=ROLES_EXAMPLES, short_help="List the roles: [roles.NAME] config tables.")
def roles():
    """List the roles of the config file: each [roles.NAME] table holds a system prompt (`system`) and
    optionally a mix (`mix`) and a `description`."""
    from .roles import list_roles

    list_roles()


SERVE_EXAMPLES = """Examples:

\b
  moa serve --mix coding-oss --port 8080
  moa serve --port 0                  (a free port, shown on start)
  moa serve --host 0.0.0.0 --api-key "$(openssl rand -hex 16)"
  curl -s localhost:8000/v1/models
"""


@app.command(epilog=SERVE_EXAMPLES, short_help="Serve the mixes as an OpenAI-compatible API.")
def serve(
    mix: Mix = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on; anything but loopback needs --api-key.")] = "127.0.0.1",
    # 8484: not vLLM's 8000 (the `vllm` preset's), llama.cpp's 8080, LiteLLM's 4000 or Ollama's 11434.
    port: Annotated[int, typer.Option("--port", "-p", help="Port (0 picks a free one, shown on start).")] = 8484,
    api_key: Annotated[Optional[str], typer.Option(
        "--api-key", envvar="MOA_SERVER_API_KEY", show_envvar=True, show_default=False,
        help="Require `Authorization: Bearer KEY` on every /v1 request.")] = None,
    insecure: Annotated[bool, typer.Option("--insecure", help="Allow a non-loopback --host without an API key.")] = False,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes (each loads its own local models).")] = 1,
    grace: Annotated[float, typer.Option("--grace", help="Seconds in-flight requests get to finish after SIGTERM.")] = 30.0,
    max_body: Annotated[int, typer.Option("--max-body", help="Largest request body, in bytes (413 above).")] = 4 * 1024 * 1024,
    keep_alive: Annotated[float, typer.Option("--keep-alive", help="Seconds between SSE keep-alive comments.")] = 5.0,
    log_prompts: Annotated[bool, typer.Option("--log-prompts", help="Put each question in the access log.")] = False,
    allow_host: Annotated[Optional[List[str]], typer.Option(
        "--allow-host", help="Also accept requests whose Host header names this (loopback names and the --host "
                             "address always are); repeat for more, '*' for any.")] = None,
    cors_origin: Annotated[Optional[List[str]], typer.Option(
        "--cors-origin", help="Let a web page from this origin (e.g. http://localhost:3000) call the API; repeat "
                              "for more. Without it every request with an Origin header is refused.")] = None,
    header_timeout: Annotated[float, typer.Option(
        "--header-timeout", help="Seconds a client has to send a request's headers.")] = 10.0,
    idle_timeout: Annotated[float, typer.Option(
        "--idle-timeout", help="Seconds a client may go silent mid-body, or leave a response unread.")] = 60.0,
    max_messages: Annotated[int, typer.Option(
        "--max-messages", help="Newest messages of a conversation passed on (the system message is kept).")] = 64,
):
    """Serve the mixes as an OpenAI-compatible API (needs the `serve` extra): /v1/chat/completions, /v1/models."""
    try:
        from .server.run import serve as run_server
    except ImportError as error:
        raise MoaError(f"moa serve needs the serve extra ({error.name} is missing): pip install 'moa-cli[serve]'") from None
    raise typer.Exit(run_server(mix=mix, host=host, port=port, api_key=api_key, insecure=insecure, workers=workers,
                                grace=grace, max_body=max_body, keep_alive=keep_alive, log_prompts=log_prompts,
                                allow_hosts=tuple(allow_host or ()), cors_origins=tuple(cors_origin or ()),
                                header_timeout=header_timeout, idle_timeout=idle_timeout, max_messages=max_messages))


MCP_EXAMPLES = """Examples:

\b
  claude mcp add moa -- moa mcp --mix coding-oss   (Claude Code)
  {"command": "moa", "args": ["mcp"]}              (any MCP client's config)
  moa mcp --no-log                                 (keep no sessions)
"""


@app.command(epilog=MCP_EXAMPLES, short_help="Serve the mixes to coding agents over MCP (stdio).")
def mcp(
    mix: Annotated[Optional[str], typer.Option("--mix", "-m", help="The mix `ask` uses when the agent names none.",
                                               autocompletion=complete_mix, metavar="NAME")] = None,
    log: Log = None,
):
    """Serve the mixes to coding agents over MCP on stdin/stdout (needs the `mcp` extra): tools `ask` and `list_mixes`."""
    try:
        from .mcp_server import serve_stdio
    except ImportError as error:
        raise MoaError(f"moa mcp needs the mcp extra ({(error.name or 'mcp').split('.')[0]} is missing): "
                       "pip install 'moa-cli[mcp]'") from None
    raise typer.Exit(serve_stdio(mix=mix, log=log))


def main() -> None:
    """The console entry point. Programs embedding moa call `run(argv)`, which returns the code."""
    from .output import guard_standard_streams

    guard_standard_streams()
    code = run(sys.argv[1:])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # all said and done: a late Ctrl-C changes nothing
    _leave(code)


def _leave(code: int) -> None:
    """Exit once everything is closed. The frontends close the store and the provider clients
    themselves; the atexit handlers (llama.cpp models' cleanup among them) run here. What is
    skipped is only the interpreter's teardown of the SDKs' thousands of classes: measured at
    ~0.25 s of a 1.2 s-ideal `moa ask` (BENCHMARKS.md). Under `python -X dev` the normal exit
    runs, so tests still see any resource a command leaks."""
    import atexit

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if sys.flags.dev_mode or run_exit_handlers is None:
        sys.exit(code)
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass  # the reader left or the stream was closed: nothing more can be said
    os._exit(code)


def run(argv: list[str]) -> int:
    """Run one command: one-line errors with documented exit codes, never a traceback."""
    try:
        command = typer.main.get_command(app)
        _name_placeholders(command)
        # From here on Ctrl-C is a KeyboardInterrupt that every frontend handles (until now the
        # entry module's start-up handler ended moa quietly).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        code = command.main(args=argv, prog_name="moa", standalone_mode=False)
        sys.stdout.flush()  # a full disk shows up here, not in a write: report it while we can
    except MoaError as error:
        print_error(error.message)
        code = error.exit_code
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the last words short
        print_error("interrupted")
        code = EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001
        if isinstance(error, OSError) and _is_output_error(error):
            return exit_code_for_output(error)  # `moa mixes | head -1`, `moa history list > /dev/full`
        # Typer may vendor its own copy of click, so its exceptions are matched by class name.
        kinds = {cls.__name__ for cls in type(error).__mro__}
        if "NoArgsIsHelpError" in kinds:
            ctx = getattr(error, "ctx", None)
            if ctx is not None:
                sys.stdout.write(ctx.get_help() + "\n")  # bare `moa` (or `moa history`): the help
            code = 0
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


_PLACEHOLDERS = {"int": "N", "float": "NUMBER", "str": "TEXT"}


def _name_placeholders(command) -> None:
    """Give every option and argument without a metavar a plain placeholder (`N`, `TEXT`,
    `QUESTION...`), so --help never shows Python types such as `<list[str]>`."""
    for param in getattr(command, "params", ()):
        if param.param_type_name == "argument" and hasattr(param, "display_type_rich"):
            # typer writes an argument's Python type after its name ("SESSION <str>"): the name says enough
            param.display_type_rich = lambda ctx: None
        if param.metavar is not None or getattr(param, "is_flag", False) or getattr(param, "count", False):
            continue
        if param.param_type_name == "argument":
            name = (param.name or "value").upper()
            param.metavar = name
        else:
            bare = param.bare_type() if callable(getattr(param, "bare_type", None)) else ""
            param.metavar = _PLACEHOLDERS.get(str(bare).removeprefix("list[").removesuffix("]"), "VALUE")
    for sub in getattr(command, "commands", {}).values():
        _name_placeholders(sub)


def _is_output_error(error: OSError) -> bool:
    return error.errno in (errno.EPIPE, errno.ENOSPC, errno.EBADF, errno.EIO, errno.EDQUOT)
