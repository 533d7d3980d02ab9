"""The `moa` command: parses flags, builds Settings, and hands off to a frontend."""

from __future__ import annotations

import errno
import os
import signal
import sys
from typing import Annotated, List, Optional

import typer

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
    add_completion=False,
    # Plain click help: Rich's help tables cut long flag names ("--reference-max-tok…") at 80 columns.
    rich_markup_mode=None,
)

# Flags of several commands that are not settings of a turn (those come from the option table).
Mix = Annotated[Optional[str], typer.Option("--mix", "-m", help="Named mix (see `moa mixes`).")]


def _source_and_settings(overrides):
    """This process's config source, and the Settings of the flags a command was given (an
    Overrides, see flags.table_options)."""
    from .config import load_source

    source = load_source()
    return source, source.settings(overrides)


ASK_EXAMPLES = """Examples:

\b
  moa ask "Explain Python's GIL in two paragraphs"
  git diff | moa ask "Review this patch" --mix coding-oss
  moa ask -r openai:gpt-4o-mini,together:deepseek-ai/DeepSeek-V3 "Hi"
  moa ask --mix local --json "What is MoA?" | jq .final
"""

CHAT_EXAMPLES = """Examples:

\b
  moa chat          (then /help; /proposals shows the references)
  moa chat --mix local --continue
  printf 'first question\\nsecond question\\n' | moa chat --plain
"""


@app.command(epilog=ASK_EXAMPLES)
@table_options("ask")
def ask(
    question: Annotated[Optional[List[str]], typer.Argument(help="The question; '-' reads stdin. Piped stdin is prepended.")] = None,
    overrides=None,
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
    _, settings = _source_and_settings(overrides)
    raise typer.Exit(ask_once(settings, text, json_output=json_output, plain=plain or raw, raw=raw,
                              continue_last=continue_, session_name=session))


@app.command(epilog=CHAT_EXAMPLES)
@table_options("chat")
def chat(
    overrides=None,
    continue_: Annotated[bool, typer.Option("--continue", "-c", help="Resume the last session.")] = False,
    session: Annotated[Optional[str], typer.Option("--session", help="Resume or create the named session.")] = None,
    plain: Annotated[bool, typer.Option("--plain", help="Plain text answers, no live panels.")] = False,
):
    """Chat with a Mixture-of-Agents: multi-turn, saved as a session. Piped stdin: one turn per line."""
    from .repl import run_chat

    raise typer.Exit(run_chat(*_source_and_settings(overrides), continue_last=continue_, session_name=session, plain=plain))


@app.command()
def bench(
    suite: Annotated[str, typer.Argument(help="humaneval, chat (30 built-in instructions), or a FILE.jsonl with instruction fields.")],
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
):
    """Is a mix worth its cost? Run a suite on the mix and on each of its models alone; report quality, latency and cost."""
    from .bench import command

    raise typer.Exit(command.run(suite, mix=mix, baselines=list(baseline or []), concurrency=concurrency, out=out,
                                 resume=resume, limit=limit, sample=sample, sample_seed=sample_seed, judge=judge,
                                 retry_failed=retry_failed))


@app.command()
def history(
    action: Annotated[str, typer.Argument(help="list | show | export | delete")] = "list",
    session: Annotated[Optional[str], typer.Argument(help="Session id or name (show, export, delete).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="Export format: md or json.")] = "md",
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Export to this file, not stdout.")] = None,
    proposals: Annotated[bool, typer.Option("--proposals", "-p", help="`show`: every reference answer too, in full.")] = False,
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
def models(provider: Annotated[Optional[str], typer.Argument(
        help="Provider name (see `moa keys list`); default: every provider with a key.")] = None):
    """List the models a provider serves (from its /models endpoint), as PROVIDER:MODEL.

    Example: `moa models together | grep -i qwen`"""
    from .commands import models as command

    command.run(provider)


@app.command()
def config(action: Annotated[str, typer.Argument(help="path | show | init")] = "show"):
    """Print the config file's path, check and show it (secrets redacted), or write a commented example (`init`, never overwrites)."""
    from .commands import config as command

    command.run(action)


@app.command()
def keys(
    action: Annotated[str, typer.Argument(help="list | set | delete")] = "list",
    provider: Annotated[Optional[str], typer.Argument(help="Provider, for `set` and `delete`.")] = None,
):
    """`moa keys set PROVIDER` saves an API key (hidden input, file mode 0600); `moa keys list` shows which providers have one; `moa keys delete PROVIDER` forgets a saved key."""
    from .commands import keys as command

    command.run(action, provider)


@app.command()
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
