"""`moa chat`: the interactive multi-turn REPL, and the same loop fed line by line from a pipe.

One asyncio loop runs the whole conversation. prompt_toolkit owns the terminal only while it
reads a line (`prompt_async`), the renderer only while a turn runs, so they never draw over each
other. Every turn is saved the moment it ends, and the next turn's context is read back from the
store, so what the models see is always what the session file says.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Awaitable, Callable

from . import signals, slash
from .config import ConfigSource, Overrides, Settings, paths
from .errors import EXIT_INTERRUPTED, EXIT_OK, MoaError, UsageError
from .output import print_error
from .output import exit_code_for_output, warn
from .render import pick_renderer
from .sanitize import terminal_safe
from .service import TurnService, open_service
from .store import TurnRecord


class Chat:
    """One conversation: a turn service (settings, provider pool, session) and how it is shown."""

    def __init__(self, service: TurnService, *, source: ConfigSource, piped: bool, plain: bool):
        self.service, self.source, self.piped = service, source, piped
        self.plain = plain or piped
        self.show_proposers = True
        self.answered = False  # piped answers after the first are set apart by a blank line
        self.attachments: list = []  # files (`-f`, `/file`) that go with the next message

    @property
    def settings(self) -> Settings:
        return self.service.settings

    @property
    def role(self) -> str | None:
        return self.service.role

    @role.setter
    def role(self, name: str | None) -> None:
        self.service.role = name  # saved on the session with the next turn

    @property
    def store(self):
        return self.service.store

    @property
    def session_id(self) -> int | None:
        return self.service.session_id

    def turns(self) -> list[TurnRecord]:
        """This conversation's saved turns (none before its first turn creates the session)."""
        return self.store.turns(self.session_id) if self.session_id else []

    # ---------------------------------------------------------------- the loop

    async def run(self, read: Callable[[], Awaitable[str | None]]) -> int:
        code = EXIT_OK
        try:
            while True:
                try:
                    text = await read()
                except SkippedLine as error:  # say so, and go on with the next line
                    print_error(error.message)
                    code = error.exit_code
                    continue
                if text is None:
                    break
                text = text.strip()
                if not text:
                    continue
                try:
                    # A leading "//" sends a message that itself starts with "/".
                    is_command = text.startswith("/") and not text.startswith("//")
                    outcome = await (slash.dispatch(self, text) if is_command else self.ask(text.removeprefix("/")))
                except MoaError as error:
                    print_error(error.message)
                    outcome = error.exit_code
                if outcome is slash.QUIT:
                    break
                if isinstance(outcome, _OutputFailed):
                    return outcome.code  # nobody can read the answers any more: stop, all saved
                if outcome == EXIT_INTERRUPTED and self.piped:
                    return EXIT_INTERRUPTED  # Ctrl-C in a script stops the script
                code = outcome or code
        finally:
            await self.service.aclose()
        return code if self.piped else EXIT_OK  # interactively, errors were shown as they came

    # ---------------------------------------------------------------- one turn

    async def ask(self, question: str, replaces: TurnRecord | None = None):
        if self.attachments and replaces is None:
            from .attachments import compose

            question, self.attachments = compose(question, self.attachments), []
        history = self.service.history()
        if replaces is not None:
            history = history[:-2]  # the answer being regenerated is the newest exchange
        renderer = pick_renderer(json_output=False, prices=self.settings.prices,
                                 show_proposers=self.show_proposers, force_plain=self.plain,
                                 gap_before=self.plain and self.answered)
        task = asyncio.ensure_future(self.service.run(
            question, history=history, listeners=[renderer], replaces=replaces.id if replaces else None))
        try:
            with _quiet_tty(enabled=not self.piped):
                await _until_done_or_ctrl_c(task)
            outcome = task.result()
        except asyncio.CancelledError:
            warn("interrupted: this turn is not part of the conversation")  # saved as interrupted
            if signals.terminating():
                raise  # SIGTERM: the chat ends too (see run_chat)
            return EXIT_INTERRUPTED
        self.answered = self.answered or bool(outcome.turn.final)
        if outcome.output_errors:
            return _OutputFailed(exit_code_for_output(outcome.output_errors[0]))
        if outcome.error is not None:
            print_error(outcome.error.message)
            return outcome.error.exit_code
        return EXIT_OK

    # ---------------------------------------------------------------- commands

    async def change(self, **change) -> None:
        """Re-resolve the settings with one more change; the flags and changes so far still apply."""
        # The rest of the mix in use is kept: the local stand-in, a resumed session's mix.
        settings = self.source.changed(self.settings, Overrides(**change), keep_mix=True)
        for notice in settings.all_notices():
            warn(notice)
        await self.service.use(settings)
        self.say(f"now using {self.describe()}")

    def new(self) -> None:
        self.service.new_session()  # created with the first turn, so an empty chat leaves no session
        self.say("new conversation")

    # ---------------------------------------------------------------- display

    def describe(self) -> str:
        """The mix in a few words: its name, or its models when flags or commands changed them."""
        mix = self.settings.mix
        if not self.settings.overrides.changes_models():
            return mix.name
        text = mix.describe(short=True)
        return text if len(text) <= 40 else text[:39] + "…"

    def say(self, text: str) -> None:
        # When stdout is a pipe or a file it is for answers only; everything else goes to stderr.
        stream = sys.stdout if not self.piped and sys.stdout.isatty() else sys.stderr
        stream.write(terminal_safe(text) + "\n")  # questions, answers and model names are outside text
        stream.flush()


class SkippedLine(UsageError):
    """A line of piped input that cannot be a question; the chat goes on with the next one."""


class _OutputFailed(int):
    """A turn's output could not be written: the chat stops with this exit code."""

    @property
    def code(self) -> int:
        return int(self)


async def _until_done_or_ctrl_c(task: asyncio.Future) -> None:
    """Wait for the turn; Ctrl-C cancels it (and with it every call in flight) instead of the program."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, task.cancel)
    except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
        previous = None
    try:
        await asyncio.wait([task])
    except asyncio.CancelledError:  # no loop handler: asyncio.run's own Ctrl-C handling cancelled us
        asyncio.current_task().uncancel()
        task.cancel()
        await asyncio.wait([task])
        if signals.terminating():
            raise
    finally:
        if previous is not None:
            loop.remove_signal_handler(signal.SIGINT)
            signal.signal(signal.SIGINT, previous)  # give back asyncio.run's (or prompt_toolkit's) handler


@contextmanager
def _quiet_tty(enabled: bool):
    """While a turn draws, the terminal must not touch the screen behind the renderer's back:
    no echo of keystrokes (a "^C" echoed after a full-width line wraps the cursor and throws the
    redraw off by a line), and no flushing of pending output on Ctrl-C (NOFLSH), which would cut
    an escape sequence or a UTF-8 character in half."""
    saved = None
    if enabled:
        try:
            import termios

            fd = sys.stdin.fileno()
            saved = termios.tcgetattr(fd)
        except Exception:  # noqa: BLE001 - no termios (Windows), not a tty, stdin closed: nothing to quiet
            saved = None
    if saved is None:
        yield
        return
    quiet = list(saved)
    quiet[3] = (quiet[3] & ~termios.ECHO) | termios.NOFLSH  # lflag; ISIG stays on: Ctrl-C is still SIGINT
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


# ---------------------------------------------------------------- entry point and input


def run_chat(source: ConfigSource, settings: Settings, *, continue_last: bool = False, session_name: str | None = None,
             plain: bool = False, role: str | None = None, attachments: list | None = None) -> int:
    service = open_service(settings, continue_last=continue_last, session_name=session_name)
    if role:
        service.role = role
    for notice in service.settings.all_notices():
        warn(notice)
    info = service.resumed
    if info is not None:
        label = f"'{info.name}' (id {info.id})" if info.name else str(info.id)
        warn(f"continuing session {label}, {info.turns} turns"
             + (f", role {service.role}" if service.role else ""))
    elif continue_last:
        warn("no earlier session: starting a new one")
    elif session_name:
        warn(f"new session '{session_name.strip()}'")
    piped = not sys.stdin.isatty()
    chat = Chat(service, source=source, piped=piped, plain=plain)
    chat.attachments = list(attachments or [])
    if info is not None:
        recap(chat)

    try:
        return signals.run_until_stopped(lambda: chat.run(_piped_lines() if piped else _prompter(chat)))
    except signals.Stopped as stopped:  # the turn in flight, if any, was saved as interrupted
        return stopped.code
    finally:
        service.close()


def recap(chat: Chat, lines: int = 6) -> None:
    """The last exchange of a resumed session, shortened: where the conversation stands."""
    turns = [t for t in chat.turns() if t.replaced_by is None]
    if not turns:
        return
    last = turns[-1]
    question = " ".join(last.question.split())
    chat.say(f"last question (turn {last.seq}): {question if len(question) <= 100 else question[:99] + '…'}")
    answer = (last.final or f"({last.status}, no answer)").strip().splitlines()
    shown = answer[:lines] + ([f"… ({len(answer) - lines} more lines: /history, `moa history show`)"]
                              if len(answer) > lines else [])
    chat.say("last answer:\n" + "\n".join("  " + line for line in shown))


def _piped_lines() -> Callable[[], Awaitable[str | None]]:
    """Lines of piped stdin. A daemon thread does the blocking reads, so the loop stays free to
    take Ctrl-C while it waits for a slow producer, and exiting never waits for that thread."""
    queue: asyncio.Queue | None = None

    def pump(loop: asyncio.AbstractEventLoop) -> None:
        try:
            for line in sys.stdin.buffer:
                loop.call_soon_threadsafe(queue.put_nowait, line)
            loop.call_soon_threadsafe(queue.put_nowait, None)
        except RuntimeError:  # the loop closed first: the chat has ended
            pass

    async def read() -> str | None:
        nonlocal queue
        if queue is None:
            queue = asyncio.Queue()
            threading.Thread(target=pump, args=(asyncio.get_running_loop(),), daemon=True).start()
        line = await queue.get()
        try:
            return None if line is None else line.decode("utf-8")
        except UnicodeDecodeError:
            raise SkippedLine("a line of stdin is not UTF-8 text; skipped it") from None

    return read


def _prompter(chat: Chat) -> Callable[[], Awaitable[str | None]]:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import Completer, Completion
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.output import create_output

    class SlashCompleter(Completer):
        def get_completions(self, document, complete_event):
            for option, replaced in slash.completions(chat, document.text_before_cursor):
                yield Completion(option, -replaced)

    keys = KeyBindings()

    @keys.add("enter")  # Enter sends, even though the buffer is multi-line...
    def _send(event):
        event.current_buffer.validate_and_handle()

    @keys.add("escape", "enter")  # ...and Alt-Enter (sent by terminals as Esc, Enter) adds a line.
    def _newline(event):
        event.current_buffer.insert_text("\n")

    try:
        paths.ensure_data_dir()
        history = paths.history_file()
        history.touch(mode=0o600, exist_ok=True)  # questions can be private, like the session file
        lines = FileHistory(str(history))
    except (OSError, UsageError):  # a read-only MOA_HOME: this chat's lines are remembered in memory
        from prompt_toolkit.history import InMemoryHistory

        lines = InMemoryHistory()
    session = PromptSession(
        history=lines, key_bindings=keys, multiline=True, completer=SlashCompleter(),
        complete_while_typing=False, enable_open_in_editor=True,  # Ctrl-X Ctrl-E: edit the input in $EDITOR
        prompt_continuation=lambda width, *_: "." * (width - 1) + " ",
        output=create_output(always_prefer_tty=True),  # `moa chat > file`: the prompt still shows
    )
    chat.say(f"moa chat · {chat.describe()} · /help for commands · Ctrl-D to leave")

    async def read() -> str | None:
        while True:
            try:
                return await session.prompt_async(f"{chat.describe()}> ")
            except KeyboardInterrupt:
                continue  # Ctrl-C at the prompt clears the line
            except EOFError:
                return None

    return read
