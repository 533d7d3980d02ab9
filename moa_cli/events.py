"""What the engine tells its listeners, and the results it hands back.

Small plain values: renderers switch on the event type; results turn into JSON with `to_dict`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .failure import Failure
from .providers.base import Usage


class Role(StrEnum):
    """What a call does in a turn. A str, so JSON, the store and `role == "reference"` keep working.

    Defined here, with the events that carry it, because strategies (which plan calls in these
    roles) sit above events; `moa_cli.strategies` re-exports it."""

    REFERENCE = "reference"  # answers the user's message (possibly seeing earlier answers)
    REVIEWER = "reviewer"  # critiques or ranks other references' answers; its text is not an answer
    AGGREGATOR = "aggregator"  # writes the final answer


@dataclass(frozen=True)
class Call:
    role: Role  # a str enum: "reference", "reviewer" or "aggregator"
    round: int  # 1-based; the aggregator's round is the number of reference rounds + 1
    index: int  # position within its round
    label: str  # "provider:model"
    temperature: float | None = None  # tells repeated samples of one model apart (Self-MoA)


@dataclass
class CallResult:
    call: Call
    status: str = "running"  # ok | failed | cut | cancelled
    text: str = ""
    failure: Failure | None = None  # why the call did not answer (failed, cut or cancelled)
    usage: Usage = Usage()
    finish_reason: str | None = None  # as the provider sent it: "stop", "length" (hit max_tokens), ...
    usage_estimated: bool = False  # the provider reported no usage; these counts are estimates
    chunks: int = 0  # streamed text chunks (about one token each)
    started: float | None = None  # seconds since the turn started
    first_token: float | None = None
    finished: float | None = None

    def to_dict(self) -> dict:
        return {
            "model": self.call.label,
            "role": self.call.role,
            "round": self.call.round,
            "status": self.status,
            "text": self.text,
            # The failure in words, naming the call, for people; `failure` is for programs.
            "error": f"{self.call.label}: {self.failure.describe()}" if self.failure else None,
            "error_status": self.failure.status if self.failure else None,
            "failure": {"kind": self.failure.kind.value, "status": self.failure.status,
                        "retryable": self.failure.retryable} if self.failure else None,
            "finish_reason": self.finish_reason,
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
                "estimated": self.usage_estimated,
            },
            "timings": {
                "started": _r(self.started),
                "first_token": _r(self.first_token),
                "finished": _r(self.finished),
                "duration": _r(self.finished - self.started)
                if self.finished is not None and self.started is not None
                else None,
            },
        }


@dataclass
class TurnResult:
    mix: str
    started: float  # wall-clock epoch seconds
    rounds: list[list[CallResult]] = field(default_factory=list)
    aggregate: CallResult | None = None
    final: str = ""
    fallback: str | None = None  # label of the reference answer used when the aggregator failed
    elapsed: float = 0.0

    def calls(self) -> list[CallResult]:
        return [r for rnd in self.rounds for r in rnd] + ([self.aggregate] if self.aggregate else [])

    def usage_by_role(self) -> dict[str, Usage]:
        totals: dict[str, Usage] = {}
        for r in self.calls():
            totals[r.call.role] = totals.get(r.call.role, Usage()) + r.usage
        return totals

    def total_usage(self) -> Usage:
        total = Usage()
        for r in self.calls():
            total = total + r.usage
        return total

    def to_dict(self) -> dict:
        total = self.total_usage()
        return {
            "mix": self.mix,
            "final": self.final,
            "fallback": self.fallback,
            "rounds": [[r.to_dict() for r in rnd] for rnd in self.rounds],
            "aggregator": self.aggregate.to_dict() if self.aggregate else None,
            "usage": {
                "prompt_tokens": total.prompt_tokens,
                "completion_tokens": total.completion_tokens,
                "by_role": {
                    role: {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens}
                    for role, u in self.usage_by_role().items()
                },
            },
            "timings": {"elapsed": _r(self.elapsed)},
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


@dataclass(frozen=True)
class CallStarted:
    call: Call


@dataclass(frozen=True)
class CallDelta:
    call: Call
    text: str


@dataclass(frozen=True)
class CallRestarted:
    """A retry after partial output: listeners should forget the text shown so far."""

    call: Call


@dataclass(frozen=True)
class CallProgress:
    """What a call is doing before it can answer, e.g. "loading smollm2…" for a local model."""

    call: Call
    note: str
    queued: bool = False  # waiting in line for a shared model: its clocks do not run
    began: bool = False  # generation starts now: elapsed time counts from here


@dataclass(frozen=True)
class CallStalled:
    """The engine's own judgement that a reference has gone quiet while its round waits for it:
    it has sent nothing for `silent_for` seconds and will be cut in `cut_in` seconds unless it
    sends something (with a fixed --proposer-deadline: when that passes, whatever it sends)."""

    call: Call
    silent_for: float
    cut_in: float


@dataclass(frozen=True)
class CallFinished:
    call: Call
    result: CallResult


@dataclass(frozen=True)
class Notice:
    """A warning for the user (dropped model, retry, fallback, trimmed context)."""

    message: str


Event = CallStarted | CallDelta | CallRestarted | CallProgress | CallStalled | CallFinished | Notice
