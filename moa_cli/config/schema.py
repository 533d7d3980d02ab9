"""The config schema: what each setting is, its allowed range, and the immutable values it
resolves to (one model's settings, a mix of them, run options).

Config files, named mixes and flags all produce these values; the engine only reads them. Every
key set and rule is defined here once, for the resolver, the validator and the writers alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace


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


def short_model_name(label: str) -> str:
    """`together:meta-llama/Llama-3-70b` -> `Llama-3-70b`: a model as panels and prompts name it."""
    return label.split(":", 1)[-1].rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Mix:
    name: str
    layers: tuple[tuple[ModelSettings, ...], ...]  # one tuple of reference models per round
    aggregator: ModelSettings
    strategy: str = "synthesize"  # a registered strategy (moa_cli/strategies) or a template with {answers}
    shuffle: bool = False
    description: str = ""

    @property
    def rounds(self) -> int:
        return len(self.layers)

    def models(self) -> list[ModelSettings]:
        return [m for layer in self.layers for m in layer] + [self.aggregator]

    def providers(self) -> set[str]:
        return {m.provider for m in self.models()}

    def describe(self, short: bool = False) -> str:
        """The mix by its models: "p:a,p:b → p:agg ×2", how a mix changed by flags is named; with
        `short`, "a,b→agg ×2" in short model names, for the chat prompt."""
        name = short_model_name if short else str
        arrow = "→" if short else " → "
        refs = ",".join(dict.fromkeys(name(m.label) for m in self.layers[0])) if self.layers else ""
        text = f"{refs}{arrow}{name(self.aggregator.label)}" if refs else name(self.aggregator.label)
        return text + (f" ×{self.rounds}" if self.rounds > 1 else "")


@dataclass(frozen=True)
class RunOptions:
    """How a turn runs, independent of which models run it."""

    # The longest silence allowed between two pieces of an answer, seconds; connecting gets at most
    # 10 s (providers/openai_style.py CONNECT_TIMEOUT). The engine enforces it; the HTTP client's read
    # timeout is set to it too.
    timeout: float = 60.0
    # Total seconds a call may take, retries included. None: DEADLINE_FACTOR x its timeout, so a
    # server that keeps sending (a drip, endless keep-alives) cannot hold a turn forever.
    deadline: float | None = None
    retries: int = 2  # extra tries for 429, 5xx and connection errors
    backoff: float = 0.5  # first retry delay, doubled each try, with jitter
    min_proposers: int = 1  # answers a round needs before stragglers may be cut
    # Seconds into a round after which stragglers are cut. None: no fixed deadline; a reference
    # that has gone silent is cut once half the round has answered (see engine.STALL_MIN).
    proposer_deadline: float | None = None
    fallback: bool = True  # on aggregator failure, answer with the best reference answer
    concurrency: int | None = None  # calls in flight per provider; None means unlimited
    multi_turn: bool = True
    log: bool = True  # save every turn in the sessions database (--no-log, `log = false`)
    extra: dict = field(default_factory=dict)

    def call_deadline(self, timeout: float | None) -> float:
        """The total time allowed for one call whose read timeout is `timeout`."""
        if self.deadline is not None:
            return self.deadline
        return DEADLINE_FACTOR * (timeout or self.timeout)


DEADLINE_FACTOR = 5  # the default deadline: 5 x the read timeout (300 s for the default 60 s)


# ---------------------------------------------------------------- keys a config file may hold

MODEL_KEYS = frozenset({"temperature", "max_tokens", "system", "timeout", "weight", "seed", "context_window"})
RUN_OPTION_KEYS = frozenset(f.name for f in fields(RunOptions)) - {"extra"}
DEFAULTS_KEYS = frozenset({"mix", "reference_max_tokens"}) | MODEL_KEYS | RUN_OPTION_KEYS
MIX_KEYS = frozenset({"description", "source", "layers", "references", "aggregator", "rounds", "strategy",
                      "shuffle", "models"}) | MODEL_KEYS
PROVIDER_KEYS = frozenset({"kind", "base_url", "api_key_env", "headers", "description", "key_required"})
SECTIONS = ("defaults", "providers", "mixes", "pricing", "local")
BOOLEAN_KEYS = frozenset({"fallback", "multi_turn", "shuffle", "log"})
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# name -> (type, minimum, maximum, what a user should give)
# Every number has both bounds: a 400-digit value is one clear error, never an overflow later.
DAY = 86_400.0
RULES: dict[str, tuple[type, float, float, str]] = {
    "temperature": (float, 0.0, 2.0, "a number from 0 to 2"),
    "max_tokens": (int, 1, 10_000_000, "a whole number from 1 to 10000000"),
    "reference_max_tokens": (int, 1, 10_000_000, "a whole number from 1 to 10000000"),
    "timeout": (float, 0.001, DAY, "a number of seconds above 0, at most 86400"),
    "deadline": (float, 0.001, DAY, "a number of seconds above 0, at most 86400"),
    "weight": (float, 0.0, 1e6, "a number of at least 0 (at most 1000000)"),
    "seed": (int, -(2**63), 2**63 - 1, "a whole number that fits in 64 bits"),
    "context_window": (int, 256, 100_000_000, "a whole number from 256 to 100000000"),
    "rounds": (int, 0, 10, "a whole number from 0 to 10"),
    "retries": (int, 0, 10, "a whole number from 0 to 10"),
    "backoff": (float, 0.0, 60.0, "a number of seconds from 0 to 60"),
    "min_proposers": (int, 1, 1000, "a whole number from 1 to 1000"),
    "proposer_deadline": (float, 0.0, DAY, "a number of seconds from 0 to 86400"),
    "concurrency": (int, 1, 1000, "a whole number from 1 to 1000"),
    "price": (float, 0.0, 1e6, "a number of dollars of at least 0 (at most 1000000)"),
}
