"""Issue 19, the policy in-process: waiting in line for a shared model is not silence.

A CallableProvider plays a provider whose calls queue (as local samples do for one model): it
says `queued`, waits longer than the idle timeout and the deadline, then says `began` and answers.
"""

from __future__ import annotations

import asyncio

from moa_cli.config.schema import Mix, ModelSettings, RunOptions
from moa_cli.engine import Engine, ProviderPool
from moa_cli.events import CallProgress, Notice
from moa_cli.providers.base import CallableProvider, Chunk

WAIT = 0.6  # in line for longer than the call's timeout (0.2 s) and deadline (0.4 s)


async def queued_then_answers(request):
    if request.model != "first":
        yield Chunk(note="waiting for m (2nd in line)", queued=True)
        await asyncio.sleep(WAIT)
        yield Chunk(note="loading…", began=True)
    yield f"{request.model} answers"


def _run(options: RunOptions):
    events = []
    pool = ProviderPool(lambda name: CallableProvider(queued_then_answers, name))
    mix = Mix("q", ((ModelSettings("mem", "first"), ModelSettings("mem", "second")),), ModelSettings("mem", "agg"))
    turn = asyncio.run(Engine(pool, options, events.append).run_turn(mix, [{"role": "user", "content": "q"}]))
    return turn, events


def test_time_in_line_counts_against_neither_the_idle_timeout_nor_the_deadline():
    turn, events = _run(RunOptions(timeout=0.2, deadline=0.4, retries=0, backoff=0.0))
    assert [r.status for r in turn.rounds[0]] == ["ok", "ok"] and turn.aggregate.status == "ok"
    assert not [e for e in events if isinstance(e, Notice)]  # no retry, no drop
    progress = [e for e in events if isinstance(e, CallProgress)]
    assert any(e.queued for e in progress) and any(e.began for e in progress)


def test_a_queued_reference_is_not_cut_as_a_straggler():
    # Half the round answers at once; the other waits in line well past the stall window.
    from moa_cli import engine

    saved = engine.STALL_MIN
    engine.STALL_MIN = 0.1
    try:
        turn, _ = _run(RunOptions(timeout=5.0, retries=0, backoff=0.0))
    finally:
        engine.STALL_MIN = saved
    assert [r.status for r in turn.rounds[0]] == ["ok", "ok"]


def test_silence_after_generation_began_is_still_a_timeout():
    async def began_then_silent(request):
        yield Chunk(note="loading…", began=True)
        await asyncio.sleep(1.0)
        yield "too late"

    pool = ProviderPool(lambda name: CallableProvider(began_then_silent, name))
    mix = Mix("q", (), ModelSettings("mem", "agg"))
    engine = Engine(pool, RunOptions(timeout=0.2, retries=0, backoff=0.0, fallback=False))
    try:
        asyncio.run(engine.run_turn(mix, [{"role": "user", "content": "q"}]))
    except Exception:  # noqa: BLE001 - TurnFailed: the aggregator failed
        pass
    assert engine.turn.aggregate.status == "failed"
