"""The idle limit (--timeout) counts silence since the last piece of output, however many pieces
came before: output that keeps coming for longer than the limit never trips it, and silence
after output does. (The engine keeps one timer per call that re-arms itself when it fires,
instead of rescheduling the limit for every chunk: these pin down that it still means the same.)
In-process, as tests/test_policy_inprocess.py, against the fake server."""

from __future__ import annotations

from inprocess import run_turn

from moa_cli.config import Overrides
from moa_cli.failure import FailureKind

# Words, so that each goes out at once (the stream redactor holds back an unbroken run of text).
DRIP = 'data: {"choices":[{"delta":{"content":" x"}}]}\n\n'


def alone(server, model: str, **options):
    return run_turn(server, Overrides(aggregator=f"openai:{model}", rounds=0, retries=0, **options))


def test_output_that_keeps_coming_past_the_idle_limit_is_ended_by_the_deadline_not_as_idle(server):
    # A piece every 0.05 s for 1.5 s: three idle limits long, never 0.5 s silent.
    server.script("drip", raw_forever=DRIP, raw_delay=0.05)
    outcome = alone(server, "drip", timeout=0.5, deadline=1.5)
    assert not outcome.ok
    assert [f.kind for f in outcome.failures] == [FailureKind.DEADLINE]
    assert outcome.turn.aggregate.chunks > 10  # it did stream all along


def test_silence_after_output_is_cut_by_the_idle_limit(server):
    # Output for a while (longer than the limit), then keep-alive comments only: not progress.
    server.script("stops", raw=[DRIP] * 12, raw_delay=0.05, raw_forever=": keepalive\n\n")
    outcome = alone(server, "stops", timeout=0.4, deadline=5.0)
    assert not outcome.ok
    assert [f.kind for f in outcome.failures] == [FailureKind.IDLE]
    assert outcome.turn.aggregate.chunks > 5  # it had streamed before it fell silent


def test_output_without_whitespace_counts_as_output_while_the_redactor_holds_it(server):
    # Pieces of one unbroken run of text (minified code, a long token): the stream redactor
    # holds them back until the run is longer than any secret, but the model is not silent.
    unbroken = 'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'
    server.script("unbroken", raw=[unbroken] * 30, raw_delay=0.05,
                  raw_forever='data: {"choices":[{"delta":{"content":"x"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    outcome = alone(server, "unbroken", timeout=0.4, deadline=10.0)
    assert outcome.ok, outcome.failures
    assert outcome.turn.final == "x" * 31
