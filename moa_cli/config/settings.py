"""The two values the config package hands out: Overrides (what the flags asked for) and
Settings (everything a turn needs, resolved and immutable)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from ..providers import ProviderSpec
from . import builtin_mixes
from .options import FLAG_OPTIONS, Kind, Option
from .schema import Mix, RunOptions


class _OverridesMethods:
    @classmethod
    def from_flags(cls, *, references=None, **flags) -> "Overrides":
        """Overrides from command-line flags, by name: `-r a,b -r c` is three reference models.
        An unknown name is a TypeError, so a renamed flag cannot be silently mis-assigned."""
        refs = None
        if references is not None:
            refs = tuple(part.strip() for item in references for part in item.split(",") if part.strip())
        return cls(references=refs, **flags)

    def given(self) -> dict[str, Any]:
        """The values that were given, by option name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def changes_models(self) -> bool:
        """Flags that replace a mix's models or rounds: what runs is then named by its models."""
        return self.references is not None or self.aggregator is not None or self.rounds is not None

    def picks_models(self) -> bool:
        return bool(self.mix or self.references or self.aggregator)

    def merged(self, newer: "Overrides") -> "Overrides":
        """These overrides with `newer`'s given values on top. Choosing a new mix drops the
        earlier -r/-a/--rounds, which described the old mix."""
        base = self
        if newer.mix is not None:
            base = replace(base, references=None, aggregator=None, rounds=None)
        return replace(base, **newer.given())


def _field_type(option: Option):
    return (tuple[str, ...] if option.kind is Kind.MODELS else option.kind.value) | None


# What the command line asked for, one field per option of the table (options.FLAG_OPTIONS);
# None means "not given". Frozen and hashable: serve caches Settings per distinct Overrides.
Overrides = make_dataclass(
    "Overrides",
    [(o.name, _field_type(o), field(default=None)) for o in FLAG_OPTIONS],
    bases=(_OverridesMethods,),
    frozen=True,
)
Overrides.__module__ = __name__
Overrides.__doc__ = "What the command line asked for (one field per flag of options.py); None means not given."


@dataclass(frozen=True)
class Settings:
    mix: Mix
    options: RunOptions
    providers: Mapping[str, ProviderSpec]
    prices: Mapping[str, tuple[float, float]]
    local_models: Mapping[str, str]
    env: Mapping[str, str] = field(repr=False)
    config: Mapping[str, Any] = field(repr=False, default_factory=dict)
    config_path: Path | None = None
    notices: tuple[str, ...] = ()
    # Set when the default mix had no key and the offline local mix stands in for it: the notice.
    standin: str | None = None
    overrides: Overrides = Overrides()  # the flags that produced these settings

    def all_notices(self) -> tuple[str, ...]:
        return self.notices + ((self.standin,) if self.standin else ())

    def with_mix(self, mix: Mix) -> "Settings":
        """These settings running `mix` (a session's own, restored), with the flags that set a
        value for every model still on top."""
        from .resolve import apply_flags

        return replace(self, mix=apply_flags(mix, self.overrides), standin=None)

    def mix_names(self) -> list[str]:
        return sorted({*builtin_mixes.BUILTIN_MIXES, *self.config.get("mixes", {})})

    def mix_data(self, name: str) -> Mapping[str, Any]:
        """The raw table of a mix: the user's `[mixes.NAME]` wins over a built-in of that name."""
        user = self.config.get("mixes", {})
        return user[name] if name in user else builtin_mixes.BUILTIN_MIXES[name]

    def mix_origin(self, name: str) -> str:
        return str(self.config_path or "config") if name in self.config.get("mixes", {}) else "built-in"

    def default_mix_name(self) -> str:
        return self.config.get("defaults", {}).get("mix", builtin_mixes.DEFAULT_MIX)

    def with_overrides(self, overrides: Overrides) -> "Settings":
        """A new Settings after more flags (the REPL's slash commands use this): the new values
        go on top of the ones given so far, and everything is resolved again."""
        from .resolve import resolve

        return resolve(self.overrides.merged(overrides), self.env, self.config, self.config_path, base=self)
