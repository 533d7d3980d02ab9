"""`moa chat`: the interactive multi-turn REPL, and the same loop fed line by line from a pipe.

One asyncio loop runs the whole conversation. prompt_toolkit owns the terminal only while it
reads a line (`prompt_async`), the renderer only while a turn runs, so they never draw over each
other. Every turn is saved the moment it ends, and the next turn's context is read back from the
store, so what the models see is always what the session file says.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict
from typing import Awaitable, Callable

from . import paths, slash
from .config import Overrides, Settings
from .errors import EXIT_INTERRUPTED, EXIT_OK, MoaError, UsageError, print_error
from .events import CallFinished, CallResult, TurnResult
from .frontends import warn
from .render import pick_renderer
from .render.summary import turn_cost
from .store import Store, TurnRecord
from .turn import open_pool, run_turn


class Chat:
    """One conversation: the settings in use, its session, and one provider pool for all turns."""

    def __init__(self, settings: Settings, store: Store, session_id: int | None, piped: bool, plain: bool):
        self.settings, self.store, self.session_id, self.piped = settings, store, session_id, piped
        self.plain = plain or piped
        self.show_proposers = True
        self.pool = None

    # ---------------------------------------------------------------- the loop

    async def run(self, read: Callable[[], Awaitable[str | None]]) -> int:
        code = EXIT_OK
        try:
            while (text := await read()) is not None:
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
                if outcome == EXIT_INTERRUPTED and self.piped:
                    return EXIT_INTERRUPTED  # Ctrl-C in a script stops the script
                code = outcome or code
        finally:
            if self.pool is not None:
                await self.pool.aclose()
            self.store.close()
        return code if self.piped else EXIT_OK  # interactively, errors were shown as they came

    # ---------------------------------------------------------------- one turn

    async def ask(self, question: str, replaces: TurnRecord | None = None) -> int:
        if self.session_id is None:
            self.session_id = self.store.create_session(mix=self.settings.mix.name)
        history = self.store.context_messages(self.session_id) if self.settings.options.multi_turn else []
        if replaces is not None:
            history = history[:-2]  # the answer being regenerated is the newest exchange
        renderer = pick_renderer(json_output=False, prices=self.settings.prices,
                                 show_proposers=self.show_proposers, force_plain=self.plain)
        finished: list[CallResult] = []  # kept so an interrupted turn still saves what did arrive

        def listen(event) -> None:
            if isinstance(event, CallFinished):
                finished.append(event.result)
            renderer(event)

        started = time.time()
        try:
            if self.pool is None:
                self.pool = open_pool(self.settings)  # fails here, before any call, on a missing key
            conversation = history + [{"role": "user", "content": question}]
            task = asyncio.ensure_future(run_turn(self.settings, self.pool, conversation, listen))
            with _quiet_tty(enabled=not self.piped):
                await _until_done_or_ctrl_c(task)
            result = task.result()
        except asyncio.CancelledError:
            renderer.close()
            self._save(question, _partial(self.settings.mix.name, started, finished), "interrupted", "interrupted")
            warn("interrupted: this turn is not part of the conversation")
            return EXIT_INTERRUPTED
        except MoaError as error:
            renderer.close()
            partial = getattr(error, "turn", None) or _partial(self.settings.mix.name, started, finished)
            self._save(question, partial, "failed", error.message)
            print_error(error.message)
            return error.exit_code
        renderer.finish(result)
        self._save(question, result, "ok", replaces=replaces.id if replaces else None)
        return EXIT_OK

    def _save(self, question: str, result: TurnResult, status: str, error: str | None = None, replaces=None):
        dollars, unknown = turn_cost(result, self.settings.prices)
        self.store.add_turn(self.session_id, question, result, status=status, error=error,
                            cost=None if unknown else dollars, replaces=replaces,
                            mix_json=json.dumps(asdict(self.settings.mix)))

    # ---------------------------------------------------------------- commands

    async def change(self, **change) -> None:
        """Re-resolve the settings with one more change; the flags and changes so far still apply."""
        old = self.settings
        self.settings = old.with_overrides(Overrides(**change))
        for notice in self.settings.notices:
            warn(notice)
        if self.pool is not None and (old.mix.providers() != self.settings.mix.providers()
                                      or old.options.concurrency != self.settings.options.concurrency):
            await self.pool.aclose()  # the next turn opens one for the new mix (and checks its keys)
            self.pool = None
        self.say(f"now using {self.describe()}")

    def new(self) -> None:
        self.session_id = None  # created with the first turn, so an empty chat leaves no session
        self.say("new conversation")

    # ---------------------------------------------------------------- display

    def describe(self) -> str:
        """The mix in a few words: its name, or its models when flags or commands changed them."""
        mix, flags = self.settings.mix, self.settings.overrides
        if not (flags.references or flags.aggregator or flags.rounds is not None):
            return mix.name
        refs = ",".join(dict.fromkeys(_model_name(m.label) for m in mix.layers[0])) if mix.layers else ""
        text = f"{refs}→{_model_name(mix.aggregator.label)}" if refs else _model_name(mix.aggregator.label)
        text += f" ×{mix.rounds}" if mix.rounds > 1 else ""
        return text if len(text) <= 40 else text[:39] + "…"

    def say(self, text: str) -> None:
        # When stdout is a pipe or a file it is for answers only; everything else goes to stderr.
        stream = sys.stdout if not self.piped and sys.stdout.isatty() else sys.stderr
        stream.write(text + "\n")
        stream.flush()


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


def _partial(mix: str, started: float, finished: list[CallResult]) -> TurnResult:
    turn = TurnResult(mix=mix, started=started, elapsed=time.time() - started)
    for result in finished:
        if result.call.role == "aggregator":
            turn.aggregate = result
        else:
            turn.rounds += [[] for _ in range(result.call.round - len(turn.rounds))]
            turn.rounds[result.call.round - 1].append(result)
    return turn


def _model_name(label: str) -> str:
    return label.split(":", 1)[-1].rsplit("/", 1)[-1]


# ---------------------------------------------------------------- entry point and input


def run_chat(settings: Settings, *, continue_last: bool = False, session_name: str | None = None,
             plain: bool = False) -> int:
    for notice in settings.notices:
        warn(notice)
    store = Store.open()
    try:
        session_id = _pick_session(store, settings, continue_last, session_name)
    except BaseException:
        store.close()
        raise
    piped = not sys.stdin.isatty()
    chat = Chat(settings, store, session_id, piped, plain)
    try:
        return asyncio.run(chat.run(_piped_lines() if piped else _prompter(chat)))
    except KeyboardInterrupt:  # Ctrl-C outside a turn, e.g. while a pipe is slow to send the next line
        print_error("interrupted")
        return EXIT_INTERRUPTED


def _pick_session(store: Store, settings: Settings, continue_last: bool, name: str | None) -> int | None:
    info = store.get_or_create_named(name, settings.mix.name) if name else store.last_session() if continue_last else None
    if info is None:
        if continue_last:
            warn("no earlier session: starting a new one")
        return None  # created with the first turn
    label = f"'{info.name}' (id {info.id})" if info.name else str(info.id)
    warn(f"continuing session {label}, {info.turns} turns" if info.turns else f"new session {label}")
    return info.id


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
            raise UsageError("a line of stdin is not UTF-8 text; skipped it") from None

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

    paths.ensure_data_dir()
    history = paths.history_file()
    history.touch(mode=0o600, exist_ok=True)  # questions can be private, like the session file
    session = PromptSession(
        history=FileHistory(str(history)), key_bindings=keys, multiline=True, completer=SlashCompleter(),
        complete_while_typing=False, prompt_continuation=lambda width, *_: "." * (width - 1) + " ",
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
