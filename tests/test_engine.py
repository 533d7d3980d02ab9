"""The engine with in-memory providers: rounds, what each call sees, failures, cut-off."""

from __future__ import annotations

import asyncio

import pytest

from moa_cli.engine import Engine
from moa_cli.providers.pool import ProviderPool
from moa_cli.errors import ProviderError, TurnFailed
from moa_cli.events import CallDelta, CallFinished, CallRestarted, CallStarted, Notice
from moa_cli.config.schema import Mix, ModelSettings, RunOptions
from moa_cli.providers.base import CallableProvider, Chunk, Usage


class Recorder:
    """A scripted in-memory provider that records every request it receives."""

    def __init__(self):
        self.requests = []
        self.fail: dict[str, list[ProviderError]] = {}
        self.delay: dict[str, float] = {}

    async def respond(self, request):
        self.requests.append(request)
        if self.delay.get(request.model):
            await asyncio.sleep(self.delay[request.model])
        errors = self.fail.get(request.model)
        if errors:
            raise errors.pop(0) if len(errors) > 1 else errors[0]
        answers = sum("Answers:" in m["content"] for m in request.messages if m["role"] == "system")
        yield f"{request.model} says "
        yield f"hi (saw {answers})"
        yield Chunk(usage=Usage(10, 3))

    def for_model(self, model):
        return [r for r in self.requests if r.model == model]


def make_mix(refs=("a", "b", "c"), rounds=1, aggregator="agg"):
    layer = tuple(ModelSettings("mem", m) for m in refs)
    return Mix("test", (layer,) * rounds, ModelSettings("mem", aggregator))


def run(mix, recorder, options=RunOptions(backoff=0.0), conversation=None):
    events = []
    pool = ProviderPool(lambda name: CallableProvider(recorder.respond, name))
    engine = Engine(pool, options, events.append)
    conversation = conversation or [{"role": "user", "content": "question?"}]
    turn = asyncio.run(engine.run_turn(mix, conversation))
    return turn, events


def test_one_round_every_reference_answers_then_aggregator_sees_all_answers():
    rec = Recorder()
    turn, events = run(make_mix(), rec)
    assert [r.status for r in turn.rounds[0]] == ["ok", "ok", "ok"]
    agg_request = rec.for_model("agg")[0]
    system = agg_request.messages[0]["content"]
    for model in ("a", "b", "c"):
        assert f"{model} says hi (saw 0)" in system  # whole answers, not characters
    assert "1. " in system and "3. " in system
    assert turn.final == "agg says hi (saw 1)"
    assert turn.total_usage() == Usage(40, 12)
    assert sum(isinstance(e, CallStarted) for e in events) == 4


def test_rounds_two_second_round_sees_first_round_answers_as_whole_texts():
    rec = Recorder()
    turn, _ = run(make_mix(rounds=2), rec)
    assert len(turn.rounds) == 2
    round2 = rec.for_model("a")[1]
    system = round2.messages[0]["content"]
    assert "b says hi (saw 0)" in system
    # The aggregator sees round two's answers, which each saw round one.
    assert "a says hi (saw 1)" in rec.for_model("agg")[0].messages[0]["content"]


def test_zero_rounds_means_the_aggregator_answers_alone():
    rec = Recorder()
    turn, _ = run(make_mix(rounds=0), rec)
    assert turn.rounds == []
    assert [r.model for r in rec.requests] == ["agg"]
    assert rec.requests[0].messages == ({"role": "user", "content": "question?"},)


def test_conversation_is_never_mutated_and_each_call_gets_its_own_copy():
    rec = Recorder()
    conversation = [{"role": "user", "content": "q"}]
    run(make_mix(), rec, conversation=conversation)
    assert conversation == [{"role": "user", "content": "q"}]
    ids = {id(r.messages[-1]) for r in rec.requests}
    assert len(ids) == len(rec.requests)


def test_one_failing_reference_is_dropped_and_the_turn_goes_on():
    rec = Recorder()
    rec.fail["b"] = [ProviderError("boom", status=400)]
    turn, events = run(make_mix(), rec)
    statuses = {r.call.label: r.status for r in turn.rounds[0]}
    assert statuses == {"mem:a": "ok", "mem:b": "failed", "mem:c": "ok"}
    assert "b says" not in rec.for_model("agg")[0].messages[0]["content"]
    assert turn.final.startswith("agg says")
    failed = [e for e in events if isinstance(e, CallFinished) and e.result.status == "failed"]
    assert failed and failed[0].call.label == "mem:b"


def test_every_reference_failing_fails_the_turn_and_keeps_partial_results():
    rec = Recorder()
    for m in "abc":
        rec.fail[m] = [ProviderError(f"{m} down", status=400)]
    with pytest.raises(TurnFailed) as info:
        run(make_mix(), rec)
    assert "round 1" in str(info.value)
    assert len(info.value.turn.rounds[0]) == 3
    assert rec.for_model("agg") == []


def test_retryable_error_is_retried_then_succeeds():
    async def flaky(request, state={"n": 0}):
        if request.model == "a":
            state["n"] += 1
            if state["n"] == 1:
                raise ProviderError("busy", status=429, retryable=True, retry_after=0.0)
        async for piece in Recorder().respond(request):
            yield piece

    pool = ProviderPool(lambda name: CallableProvider(flaky, name))
    events = []
    turn = asyncio.run(Engine(pool, RunOptions(backoff=0.0), events.append).run_turn(make_mix(), [{"role": "user", "content": "q"}]))
    assert turn.rounds[0][0].status == "ok"
    assert any(isinstance(e, Notice) and "retrying" in e.message for e in events)


def test_non_retryable_error_is_not_retried():
    calls = []

    async def auth_fails(request):
        calls.append(request.model)
        if request.model == "a":
            raise ProviderError("HTTP 401", status=401)
        yield "ok"

    pool = ProviderPool(lambda name: CallableProvider(auth_fails, name))
    turn = asyncio.run(Engine(pool, RunOptions(retries=3, backoff=0.0)).run_turn(make_mix(), [{"role": "user", "content": "q"}]))
    assert calls.count("a") == 1
    assert turn.rounds[0][0].status == "failed"


def test_partial_output_then_retry_emits_restart_and_keeps_only_the_new_text():
    state = {"n": 0}

    async def drops_once(request):
        if request.model == "a":
            state["n"] += 1
            yield "partial "
            if state["n"] == 1:
                raise ProviderError("stream dropped", retryable=True, retry_after=0.0)
            yield "complete"
        else:
            yield "fine"

    events = []
    pool = ProviderPool(lambda name: CallableProvider(drops_once, name))
    turn = asyncio.run(Engine(pool, RunOptions(backoff=0.0), events.append).run_turn(make_mix(), [{"role": "user", "content": "q"}]))
    assert turn.rounds[0][0].text == "partial complete"
    assert any(isinstance(e, CallRestarted) and e.call.label == "mem:a" for e in events)


def test_straggler_is_cut_after_deadline_once_enough_answers_are_in():
    rec = Recorder()
    rec.delay["c"] = 30.0
    options = RunOptions(min_proposers=2, proposer_deadline=0.2, backoff=0.0)
    turn, events = run(make_mix(), rec, options)
    statuses = [r.status for r in turn.rounds[0]]
    assert statuses == ["ok", "ok", "cut"]
    assert turn.final.startswith("agg says")
    assert "c says" not in rec.for_model("agg")[0].messages[0]["content"]


def test_aggregator_failure_falls_back_to_best_reference():
    rec = Recorder()
    rec.fail["agg"] = [ProviderError("agg down", status=500)]
    turn, events = run(make_mix(), rec, RunOptions(retries=0))
    assert turn.fallback is not None
    assert turn.final.endswith("says hi (saw 0)")
    assert any(isinstance(e, Notice) and "answering with" in e.message for e in events)


def test_aggregator_failure_without_fallback_fails_and_keeps_answers():
    rec = Recorder()
    rec.fail["agg"] = [ProviderError("agg down", status=500)]
    with pytest.raises(TurnFailed) as info:
        run(make_mix(), rec, RunOptions(retries=0, fallback=False))
    assert [r.status for r in info.value.turn.rounds[0]] == ["ok", "ok", "ok"]


def test_concurrency_one_runs_calls_one_at_a_time():
    active = {"now": 0, "max": 0}

    async def counted(request):
        active["now"] += 1
        active["max"] = max(active["max"], active["now"])
        await asyncio.sleep(0.01)
        active["now"] -= 1
        yield "x"

    pool = ProviderPool(lambda name: CallableProvider(counted, name), concurrency=1)
    asyncio.run(Engine(pool, RunOptions()).run_turn(make_mix(), [{"role": "user", "content": "q"}]))
    assert active["max"] == 1


def test_cancelling_a_turn_cancels_every_call_and_reports_them_cancelled():
    async def slow(request):
        await asyncio.sleep(30)
        yield "never"

    events = []

    async def main():
        pool = ProviderPool(lambda name: CallableProvider(slow, name))
        task = asyncio.create_task(Engine(pool, RunOptions(), events.append).run_turn(make_mix(), [{"role": "user", "content": "q"}]))
        while sum(isinstance(e, CallStarted) for e in events) < 3:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    finished = [e.result.status for e in events if isinstance(e, CallFinished)]
    assert finished == ["cancelled"] * 3


def test_final_deltas_are_emitted_for_the_aggregator():
    rec = Recorder()
    _, events = run(make_mix(), rec)
    text = "".join(e.text for e in events if isinstance(e, CallDelta) and e.call.role == "aggregator")
    assert text == "agg says hi (saw 1)"


def test_usage_is_estimated_and_flagged_when_the_provider_reports_none():
    async def no_usage(request):
        yield "three "
        yield "chunks "
        yield "here"

    pool = ProviderPool(lambda name: CallableProvider(no_usage, name))
    turn = asyncio.run(Engine(pool, RunOptions()).run_turn(make_mix(), [{"role": "user", "content": "q"}]))
    for result in turn.calls():
        assert result.usage_estimated is True
        assert result.usage.completion_tokens == 3
        assert result.usage.prompt_tokens > 0
