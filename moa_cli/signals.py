"""SIGTERM ends a turn the way Ctrl-C does: the turn is cancelled, its partial answers are saved,
the renderer stops drawing (the cursor shows again) and the terminal gets its echo back, because
every one of those happens on the normal cancellation path. Only then does moa exit, with 143.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Awaitable, Callable, TypeVar

EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM killed

T = TypeVar("T")


class Stopped(Exception):
    """Ctrl-C or SIGTERM ended a frontend's event loop; it was said on stderr. Exit with `code`."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def run_until_stopped(main: Callable[[], Awaitable[T]]) -> T:
    """`asyncio.run(main())` for a frontend (ask, chat): SIGTERM cancels it the way Ctrl-C does,
    so whatever was in flight is saved on the normal cancellation path; then the cursor shows
    again, one line says why, and `Stopped` carries the exit code (130 or 143)."""
    from .errors import EXIT_INTERRUPTED
    from .output import print_error

    async def guarded() -> T:
        cancel_on_sigterm(asyncio.current_task())
        return await main()

    try:
        return asyncio.run(guarded())
    except KeyboardInterrupt:  # Ctrl-C outside a turn's own handling (e.g. waiting for piped input)
        show_cursor()
        print_error("interrupted")
        raise Stopped(EXIT_INTERRUPTED) from None
    except asyncio.CancelledError:  # SIGTERM cancelled the main task
        show_cursor()
        print_error("terminated")
        raise Stopped(EXIT_TERMINATED) from None

_terminated = False


def terminating() -> bool:
    """Whether a SIGTERM asked this process to end."""
    return _terminated


def cancel_on_sigterm(task: asyncio.Task) -> None:
    """From now on, SIGTERM cancels `task` (the frontend's main task) instead of killing moa
    with the terminal still in the renderer's or the prompt's state."""

    def terminate() -> None:
        global _terminated
        _terminated = True
        task.cancel()

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
    except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
        pass


def show_cursor() -> None:
    """Last words after an interruption: should anything have hidden the cursor, show it."""
    try:
        if sys.stdout.isatty():
            sys.stdout.write("\x1b[?25h")
            sys.stdout.flush()
    except (OSError, ValueError, AttributeError):
        pass
