"""`moa ask`: one question, one turn, through the turn service; logged like every turn."""

from __future__ import annotations

import asyncio
import errno
import os
import select
import stat
import sys

from . import signals
from .config import Settings
from .errors import EXIT_OK
from .output import print_error
from .output import exit_code_for_output, warn
from .render import pick_renderer
from .service import open_service

EXIT_NO_CODE = 1  # -x on an answer without a fenced code block: nothing to print, said so


def ask_once(
    settings: Settings,
    text: str,
    *,
    json_output: bool = False,
    plain: bool = False,
    raw: bool = False,
    continue_last: bool = False,
    session_name: str | None = None,
    role: str | None = None,
    extract: str | None = None,
) -> int:
    """`extract` ("all" or "last"): print only the answer's fenced code blocks (see extract_code.py)."""
    service = open_service(settings, continue_last=continue_last, session_name=session_name)
    if role:
        service.role = role
    for notice in service.settings.all_notices():
        warn(notice)
    if extract:
        from .extract_code import QuietRenderer

        renderer = QuietRenderer()
    else:
        renderer = pick_renderer(json_output=json_output, prices=service.settings.prices, force_plain=plain, raw=raw)

    reader = ReaderWatch()

    async def run():
        task = asyncio.current_task()
        watch = asyncio.ensure_future(reader.watch(task))
        try:
            return await service.run(text, listeners=[reader.guard(renderer, task)])
        except asyncio.CancelledError:
            if reader.gone and not signals.terminating():
                task.uncancel()
                return None  # `moa ask q | head -3`: the service saved what was answered
            raise
        finally:
            watch.cancel()
            await service.aclose()

    try:
        outcome = signals.run_until_stopped(run)
    except signals.Stopped as stopped:  # the partial turn was saved as interrupted by the service
        return stopped.code
    finally:
        service.close()
    if outcome is None:  # nobody reads any more: no error, as for `moa mixes | head -1`
        return exit_code_for_output(BrokenPipeError(errno.EPIPE, "the reader of stdout left"))
    if outcome.output_errors:
        return exit_code_for_output(outcome.output_errors[0])
    if outcome.error is not None:
        print_error(outcome.error.message)
        return outcome.error.exit_code
    if extract:
        from .extract_code import extracted, write_code

        code = extracted(outcome.turn.final, extract)
        if code is None:
            print_error("the answer has no fenced code block (the turn is saved: `moa history show`)")
            return EXIT_NO_CODE
        try:
            write_code(code, raw)
        except OSError as error:
            return exit_code_for_output(error)
    return EXIT_OK


class ReaderWatch:
    """Notices that stdout's reader went away (`moa ask q | head -3`) and cancels the turn at
    once, so no model goes on streaming (and being paid for) an answer nobody reads. Noticed
    two ways: a write fails with EPIPE, or, between writes, the pipe reports its reader gone."""

    POLL_EVERY = 0.1  # seconds

    def __init__(self):
        self.gone = False

    def guard(self, listener, task: asyncio.Task):
        from .output import is_closed_reader

        def guarded(event):
            try:
                listener(event)
            except Exception as error:
                if is_closed_reader(error):
                    self._leave(task)
                raise

        for hook in ("finish", "close"):
            if hasattr(listener, hook):
                setattr(guarded, hook, getattr(listener, hook))
        return guarded

    async def watch(self, task: asyncio.Task) -> None:
        try:
            fd = sys.stdout.fileno()
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                return  # a terminal or a file: its reader cannot leave
            poller = select.poll()
            poller.register(fd, select.POLLERR)  # the write end of a pipe reports POLLERR once its reader closed
        except (OSError, ValueError, AttributeError):
            return
        while not self.gone:
            if any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0)):
                self._leave(task)
                return
            await asyncio.sleep(self.POLL_EVERY)

    def _leave(self, task: asyncio.Task) -> None:
        if not self.gone:
            self.gone = True
            task.cancel()
