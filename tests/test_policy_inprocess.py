"""Turn policy against the fake server, in-process: `TurnService` with the real OpenAI-compatible
provider on 127.0.0.1, no `moa` subprocess. Retries and Retry-After, idle limits and deadlines,
fallback, empty and redirected answers, absurd usage, and the failure policy of a round. Each was
a `moa ask` subprocess test (test_hardening.py, test_ask.py) asserting on stderr wording; here
each asserts on the outcome, `Failure.kind`/status, the exit code a frontend would use, the
requests the server saw and the saved turn. The frontends' own thin layer stays in test_ask.py."""

from __future__ import annotations

import pytest

from inprocess import run_turn

from moa_cli.config import Overrides
from moa_cli.errors import EXIT_TURN_FAILED
from moa_cli.failure import FailureKind
from moa_cli.service import TurnOutcome
from moa_cli.store import Store


def turn(server, *refs: str, agg: str = "agg", store: Store | None = None, question: str = "q",
         **options) -> TurnOutcome:
    """One turn of `refs` -> `agg` (the aggregator alone when no refs) on the fake server, with
    `options` as the flags of the same names (retries=0, deadline=2, ...)."""
    options.setdefault("rounds", None if refs else 0)
    overrides = Overrides(references=tuple(f"openai:{r}" for r in refs) or None, aggregator=f"openai:{agg}",
                          **options)
    return run_turn(server, overrides, store=store, question=question)


def failure(outcome: TurnOutcome, model: str):
    (result,) = [r for r in outcome.turn.calls() if r.call.label == f"openai:{model}"]
    assert result.status != "ok", result
    return result.failure


# ---------------------------------------------------------------- bounded waits


def test_retry_after_past_the_deadline_fails_at_once_instead_of_waiting(server):
    server.script("m", errors=[{"status": 429, "retry_after": 100000}])
    outcome = turn(server, agg="m", deadline=5.0)
    assert not outcome.ok and outcome.error.exit_code == EXIT_TURN_FAILED
    (why,) = outcome.failures
    assert (why.kind, why.status) == (FailureKind.HTTP, 429)
    assert len(server.requests("m")) == 1  # no retry: waiting would pass the deadline


@pytest.mark.parametrize("value", ["inf", "nan", "-5", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_a_nonsense_retry_after_is_ignored(server, value):
    server.script("m", reply="fine", errors=[{"status": 503, "retry_after": value}])
    outcome = turn(server, agg="m")
    assert outcome.ok and outcome.turn.final == "fine"
    assert len(server.requests("m")) == 2


def test_keepalive_comments_are_not_progress(server):
    """A server sending `: keepalive` forever, and empty deltas, is ended by the idle limit."""
    server.script("m", raw=['data: {"choices":[{"delta":{"content":""}}]}\n\n'], raw_forever=": keepalive\n\n",
                  raw_delay=0.1)
    outcome = turn(server, agg="m", timeout=1.0, retries=0)
    assert not outcome.ok
    assert [f.kind for f in outcome.failures] == [FailureKind.IDLE]


def test_a_stream_that_drips_forever_is_ended_by_the_deadline(server):
    """Real tokens, one at a time, forever: every read succeeds, so only the total deadline ends
    it. The aggregator is covered: with fallback the reference answer stands in."""
    server.script("drip", raw_forever='data: {"choices":[{"delta":{"content":"x"}}]}\n\n', raw_delay=0.05)
    server.script("ref", reply="the reference answer")
    covered = turn(server, "ref", agg="drip", deadline=2.0)
    assert covered.ok and covered.turn.final == "the reference answer"
    assert failure(covered, "drip").kind is FailureKind.DEADLINE
    alone = turn(server, agg="drip", deadline=2.0)
    assert not alone.ok and [f.kind for f in alone.failures] == [FailureKind.DEADLINE]


# ---------------------------------------------------------------- numbers and odd answers


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": 10**30, "completion_tokens": 3}, {"prompt_tokens": "many", "completion_tokens": -4},
    {"prompt_tokens": 1e308, "completion_tokens": None},
])
def test_absurd_usage_numbers_never_lose_the_turn(server, tmp_path, usage):
    server.script("m", reply="kept", usage=usage)
    store = Store.open(tmp_path / "sessions.db")
    try:
        outcome = turn(server, agg="m", store=store)
        assert outcome.ok
        assert [t.final for t in store.turns(outcome.session_id)] == ["kept"]
    finally:
        store.close()


def test_a_reference_answer_containing_a_placeholder_is_left_alone(server):
    server.script("ref", reply='print(f"{question} and {answers}")')
    server.script("agg", reply="done")
    assert turn(server, "ref", question="the user question").ok
    system = server.requests("agg")[0]["body"]["messages"][0]["content"]
    assert 'print(f"{question} and {answers}")' in system


def test_an_empty_aggregator_answer_is_a_failure_and_the_fallback_answers(server):
    server.script("ref", reply="the reference answer")
    server.script("agg", reply="")
    covered = turn(server, "ref")
    assert covered.ok and covered.turn.final == "the reference answer"
    assert failure(covered, "agg").kind is FailureKind.EMPTY
    alone = turn(server)
    assert not alone.ok and [f.kind for f in alone.failures] == [FailureKind.EMPTY]


def test_a_redirect_is_reported_as_a_redirect(server):
    server.script("m", response={"status": 302, "headers": {"Location": server.url + "/elsewhere"}})
    outcome = turn(server, agg="m")
    assert not outcome.ok
    (why,) = outcome.failures  # the SDK followed it; the address it led to failed (404 there)
    assert (why.kind, why.status) == (FailureKind.HTTP, 404)
    assert "redirected" in why.detail  # said as a redirect, not as an unknown model


# ---------------------------------------------------------------- a round's failure policy


def test_one_failing_reference_is_dropped_and_the_turn_goes_on(server):
    server.script("m2", status=500)
    outcome = turn(server, "m1", "m2", retries=0)
    assert outcome.ok
    assert (failure(outcome, "m2").kind, failure(outcome, "m2").status) == (FailureKind.HTTP, 500)
    system = server.requests("agg")[0]["body"]["messages"][0]["content"]
    assert "m1 answer" in system and "m2" not in system


def test_all_references_failing_fails_the_turn_before_the_aggregator(server):
    server.script("m1", status=500)
    server.script("m2", status=503)
    outcome = turn(server, "m1", "m2", retries=0)
    assert not outcome.ok and outcome.error.exit_code == EXIT_TURN_FAILED
    assert sorted((f.model, f.status) for f in outcome.failures) == [("m1", 500), ("m2", 503)]
    assert not server.requests("agg")


def test_aggregator_failure_without_fallback_fails_the_turn(server):
    server.script("agg", status=500)
    outcome = turn(server, "m1", retries=0, fallback=False)
    assert not outcome.ok and outcome.error.exit_code == EXIT_TURN_FAILED
    assert [(f.kind, f.model) for f in outcome.failures] == [(FailureKind.HTTP, "agg")]
    assert outcome.turn.final in ("", None)


# ---------------------------------------------------------------- rounds and the together SDK path (from test_ask.py)


def test_the_together_sdk_path_with_bare_model_ids(server):
    overrides = Overrides(references=("meta-llama/Llama-3.3-70B-Instruct-Turbo", "together:q"), aggregator="agg")
    outcome = run_turn(server, overrides, question="hi")
    assert outcome.ok and outcome.turn.final == "agg answer 1: hi"
    assert {r["path"] for r in server.requests()} == {"/v1/chat/completions"}
    assert {r["model"] for r in server.requests()} == {"meta-llama/Llama-3.3-70B-Instruct-Turbo", "q", "agg"}
    assert all("together" in r["headers"].get("user-agent", "").lower() for r in server.requests())


def test_rounds_two_passes_whole_answers_to_the_second_round(server):
    assert turn(server, "m1", "m2", "m3", rounds=2).ok
    second = server.requests("m1")[1]["body"]["messages"][0]["content"]
    assert "m2 answer 1: q" in second and "m3 answer 1: q" in second
    agg = server.requests("agg")[0]["body"]["messages"][0]["content"]
    assert "m1 answer 2: q" in agg  # the aggregator sees round two


def test_rounds_zero_asks_the_aggregator_alone(server):
    assert turn(server, "m1", "m2", "m3", rounds=0, question="solo").ok
    assert [r["model"] for r in server.requests()] == ["agg"]
