"""Running a turn in-process, the way policy is tested: `TurnService` with the real providers,
against the tests' fake server (tests/fakeserver.py) on 127.0.0.1, with no `moa` subprocess.

    outcome = run_turn(server, Overrides(...), config={...})   # what `moa ask` would run

The settings come from the same resolver `moa` uses (flags as an Overrides, the config file as
a dict), so a test of a policy here tests what every frontend runs.
"""

from __future__ import annotations

import asyncio
import gc
import warnings

from moa_cli.config import Overrides, resolve
from moa_cli.service import TurnOutcome, TurnService
from moa_cli.store import Store


def fake_env(server) -> dict[str, str]:
    """Keys and base URLs that point the openai and together providers at the fake server."""
    return {"OPENAI_API_KEY": "sk-test-openai-0123456789", "OPENAI_BASE_URL": server.v1,
            "TOGETHER_API_KEY": "tgp-test-together-0123456789", "TOGETHER_BASE_URL": server.url}


def run_turn(server, overrides: Overrides = Overrides(), config: dict | None = None, *, question: str = "q",
             history: list[dict] | None = None, store: Store | None = None, listeners=()) -> TurnOutcome:
    """One turn, as `moa ask` with these flags and this config file would run it. A client or
    socket left open shows up as a ResourceWarning, which fails the test. `listeners` hear the
    turn's events (e.g. `events.append`)."""
    settings = resolve(overrides, fake_env(server), config or {})

    async def main():
        service = TurnService(settings, store=store)
        try:
            return await service.run(question, history=history or [], listeners=listeners)
        finally:
            await service.aclose()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        outcome = asyncio.run(main())
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, leaks
    return outcome
