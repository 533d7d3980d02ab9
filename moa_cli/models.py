"""Immutable descriptions of what to run: one model's settings, a mix of them, and run options.

Config files, named mixes and flags all produce these; the engine only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

@dataclass(frozen=True)
class ModelSettings:
    provider: str
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    system: str | None = None
    timeout: float | None = None
    weight: float = 1.0
    seed: int | None = None
    context_window: int | None = None

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.model}"

    def with_(self, **changes) -> "ModelSettings":
        """A copy with the given fields changed; None values leave a field as it is."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True)
class Mix:
    name: str
    layers: tuple[tuple[ModelSettings, ...], ...]  # one tuple of reference models per round
    aggregator: ModelSettings
    strategy: str = "synthesize"  # "synthesize", "rank", or a template with {answers}/{question}
    shuffle: bool = False
    description: str = ""

    @property
    def rounds(self) -> int:
        return len(self.layers)

    def models(self) -> list[ModelSettings]:
        return [m for layer in self.layers for m in layer] + [self.aggregator]

    def providers(self) -> set[str]:
        return {m.provider for m in self.models()}


@dataclass(frozen=True)
class RunOptions:
    """How a turn runs, independent of which models run it."""

    timeout: float = 60.0  # connect/read timeout per call, seconds
    retries: int = 2  # extra tries for 429, 5xx and connection errors
    backoff: float = 0.5  # first retry delay, doubled each try, with jitter
    min_proposers: int = 1  # answers a round needs before stragglers may be cut
    # Seconds into a round after which stragglers are cut. None: no fixed deadline; a reference
    # that has gone silent is cut once half the round has answered (see engine.STALL_MIN).
    proposer_deadline: float | None = None
    fallback: bool = True  # on aggregator failure, answer with the best reference answer
    concurrency: int | None = None  # calls in flight per provider; None means unlimited
    multi_turn: bool = True
    extra: dict = field(default_factory=dict)
