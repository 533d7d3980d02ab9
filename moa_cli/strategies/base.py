"""What a strategy is: the roles of a turn's calls, the rounds a strategy plans, and the turn so
far that it plans them from.

A strategy never calls a model. It is asked for the next round (or None when the references are
done) and then for the aggregator's call; the engine runs every call it plans (concurrency,
retries, deadlines, events) and hands the results back in the next `TurnSoFar`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence

# Role is defined with the events that carry it (events sit below strategies); re-exported here.
from ..events import CallResult, Role  # noqa: F401

if TYPE_CHECKING:  # type names only: strategies read these values, they never build a config
    from ..config.schema import Mix, ModelSettings


@dataclass(frozen=True)
class Step:
    """One call a strategy asks for: which model, with exactly which messages."""

    model: ModelSettings
    messages: tuple[dict, ...]


@dataclass(frozen=True)
class Round:
    """Calls that run at the same time, all in one role."""

    role: Role
    steps: tuple[Step, ...]

    def __post_init__(self):
        if not self.steps:
            raise ValueError("a round needs at least one call")
        if self.role is Role.AGGREGATOR:
            raise ValueError("the aggregator is not a round: strategies plan it with aggregate()")


@dataclass(frozen=True)
class Played:
    """A round that ran: what was planned, and each step's result (same order)."""

    round: Round
    results: tuple[CallResult, ...]

    @property
    def role(self) -> Role:
        return self.round.role

    def ok(self) -> list[tuple[Step, CallResult]]:
        """The steps that succeeded, with their results, in the round's order."""
        return [(s, r) for s, r in zip(self.round.steps, self.results) if r.status == "ok"]


@dataclass(frozen=True)
class TurnSoFar:
    """Everything a strategy may plan from: the mix, the conversation (ending with the new user
    message) and the rounds played so far."""

    mix: Mix
    conversation: tuple[dict, ...]
    played: tuple[Played, ...] = ()

    def latest(self, role: Role = Role.REFERENCE) -> Played | None:
        """The most recent round of `role`, if any ran."""
        return next((p for p in reversed(self.played) if p.role is role), None)

    def answers(self) -> list[str]:
        """The texts of the latest reference round's successful calls: what an aggregator merges."""
        latest = self.latest(Role.REFERENCE)
        return [r.text for _, r in latest.ok()] if latest else []

    def rounds_of(self, role: Role) -> int:
        return sum(1 for p in self.played if p.role is role)


class Strategy(Protocol):
    """A registered MoA topology (see `strategies.register`)."""

    name: str  # how a mix names it: `strategy = "NAME"`
    description: str  # one line, for listings and help

    def next_round(self, turn: TurnSoFar) -> Round | None:
        """The next round to run, or None when the aggregator should write."""
        ...

    def aggregate(self, turn: TurnSoFar) -> Step:
        """The aggregator's call, once `next_round` has returned None."""
        ...


def shuffle_seed(mix: Mix) -> int | None:
    """A fresh seed for shuffling the answers one call sees, when the mix asks for it."""
    return random.randrange(1 << 30) if mix.shuffle else None


def reference_layer(mix: Mix, turn: TurnSoFar) -> Sequence[ModelSettings] | None:
    """The mix's models for the next reference round, or None once every layer has run."""
    done = turn.rounds_of(Role.REFERENCE)
    return mix.layers[done] if done < len(mix.layers) else None
