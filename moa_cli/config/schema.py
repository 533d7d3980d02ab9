"""The config schema: what each setting is, its allowed range, and the immutable values it
resolves to (one model's settings, a mix of them, run options).

Config files, named mixes and flags all produce these values; the engine only reads them. Every
key set and rule is defined once (options.py and here), for the resolver, the validator and the
writers alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace

from .options import BY_NAME, DEFAULTS_TABLE, MODEL_TABLES, OPTIONS, Kind, Option, Scope, default


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
    base: str = ""  # the named mix this one was resolved from (a changed mix keeps its settings)

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
    """How a turn runs, independent of which models run it. Defaults and meanings: options.py."""

    # The longest silence allowed between two pieces of an answer, seconds; connecting gets at most
    # 10 s (providers/openai_style.py CONNECT_TIMEOUT). The engine enforces it; the HTTP client's read
    # timeout is set to it too.
    timeout: float = default("timeout")
    # Total seconds a call may take, retries included. None: DEADLINE_FACTOR x its timeout, so a
    # server that keeps sending (a drip, endless keep-alives) cannot hold a turn forever.
    deadline: float | None = default("deadline")
    retries: int = default("retries")
    backoff: float = default("backoff")
    min_proposers: int = default("min_proposers")
    # Seconds into a round after which stragglers are cut. None: no fixed deadline; a reference
    # that has gone silent is cut once half the round has answered (see engine.STALL_MIN).
    proposer_deadline: float | None = default("proposer_deadline")
    fallback: bool = default("fallback")
    concurrency: int | None = default("concurrency")  # None means unlimited
    multi_turn: bool = default("multi_turn")
    log: bool = default("log")
    extra: dict = field(default_factory=dict)

    def call_deadline(self, timeout: float | None) -> float:
        """The total time allowed for one call whose read timeout is `timeout`."""
        if self.deadline is not None:
            return self.deadline
        return DEADLINE_FACTOR * (timeout or self.timeout)


DEADLINE_FACTOR = 5  # the default deadline: 5 x the read timeout (300 s for the default 60 s)


# ---------------------------------------------------------------- keys a config file may hold

# Keys a config file may hold: the option table's (options.py), plus a mix's own structure.
MODEL_KEYS = frozenset(o.name for o in OPTIONS if o.config == MODEL_TABLES)
RUN_OPTION_KEYS = frozenset(f.name for f in fields(RunOptions)) - {"extra"}
DEFAULTS_KEYS = frozenset(o.name for o in OPTIONS if o.config in (MODEL_TABLES, DEFAULTS_TABLE))
MIX_KEYS = frozenset({"description", "source", "layers", "references", "aggregator", "rounds", "strategy",
                      "shuffle", "models"}) | MODEL_KEYS
PROVIDER_KEYS = frozenset({"kind", "base_url", "api_key_env", "headers", "description", "key_required"})
SECTIONS = ("defaults", "providers", "mixes", "pricing", "local", "roles")  # roles: see roles.py
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# Values a config file may hold that are no option: a mix's `shuffle`, a `[pricing]` entry.
MIX_SHUFFLE = Option("shuffle", Kind.BOOL, "Shuffle the reference answers before aggregating.", Scope.RUN)
PRICE = Option("price", Kind.FLOAT, "Dollars per million tokens.", Scope.MODEL, low=0.0, high=1e6,
               expected="a number of dollars of at least 0 (at most 1000000)")
RULES: dict[str, Option] = {**BY_NAME, MIX_SHUFFLE.name: MIX_SHUFFLE, PRICE.name: PRICE}
