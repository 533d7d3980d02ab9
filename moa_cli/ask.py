"""`moa ask`: one question, one turn, through the turn service; logged like every turn."""

from __future__ import annotations

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

    async def run():
        try:
            return await service.run(text, listeners=[renderer])
        finally:
            await service.aclose()

    try:
        outcome = signals.run_until_stopped(run)
    except signals.Stopped as stopped:  # the partial turn was saved as interrupted by the service
        return stopped.code
    finally:
        service.close()
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
