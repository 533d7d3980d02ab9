"""The option table: every setting a user can give, declared once.

Each row says what a setting is called, its type and bounds, its help and default, its scope, and
where it may be given: as a flag of `moa ask`/`moa chat`, in the config file, as a field of a
chat-completions request to `moa serve`. Everything else is derived from this table:

    the typer options of `ask` and `chat`   moa_cli/flags.py
    Overrides (what the flags asked for)    settings.py
    `/set NAME VALUE` in chat               slash.py
    serve's request fields                  server/protocol.py
    checking values, and which config keys exist   schema.py, validate.py

So a new knob is one row here (plus whatever reads its value).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any


class Scope(enum.Enum):
    MODEL = "model"  # a value every model call carries (ModelSettings); a flag sets it for every model
    RUN = "run"  # how one turn runs (RunOptions), or which models run it
    SERVER = "server"  # one value for the whole process (a server's shared provider pool): never per request


class Kind(enum.Enum):
    BOOL = bool
    INT = int
    FLOAT = float
    TEXT = str
    MODELS = tuple  # a list of PROVIDER:MODEL specs, comma-separated


# Where a config file may set an option.
MODEL_TABLES = "model"  # [defaults], a mix's own values, its per-model tables, a model's inline table
DEFAULTS_TABLE = "defaults"  # only [defaults]
ASK_CHAT = frozenset({"ask", "chat"})


@dataclass(frozen=True)
class Option:
    name: str  # the Overrides field, the config key, `/set NAME`
    kind: Kind
    help: str
    scope: Scope
    low: float | None = None  # bounds of a number: every number has both, so a 400-digit value
    high: float | None = None  # is one clear error, never an overflow later
    expected: str = ""  # what a user should give, for error messages
    default: Any = None  # the value when nobody sets it (None: the model's or the mix's own)
    shown_default: str | None = None  # the default as --help says it, when not just `default`
    short: str | None = None  # a one-letter flag
    long: str | None = None  # the flag, when not --NAME-WITH-DASHES
    commands: frozenset[str] = frozenset()  # which commands take it as a flag; empty: config only
    config: str | None = None  # MODEL_TABLES, DEFAULTS_TABLE, or None (not a config key)
    request: tuple[str, ...] = ()  # chat-completions request fields that set it, the first given wins
    field: str | None = None  # the ModelSettings field it sets, when not `name`
    references_only: bool = False  # a MODEL option that only reference models get
    # A RUN option that is a key of a mix's table (`strategy`): the given value replaces the mix's
    # own before the mix is checked, so it is checked exactly like a config file's (sections/mixes.py).
    mix_key: bool = False

    @property
    def flag(self) -> str:
        return self.long or "--" + self.name.replace("_", "-")

    @property
    def model_field(self) -> str:
        return self.field or self.name

    @property
    def is_flag(self) -> bool:
        return bool(self.commands)

    def describe_expected(self) -> str:
        if self.expected:
            return self.expected
        return {Kind.BOOL: "true or false", Kind.TEXT: "a string", Kind.MODELS: "PROVIDER:MODEL names"}.get(
            self.kind, "a number")

    def help_text(self) -> str:
        shown = self.shown_default if self.shown_default is not None else (
            None if self.default is None else _show_default(self.default))
        return f"{self.help} [default: {shown}]" if shown else self.help

    def parse(self, text: str):
        """A value from text (`/set NAME VALUE`); ValueError when it is not one of this kind."""
        text = text.strip()
        if self.kind is Kind.BOOL:
            word = text.lower()
            if word in ("on", "true", "yes", "1"):
                return True
            if word in ("off", "false", "no", "0"):
                return False
            raise ValueError(text)
        if self.kind is Kind.INT:
            return int(text)
        if self.kind is Kind.FLOAT:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
            return value
        if self.kind is Kind.MODELS:
            return tuple(part.strip() for part in text.replace(" ", ",").split(",") if part.strip())
        return text

    def check(self, value) -> bool:
        """Whether `value` (as parsed from TOML or JSON) is an allowed value of this option."""
        if self.kind is Kind.BOOL:
            return isinstance(value, bool)
        if self.kind is Kind.TEXT:
            return isinstance(value, str)
        if self.kind is Kind.MODELS:
            return isinstance(value, tuple) and all(isinstance(v, str) for v in value)
        # Compared without converting a huge int to float (that would raise OverflowError).
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and isinstance(value, float):
            ok = math.isfinite(value) and (self.kind is Kind.FLOAT or value.is_integer())
        return ok and self.low <= value <= self.high


def _show_default(value) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


DAY = 86_400.0
M, R, S = Scope.MODEL, Scope.RUN, Scope.SERVER
_TOKENS = dict(low=1, high=10_000_000, expected="a whole number from 1 to 10000000")
_SECONDS = dict(low=0.001, high=DAY, expected="a number of seconds above 0, at most 86400")

OPTIONS: tuple[Option, ...] = (
    # Which models run.
    Option("mix", Kind.TEXT, "Named mix (see `moa mixes`).", R, short="m", commands=ASK_CHAT, config=DEFAULTS_TABLE),
    Option("references", Kind.MODELS, "Reference model, PROVIDER:MODEL; repeat or comma-separate.", R,
           short="r", long="--reference-models", commands=ASK_CHAT),
    Option("aggregator", Kind.TEXT, "Aggregator model.", R, short="a", commands=ASK_CHAT),
    Option("rounds", Kind.INT, "Reference rounds before the aggregator; 0 = the aggregator alone.", R,
           low=0, high=10, expected="a whole number from 0 to 10", shown_default="the mix's, 1 for most",
           commands=ASK_CHAT),
    Option("strategy", Kind.TEXT, "How the rounds run: a registered strategy (synthesize, rank, peer-review, ...) "
           "or a template with {answers}.", R, shown_default="the mix's, synthesize for most", commands=ASK_CHAT,
           request=("strategy",), mix_key=True),
    # What every model call carries.
    Option("temperature", Kind.FLOAT, "Sampling temperature for every call.", M, low=0.0, high=2.0,
           expected="a number from 0 to 2", short="t", commands=ASK_CHAT, config=MODEL_TABLES,
           request=("temperature",)),
    Option("max_tokens", Kind.INT, "Output token cap for every call.", M, **_TOKENS,
           shown_default="the model's or the mix's", commands=ASK_CHAT, config=MODEL_TABLES,
           request=("max_completion_tokens", "max_tokens")),
    Option("reference_max_tokens", Kind.INT, "Output cap for reference models only.", M, **_TOKENS,
           commands=ASK_CHAT, config=DEFAULTS_TABLE, field="max_tokens", references_only=True),
    Option("system", Kind.TEXT, "System prompt for every model.", M, short="s", commands=ASK_CHAT,
           config=MODEL_TABLES),
    # Also the turn's default for models without their own (RunOptions.timeout).
    Option("timeout", Kind.FLOAT, "Longest silence allowed between two pieces of an answer, seconds.", M,
           **_SECONDS, default=60.0, commands=ASK_CHAT, config=MODEL_TABLES),
    Option("seed", Kind.INT, "Model seed for reproducible answers, sent with every call.", M,
           low=-(2**63), high=2**63 - 1, expected="a whole number that fits in 64 bits", commands=ASK_CHAT,
           config=MODEL_TABLES, request=("seed",)),
    Option("weight", Kind.FLOAT, "How much a reference's answer counts when answers are ranked.", M,
           low=0.0, high=1e6, expected="a number of at least 0 (at most 1000000)", config=MODEL_TABLES),
    Option("context_window", Kind.INT, "The model's context window, in tokens.", M, low=256, high=100_000_000,
           expected="a whole number from 256 to 100000000", config=MODEL_TABLES),
    # How a turn runs.
    Option("retries", Kind.INT, "Extra tries on 429/5xx/connection errors.", R, low=0, high=10,
           expected="a whole number from 0 to 10", default=2, commands=ASK_CHAT, config=DEFAULTS_TABLE),
    Option("backoff", Kind.FLOAT, "First retry delay, doubled each try, with jitter.", R, low=0.0, high=60.0,
           expected="a number of seconds from 0 to 60", default=0.5, config=DEFAULTS_TABLE),
    Option("min_proposers", Kind.INT, "Answers a round needs before stragglers are cut.", R, low=1, high=1000,
           expected="a whole number from 1 to 1000", default=1, commands=ASK_CHAT, config=DEFAULTS_TABLE),
    Option("proposer_deadline", Kind.FLOAT, "Seconds into a round after which stragglers are cut.", R,
           low=0.0, high=DAY, expected="a number of seconds from 0 to 86400",
           shown_default="none; a reference silent for 2x the quorum's time, at least 15 s, is cut",
           commands=ASK_CHAT, config=DEFAULTS_TABLE),
    Option("deadline", Kind.FLOAT, "Total seconds one call may take, retries included.", R, **_SECONDS,
           shown_default="5x --timeout", commands=ASK_CHAT, config=DEFAULTS_TABLE),
    Option("fallback", Kind.BOOL, "On aggregator failure, answer with the best reference.", R, default=True,
           commands=ASK_CHAT, config=DEFAULTS_TABLE),
    Option("multi_turn", Kind.BOOL, "Send earlier questions and answers as context.", R, default=True,
           commands=frozenset({"chat"}), config=DEFAULTS_TABLE),
    Option("log", Kind.BOOL, "Save the turn in the sessions database.", R, default=True, commands=ASK_CHAT,
           config=DEFAULTS_TABLE),
    Option("concurrency", Kind.INT, "Calls in flight per provider.", S, low=1, high=1000,
           expected="a whole number from 1 to 1000", shown_default="unlimited", commands=ASK_CHAT,
           config=DEFAULTS_TABLE),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
# What the command line (and chat's /set, and serve's requests) can override.
FLAG_OPTIONS: tuple[Option, ...] = tuple(o for o in OPTIONS if o.is_flag or o.request)
MODEL_OPTIONS: tuple[Option, ...] = tuple(o for o in FLAG_OPTIONS if o.scope is Scope.MODEL)
REQUEST_OPTIONS: tuple[Option, ...] = tuple(o for o in OPTIONS if o.request)
# Options that pick or reshape the mix's models (resolved with the mix, not applied on top of it).
MODEL_CHOICE = ("mix", "references", "aggregator", "rounds")
# Options that set a key of the mix's own table (resolved with the mix, checked like its config).
MIX_KEY_OPTIONS: tuple[Option, ...] = tuple(o for o in FLAG_OPTIONS if o.mix_key)


def default(name: str):
    return BY_NAME[name].default


def find(name: str) -> Option | None:
    """An option by its name as a user types it: `max-tokens`, `max_tokens`, `--max-tokens`."""
    return BY_NAME.get(name.strip().lstrip("-").lower().replace("-", "_"))

