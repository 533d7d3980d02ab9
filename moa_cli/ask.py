"""`moa ask`: one question, one turn, through the turn service; logged like every turn."""

from __future__ import annotations

import asyncio

from . import signals
from .config import Settings
from .errors import EXIT_INTERRUPTED, EXIT_OK
from .output import print_error
from .output import exit_code_for_output, warn
from .render import pick_renderer
from .service import open_service


def ask_once(
    settings: Settings,
    text: str,
    *,
    json_output: bool = False,
    plain: bool = False,
    raw: bool = False,
    continue_last: bool = False,
    session_name: str | None = None,
) -> int:
    service = open_service(settings, continue_last=continue_last, session_name=session_name)
    for notice in service.settings.all_notices():
        warn(notice)
    renderer = pick_renderer(json_output=json_output, prices=service.settings.prices, force_plain=plain, raw=raw)

    async def run():
        signals.cancel_on_sigterm(asyncio.current_task())
        try:
            return await service.run(text, listeners=[renderer])
        finally:
            await service.aclose()

    try:
        outcome = asyncio.run(run())
    except KeyboardInterrupt:
        signals.show_cursor()
        print_error("interrupted")  # the partial turn was saved by the service
        return EXIT_INTERRUPTED
    except asyncio.CancelledError:  # SIGTERM cancelled the turn; it was saved as interrupted
        signals.show_cursor()
        print_error("terminated")
        return signals.EXIT_TERMINATED
    finally:
        service.close()
    if outcome.output_errors:
        return exit_code_for_output(outcome.output_errors[0])
    if outcome.error is not None:
        print_error(outcome.error.message)
        return outcome.error.exit_code
    return EXIT_OK
