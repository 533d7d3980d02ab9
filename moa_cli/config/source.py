"""The config source: the environment (with .env) and the config file a process reads, and the
one place that turns them, plus flags, into Settings.

    source = ConfigSource.load()                 # env + .env + the TOML file
    settings = source.settings(overrides)        # checked, layered, immutable
    settings = source.changed(settings, more)    # chat's /set, serve's request fields
    source.mix_names(), source.mix_origin(name)  # what `moa mixes` and serve's catalog list

Every section of the file is checked once per source (sections/), so a broken user mix is
reported before any call is made, and re-resolving for a chat command costs only the mix.
Every problem in a config file is one ConfigError line naming the file, the key and what was
expected (exit code 2). The file is only ever read, never rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, UsageError
from ..providers import ENV_REF, ProviderSpec, find_key
from . import builtin_mixes, keystore, model_facts, paths
from .layering import apply_flags, run_options
from .schema import MODEL_KEYS, Mix, ModelSettings
from .loader import load_config_file, load_env
from .sections import defaults as defaults_section
from .sections import local as local_section
from .sections import mixes as mixes_section
from .sections import pricing as pricing_section
from .sections import providers as providers_section
from .settings import Overrides, Settings
from .toml_write import toml_key
from .validate import check_flags, check_shape


@dataclass(frozen=True)
class Checked:
    """Every section of one config, checked."""

    providers: dict[str, ProviderSpec]
    defaults: dict[str, Any]
    prices: dict[str, tuple[float, float]]
    local_models: dict[str, str]
    provider_env: dict[str, str]


@dataclass(frozen=True, eq=False)
class ConfigSource:
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    config: Mapping[str, Any] = field(default_factory=dict, repr=False)
    path: Path | None = None

    @classmethod
    def load(cls, cwd: Path | None = None) -> "ConfigSource":
        """The environment with .env under it, and the config file (MOA_HOME, MOA_CONFIG)."""
        path = paths.config_file()
        return cls(load_env(cwd), load_config_file(path), path)

    @property
    def where(self) -> str:
        return str(self.path) if self.path else "config"

    @cached_property
    def checked(self) -> Checked:
        where, config = self.where, self.config
        check_shape(config, where)
        providers = providers_section.check(config, where)
        defaults = defaults_section.check(config, where)
        prices = {**model_facts.BUILTIN_PRICES, **pricing_section.check(config, providers, where)}
        local_models = local_section.check(config, where)
        for name, data in self.user_mixes.items():
            mixes_section.check(name, data, defaults, providers, self.mix_where(name))
        if "mix" in defaults and defaults["mix"] not in self.known_mixes:
            raise ConfigError(f"config error in {where}: [defaults] mix: unknown mix '{defaults['mix']}'; "
                              f"known mixes: {', '.join(sorted(self.known_mixes))}")
        return Checked(providers, defaults, prices, local_models, _provider_env(providers, self.env))

    # ---------------------------------------------------------------- the mixes it defines

    @property
    def user_mixes(self) -> Mapping[str, Any]:
        return self.config.get("mixes", {})

    @property
    def known_mixes(self) -> dict[str, Any]:
        return {**builtin_mixes.BUILTIN_MIXES, **self.user_mixes}

    def mix_names(self) -> list[str]:
        return sorted(self.known_mixes)

    def mix_data(self, name: str) -> Mapping[str, Any]:
        """The raw table of a mix: the user's `[mixes.NAME]` wins over a built-in of that name."""
        return self.known_mixes[name]

    def mix_origin(self, name: str) -> str:
        return str(self.path or "config") if name in self.user_mixes else "built-in"

    def mix_where(self, name: str) -> str:
        return f"{self.where}: [mixes.{toml_key(name)}]" if name in self.user_mixes else f"built-in mix '{name}':"

    def default_mix_name(self) -> str:
        return self.config.get("defaults", {}).get("mix", builtin_mixes.DEFAULT_MIX)

    # ---------------------------------------------------------------- settings

    def settings(self, overrides: Overrides = Overrides(), *, base: Settings | None = None,
                 stored_keys: Mapping[str, str] | None = None, current: Mix | None = None) -> Settings:
        """Everything a turn needs, from the flags (`overrides`) on top of this source.

        `stored_keys` are the keys saved by `moa keys set` (read from the key file when None); they
        only decide whether the default mix can run or the offline local mix stands in for it.
        With `base` (the settings before a change), notices it already gave are not repeated.
        With `current` (the mix in use), the flags change that mix, whatever it came from.
        """
        checked = self.checked
        check_flags(overrides)
        if overrides.mix is not None and overrides.mix not in self.known_mixes:
            raise UsageError(f"unknown mix '{overrides.mix}'; known mixes: {', '.join(self.mix_names())}")
        if current is not None:
            # A change to the mix in use: start from its models as they run now, with the settings
            # of the named mix they came from for any model the change brings in.
            name, standin = (current.base if current.base in self.known_mixes else
                             self._mix_to_run(overrides, stored_keys)[0]), None
            table = _as_data(current, self.mix_data(name))
        else:
            name, standin = self._mix_to_run(overrides, stored_keys)
            table = self.mix_data(name)
        data, models_from_flags = mixes_section.with_flag_models(name, table, overrides, checked.providers)
        unused: list[str] = []
        mix = mixes_section.check(name, data, checked.defaults, checked.providers, self.mix_where(name), unused)
        notices = []
        if unused and not models_from_flags:
            notices.append(f"{self.mix_where(name)} models.{toml_key(unused[0])} matches no model of the mix (a typo?)")
        mix = apply_flags(mix, overrides)
        _check_local_names(mix, checked.providers, checked.local_models)
        if overrides.changes_models():
            mix = replace(mix, name=mix.describe())  # what runs is no longer the named mix as it stands
        elif current is not None:
            mix = replace(mix, name=current.name)
        mix = replace(mix, base=name)
        if base is not None:
            notices = [n for n in notices if n not in base.notices]  # said once is enough
            standin = None if standin == base.standin else standin
        return Settings(mix=mix, options=run_options(checked.defaults, overrides), providers=checked.providers,
                        prices=checked.prices, local_models=checked.local_models, provider_env=checked.provider_env,
                        notices=tuple(notices), standin=standin, overrides=overrides)

    def changed(self, settings: Settings, overrides: Overrides, keep_mix: bool = False) -> Settings:
        """`settings` after more flags (chat's /set, a serve request's fields): the new values go
        on top of the ones given so far, and the mix is resolved again. With `keep_mix` (chat),
        unless the change picks a mix, it applies to the mix in use (the offline stand-in, a
        resumed session's), not to the default mix."""
        current = settings.mix if keep_mix and overrides.mix is None else None
        return self.settings(settings.overrides.merged(overrides), base=settings, current=current)

    def _mix_to_run(self, overrides: Overrides, stored_keys: Mapping[str, str] | None) -> tuple[str, str | None]:
        """The mix's name, and the notice when the offline local mix stands in for the default:
        the user asked for nothing in particular (no flags, no [defaults] mix) and the default mix
        has no key."""
        defaults, providers = self.checked.defaults, self.checked.providers
        name = overrides.mix or defaults.get("mix") or builtin_mixes.DEFAULT_MIX
        if overrides.picks_models() or "mix" in defaults or builtin_mixes.LOCAL_MIX not in self.known_mixes:
            return name, None
        plain = mixes_section.check(name, self.mix_data(name), defaults, providers, self.mix_where(name))
        missing = _missing_key(plain.providers(), providers, self.env, stored_keys)
        if missing is None:
            return name, None
        variable = missing.api_key_env
        return builtin_mixes.LOCAL_MIX, (
            f"no {variable or 'key for ' + missing.name} set: using the offline '{builtin_mixes.LOCAL_MIX}' mix. "
            f"For the '{name}' mix, {'set ' + variable + ' or ' if variable else ''}"
            f"run `moa keys set {missing.name}`."
        )


def _as_data(mix: Mix, table: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved mix as a mix table again: its models as inline tables holding every value they
    run with, under the named mix's own values (`table`) for models a change adds to it."""

    def entry(m: ModelSettings) -> dict[str, Any]:
        values = {k: getattr(m, k) for k in MODEL_KEYS if getattr(m, k, None) is not None}
        if values.get("weight") == 1.0:
            del values["weight"]
        return {"model": m.label, **values}

    data = {k: v for k, v in table.items() if k not in ("layers", "references", "rounds", "aggregator")}
    data.update(layers=[[entry(m) for m in layer] for layer in mix.layers], aggregator=entry(mix.aggregator),
                strategy=mix.strategy, shuffle=mix.shuffle)
    return data


def _check_local_names(mix: Mix, providers: Mapping[str, ProviderSpec], aliases: Mapping[str, str]) -> None:
    """A local model is named when it is set (`/aggregator local:nope`), not when it is first called."""
    from ..providers.local import BUILTIN

    for m in mix.models():
        if providers[m.provider].kind == "local" and m.model != BUILTIN and m.model not in aliases \
                and not m.model.lower().endswith(".gguf"):
            known = ", ".join([BUILTIN, *aliases])
            raise UsageError(f"unknown local model '{m.label}': use one of {known} ([local.models] in the "
                             "config adds more), or a path to a .gguf file")


def load_source(cwd: Path | None = None) -> ConfigSource:
    return ConfigSource.load(cwd)


def load_settings(overrides: Overrides = Overrides(), cwd: Path | None = None) -> Settings:
    """Settings from this process's environment, .env and config file, with `overrides` on top."""
    return ConfigSource.load(cwd).settings(overrides)


def resolve(overrides: Overrides, env: Mapping[str, str], config: Mapping[str, Any], config_path: Path | None = None,
            base: Settings | None = None, stored_keys: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags, an environment and a parsed config: `ConfigSource(...).settings(...)`."""
    return ConfigSource(env, config, config_path).settings(overrides, base=base, stored_keys=stored_keys)


def _missing_key(names: set[str], providers: Mapping[str, ProviderSpec], env: Mapping[str, str],
                 stored: Mapping[str, str] | None) -> ProviderSpec | None:
    """The first of these providers that needs a key and has none (environment, .env or key file)."""
    stored = keystore.load_keys() if stored is None else stored
    for name in sorted(names):
        spec = providers[name]
        if spec.key_required and find_key(spec, env, stored) is None:
            return spec
    return None


def _provider_env(providers: Mapping[str, ProviderSpec], env: Mapping[str, str]) -> dict[str, str]:
    """The variables the providers read: key, base URL, and `${VAR}` in header values."""
    names = set()
    for spec in providers.values():
        names.update(n for n in (spec.api_key_env, spec.base_url_env) if n)
        for value in spec.headers.values():
            names.update(ENV_REF.findall(value))
    return {name: env[name] for name in sorted(names) if name in env}
