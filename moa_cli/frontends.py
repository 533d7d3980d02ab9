"""The one-shot frontend (`moa ask`) and pieces the REPL shares with it."""

from __future__ import annotations

import asyncio
import sys

from .config import Settings
from .errors import EXIT_INTERRUPTED, EXIT_OK, MoaError
from .events import TurnResult
from .render import pick_renderer
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
    turn: TurnResult | None = None
    try:
        turn = asyncio.run(_run(settings, conversation, renderer))
    except KeyboardInterrupt:
        renderer.close()
        if store is not None:
            store.add_turn(session.id, text, None, status="interrupted", error="interrupted")
        warn("error: interrupted")
        return EXIT_INTERRUPTED
    except MoaError as error:
        renderer.close()
        if store is not None:
            store.add_turn(session.id, text, None, status="failed", error=str(error))
        raise
    renderer.finish(turn)
    if store is not None:
        from .render.summary import turn_cost

        dollars, unknown = turn_cost(turn, settings.prices)
        store.add_turn(session.id, text, turn, status="ok", cost=None if unknown else dollars)
    return EXIT_OK


async def _run(settings: Settings, conversation: list[dict], listener) -> TurnResult:
    pool = open_pool(settings)
    try:
        return await run_turn(settings, pool, conversation, listener)
    finally:
        await pool.aclose()
