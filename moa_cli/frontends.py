"""The one-shot frontend (`moa ask`) and pieces the REPL shares with it."""

from __future__ import annotations

import asyncio
import sys

from .config import Settings
from .errors import EXIT_INTERRUPTED, EXIT_OK, MoaError, print_error
from .events import TurnResult
from .render import pick_renderer
from .render.summary import turn_cost
from .turn import open_pool, run_turn


def warn(message: str) -> None:
    sys.stderr.write(f"moa: {message}\n")
    sys.stderr.flush()


def ask_once(
    settings: Settings,
    text: str,
    *,
    json_output: bool = False,
    plain: bool = False,
    continue_last: bool = False,
    session_name: str | None = None,
) -> int:
    for notice in settings.notices:
        warn(notice)
    store = session = None
    history: list[dict] = []
    if continue_last or session_name:
        from .store import Store

        store = Store.open()
        session = (
            store.get_or_create_named(session_name, settings.mix.name)
            if session_name
            else store.last_session() or store.find_session(str(store.create_session(mix=settings.mix.name)))
        )
        history = store.context_messages(session.id)
    renderer = pick_renderer(json_output=json_output, prices=settings.prices, force_plain=plain)
    conversation = history + [{"role": "user", "content": text}]

    def save(turn: TurnResult | None, status: str, error: str | None = None) -> None:
        if store is not None:
            dollars, unknown = turn_cost(turn, settings.prices) if turn else (0.0, [])
            store.add_turn(session.id, text, turn, status=status, error=error,
                           cost=None if unknown or turn is None else dollars)

    try:
        try:
            turn = asyncio.run(_run(settings, conversation, renderer))
        except KeyboardInterrupt:
            renderer.close()
            save(None, "interrupted", "interrupted")
            print_error("interrupted")
            return EXIT_INTERRUPTED
        except MoaError as error:
            renderer.close()
            partial = getattr(error, "turn", None)  # the answers that did arrive are kept
            save(partial, "failed", str(error))
            if json_output and partial is not None:
                renderer.finish(partial, error=str(error))
            raise
        renderer.finish(turn)
        save(turn, "ok")
    finally:
        if store is not None:
            store.close()
    return EXIT_OK


async def _run(settings: Settings, conversation: list[dict], listener) -> TurnResult:
    pool = open_pool(settings)
    try:
        return await run_turn(settings, pool, conversation, listener)
    finally:
        await pool.aclose()
