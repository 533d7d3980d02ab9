"""A failure is a typed value from the provider to the store (issue 16): every way a call can end
without an answer gives a `Failure` with its kind and status, on the result, on the events, on the
turn's outcome and in the session file. In-process, through the Engine and the TurnService, with
CallableProvider or the real SDK provider against the fake server."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sqlite3

import pytest

from moa_cli import engine as engine_module
from moa_cli.transcript import proposals_markdown
from moa_cli.config import Overrides, resolve
from moa_cli.config.schema import Mix, ModelSettings, RunOptions
from moa_cli.engine import Engine, ProviderPool
from moa_cli.errors import EXIT_AUTH, EXIT_TURN_FAILED, ProviderError, TurnFailed
from moa_cli.events import CallFinished, CallStalled, Notice
from moa_cli.failure import Failure, FailureKind
from moa_cli.providers.base import CallableProvider, ChatRequest
from moa_cli.providers.openai_compat import OpenAICompatProvider
from moa_cli.service import TurnService
from moa_cli.store import MIGRATIONS, Store

Q = [{"role": "user", "content": "q"}]


def run(coro):
    return asyncio.run(coro)


def memory_pool(behaviours: dict) -> ProviderPool:
    """Models by name: each behaviour is an async generator function of the request."""

    async def default(request):
        yield f"{request.model} answer"

    def stream(request):
        return behaviours.get(request.model, default)(request)

    return ProviderPool(lambda name: CallableProvider(stream, name))


def server_pool(url: str) -> ProviderPool:
    return ProviderPool(lambda name: OpenAICompatProvider(name, "sk-test", url, {}))


def mix(*refs: str, agg: str = "agg", provider: str = "mem") -> Mix:
    return Mix("t", (tuple(ModelSettings(provider, m) for m in refs),), ModelSettings(provider, agg))


async def turn_of(pool: ProviderPool, the_mix: Mix, options: RunOptions, events: list | None = None):
    engine = Engine(pool, options, (events.append,) if events is not None else ())
    try:
        return await engine.run_turn(the_mix, Q)
    finally:
        await pool.aclose()


def failure_of(turn, model: str) -> Failure:
    (result,) = [r for r in turn.calls() if r.call.label.endswith(f":{model}")]
    assert result.status != "ok"
    return result.failure


# ------------------------------------------------------------------ kinds from a real HTTP client


@pytest.mark.parametrize("status, retryable", [(500, True), (404, False), (401, False)])
def test_an_http_error_is_kind_http_with_its_status(server, status, retryable):
    server.script("bad", status=status)
    turn = run(turn_of(server_pool(server.v1), mix("ok", "bad", provider="fake"), RunOptions(retries=0)))
    failure = failure_of(turn, "bad")
    assert (failure.kind, failure.status, failure.retryable) == (FailureKind.HTTP, status, retryable)
    assert (failure.provider, failure.model) == ("fake", "bad")
    assert failure.describe(short=True) == f"HTTP {status}"


def test_a_connection_refused_is_kind_connection():
    with socket.socket() as probe:  # a port nothing listens on: bound, then closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = server_pool(f"http://127.0.0.1:{port}/v1")
    with pytest.raises(TurnFailed) as info:  # the only reference failed: so did the turn
        run(turn_of(pool, mix("a", provider="fake"), RunOptions(retries=0)))
    (failure,) = info.value.failures
    assert (failure.kind, failure.status, failure.retryable) == (FailureKind.CONNECTION, None, True)


def test_a_stream_dropped_mid_answer_is_kind_connection(server):
    server.script("drop", reply="one two three four", drop_after=2)
    turn = run(turn_of(server_pool(server.v1), mix("ok", "drop", provider="fake"), RunOptions(retries=0)))
    assert failure_of(turn, "drop").kind is FailureKind.CONNECTION


def test_the_http_clients_read_timeout_is_kind_timeout(server):
    """The SDK's own timeout, at the provider boundary (inside a turn the engine's idle limit,
    armed first with the same number of seconds, says it first)."""
    server.script("slow", delay=5)
    provider = OpenAICompatProvider("fake", "sk-test", server.v1, {})

    async def main():
        try:
            async for _ in provider.stream(ChatRequest(model="slow", messages=tuple(Q), timeout=0.3)):
                pass
        finally:
            await provider.aclose()

    with pytest.raises(ProviderError) as info:
        run(main())
    assert (info.value.kind, info.value.status, info.value.retryable) == (FailureKind.TIMEOUT, None, True)


def test_a_hung_stream_is_kind_idle(server):
    server.script("hung", hang=True)
    turn = run(turn_of(server_pool(server.v1), mix("ok", "hung", provider="fake"),
                       RunOptions(retries=0, timeout=0.3)))
    failure = failure_of(turn, "hung")
    assert (failure.kind, failure.retryable) == (FailureKind.IDLE, True)


# ------------------------------------------------------------------ kinds the engine decides


async def forever(request):
    yield "start "
    await asyncio.sleep(3600)
    yield "never"


async def drip(request):
    while True:
        yield "x "
        await asyncio.sleep(0.02)


async def empty(request):
    yield "  "


async def broken(request):
    raise RuntimeError("a bug in the provider")
    yield ""  # an async generator


def test_the_calls_deadline_is_kind_deadline():
    turn = run(turn_of(memory_pool({"drip": drip}), mix("ok", "drip"), RunOptions(retries=0, deadline=0.3)))
    assert failure_of(turn, "drip").kind is FailureKind.DEADLINE


def test_an_empty_answer_is_kind_empty():
    turn = run(turn_of(memory_pool({"e": empty}), mix("ok", "e"), RunOptions(retries=0)))
    assert failure_of(turn, "e").kind is FailureKind.EMPTY


def test_a_providers_bug_is_kind_internal_and_never_retried():
    calls = []

    async def counted(request):
        calls.append(request)
        async for piece in broken(request):
            yield piece

    turn = run(turn_of(memory_pool({"b": counted}), mix("ok", "b"), RunOptions(retries=3)))
    assert failure_of(turn, "b").kind is FailureKind.INTERNAL and len(calls) == 1


def test_a_provider_errors_kind_is_kept_and_a_retryable_one_retried():
    attempts = []

    async def times_out(request):
        attempts.append(request)
        raise ProviderError("mem:t: timed out", detail="timed out", kind=FailureKind.TIMEOUT, retryable=True)
        yield ""

    events: list = []
    turn = run(turn_of(memory_pool({"t": times_out}), mix("ok", "t"), RunOptions(retries=1, backoff=0.0), events))
    assert failure_of(turn, "t") == Failure(FailureKind.TIMEOUT, "timed out", retryable=True, provider="mem", model="t")
    assert len(attempts) == 2
    assert sum(isinstance(e, Notice) for e in events) == 1  # the retry was announced


def test_a_straggler_past_the_proposer_deadline_is_kind_cut():
    events: list = []
    turn = run(turn_of(memory_pool({"slow": forever}), mix("ok", "slow"),
                       RunOptions(proposer_deadline=0.2), events))
    (result,) = [r for r in turn.rounds[0] if r.call.label == "mem:slow"]
    assert (result.status, result.failure.kind) == ("cut", FailureKind.CUT)
    finished = [e for e in events if isinstance(e, CallFinished) and e.call == result.call]
    assert finished[0].result.failure.kind is FailureKind.CUT  # listeners get the same value
    assert turn.final == "agg answer"


def test_a_silent_reference_is_reported_stalled_before_the_engine_cuts_it(monkeypatch):
    """Without a fixed deadline: the engine's own stall rule decides, and says so in advance."""
    monkeypatch.setattr(engine_module, "STALL_MIN", 0.6)
    monkeypatch.setattr(engine_module, "STALL_WARN", 0.1)
    events: list = []
    turn = run(turn_of(memory_pool({"slow": forever}), mix("a", "b", "slow"), RunOptions(), events))
    slow = turn.rounds[0][2]
    assert slow.failure.kind is FailureKind.CUT
    stalled = [e for e in events if isinstance(e, CallStalled)]
    assert [e.call for e in stalled] == [slow.call]  # once per silence, for the silent one only
    assert stalled[0].silent_for >= 0.1 and 0 < stalled[0].cut_in <= 0.6
    cut = next(i for i, e in enumerate(events) if isinstance(e, CallFinished) and e.call == slow.call)
    assert events.index(stalled[0]) < cut


def test_a_streaming_reference_is_never_reported_stalled(monkeypatch):
    monkeypatch.setattr(engine_module, "STALL_WARN", 0.1)

    async def steady(request):
        for _ in range(15):
            await asyncio.sleep(0.03)
            yield "x "

    events: list = []
    turn = run(turn_of(memory_pool({"s": steady}), mix("a", "s"), RunOptions(), events))
    assert [r.status for r in turn.rounds[0]] == ["ok", "ok"]
    assert not any(isinstance(e, CallStalled) for e in events)


def test_a_cancelled_turn_leaves_kind_cancelled():
    events: list = []
    engine = Engine(memory_pool({"slow": forever}), RunOptions(), (events.append,))

    async def main():
        task = asyncio.create_task(engine.run_turn(mix("slow"), Q))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())
    (result,) = engine.turn.rounds[0]
    assert (result.status, result.failure.kind) == ("cancelled", FailureKind.CANCELLED)


# ------------------------------------------------------------------ the turn's outcome, --json


def settings_for(*refs: str):
    return resolve(Overrides(references=tuple(f"openai:{r}" for r in refs), aggregator="openai:agg",
                             retries=0, log=False), {"OPENAI_API_KEY": "k"}, {})


def failing_pool(status_of: dict[str, int]) -> ProviderPool:
    async def answer(request):
        if request.model in status_of:
            raise ProviderError(f"HTTP {status_of[request.model]}", status=status_of[request.model])
        yield f"{request.model} answer"

    return ProviderPool(lambda name: CallableProvider(answer, name))


@pytest.mark.parametrize("statuses, code", [((401, 403), EXIT_AUTH), ((401, 500), EXIT_TURN_FAILED)])
def test_a_failed_turns_outcome_carries_the_failures_and_the_exit_code_follows_their_status(statuses, code):
    pool = failing_pool(dict(zip(("m1", "m2"), statuses)))
    outcome = run(TurnService(settings_for("m1", "m2"), pool=pool).run("q"))
    assert outcome.status == "failed" and outcome.error.exit_code == code
    assert [(f.kind, f.status) for f in outcome.failures] == [(FailureKind.HTTP, s) for s in statuses]


def test_json_gives_each_calls_failure_kind_and_status():
    pool = failing_pool({"m2": 503})
    outcome = run(TurnService(settings_for("m1", "m2"), pool=pool).run("q"))
    data = json.loads(json.dumps(outcome.turn.to_dict()))
    m1, m2 = data["rounds"][0]
    assert m1["failure"] is None and m1["error"] is None
    assert m2["failure"] == {"kind": "http", "status": 503, "retryable": False}


# ------------------------------------------------------------------ the session file


def stored_settings(*refs: str):
    return resolve(Overrides(references=tuple(f"openai:{r}" for r in refs), aggregator="openai:agg", retries=0),
                   {"OPENAI_API_KEY": "k"}, {})


def test_kind_and_status_are_saved_and_read_back(tmp_path):
    store = Store.open(tmp_path / "sessions.db")
    try:
        service = TurnService(stored_settings("m1", "m2", "m3"), store=store, pool=failing_pool({"m2": 500}))
        outcome = run(service.run("q"))
        assert outcome.ok
        (turn,) = store.turns(outcome.session_id)
        kinds = {p["model"]: (p["status"], p["failure_kind"], p["failure_status"]) for p in turn.proposals}
        assert kinds == {"openai:m1": ("ok", None, None), "openai:m2": ("failed", "http", 500),
                         "openai:m3": ("ok", None, None), "openai:agg": ("ok", None, None)}
        exported = json.loads(store.export_json(outcome.session_id))
        (m2,) = [p for p in exported["turns"][0]["proposals"] if p["model"] == "openai:m2"]
        assert (m2["failure_kind"], m2["failure_status"]) == ("http", 500)
        assert "(http 500)" in proposals_markdown(turn)
    finally:
        store.close()


def test_an_interrupted_turn_saves_its_calls_as_cancelled(tmp_path):
    store = Store.open(tmp_path / "sessions.db")
    try:
        pool = memory_pool({"m1": forever})
        service = TurnService(stored_settings("m1"), store=store, pool=pool)

        async def main():
            task = asyncio.create_task(service.run("q"))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        run(main())
        (turn,) = store.turns(service.session_id)
        assert turn.status == "interrupted"
        assert [(p["status"], p["failure_kind"]) for p in turn.proposals] == [("cancelled", "cancelled")]
    finally:
        store.close()


def test_migration_5_adds_kind_and_status_to_an_older_database(tmp_path):
    path = tmp_path / "sessions.db"
    old = sqlite3.connect(path)
    for step in MIGRATIONS[:4]:
        old.executescript(step)
    old.execute("PRAGMA user_version = 4")
    old.execute("INSERT INTO sessions (id, name, created, updated, mix) VALUES (1, 'kept', 1.0, 1.0, 'm')")
    old.execute("INSERT INTO turns (id, session_id, seq, created, question, final, status, mix)"
                " VALUES (1, 1, 1, 1.0, 'q', 'a', 'ok', 'm')")
    old.execute("INSERT INTO proposals (turn_id, round, idx, role, model, status, error)"
                " VALUES (1, 1, 0, 'reference', 'openai:m1', 'failed', 'openai:m1: HTTP 500 (old)')")
    old.commit()
    old.close()
    with Store.open(path) as store:
        assert store._version() == len(MIGRATIONS) >= 5  # later migrations (6: search) apply too
        (turn,) = store.turns(1)
        (proposal,) = turn.proposals
        assert (proposal["failure_kind"], proposal["failure_status"]) == (None, None)  # unknown, not guessed
        assert proposal["error"] == "openai:m1: HTTP 500 (old)"
        assert "(http" not in proposals_markdown(turn)


# ------------------------------------------------------------------ what the panels show


def test_a_panel_shows_the_engines_stall_until_the_call_speaks_and_its_failure_by_kind():
    from rich.console import Console

    from moa_cli.events import Call, CallDelta, CallResult, CallStarted
    from moa_cli.render.live import LiveRenderer
    from moa_cli.render.panels import short_reason

    renderer = LiveRenderer({}, console=Console(file=io.StringIO(), width=100, height=30))
    call = Call("reference", 1, 0, "openai:m1")
    renderer(CallStarted(call))
    panel = renderer._panels[call]
    assert panel.cut_at is None
    renderer(CallStalled(call, silent_for=5.0, cut_in=10.0))
    assert panel.cut_at is not None  # shown as a countdown to the engine's cut
    renderer(CallDelta(call, "back "))
    assert panel.cut_at is None  # it spoke again: no longer at risk
    renderer.close()
    failure = Failure(FailureKind.HTTP, "HTTP 503 (overloaded, see https://status)", status=503)
    assert short_reason(CallResult(call, "failed", failure=failure)) == "HTTP 503"
    cut = Failure(FailureKind.CUT, "reworded freely: the panel never reads it")
    assert short_reason(CallResult(call, "cut", failure=cut)) == "cut: too slow"
