"""The two values the config package hands out: Overrides (what the flags asked for) and
Settings (everything a turn needs, resolved and immutable)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass, replace
from typing import Any, Mapping

from ..providers import ProviderSpec
from .layering import apply_flags
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
    """Everything a turn needs, resolved: pure data. Changing it (new flags, another mix) goes
    through the ConfigSource that made it (source.py), which owns the raw env and config."""

    mix: Mix
    options: RunOptions
    providers: Mapping[str, ProviderSpec]
    prices: Mapping[str, tuple[float, float]]
    local_models: Mapping[str, str]
    # The environment variables the providers read (their key, base URL and header variables)
    # and nothing else: what opening a provider needs. Secrets: never shown.
    provider_env: Mapping[str, str] = field(default_factory=dict, repr=False)
    notices: tuple[str, ...] = ()
    # Set when the default mix had no key and the offline local mix stands in for it: the notice.
    standin: str | None = None
    overrides: Overrides = Overrides()  # the flags that produced these settings

    def all_notices(self) -> tuple[str, ...]:
        return self.notices + ((self.standin,) if self.standin else ())

    def with_mix(self, mix: Mix) -> "Settings":
        """These settings running `mix` (a session's own, restored), with the flags that set a
        value for every model still on top. Nothing is resolved again."""
        return replace(self, mix=apply_flags(mix, self.overrides), standin=None)
