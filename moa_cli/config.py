"""Flags + environment + .env + TOML config -> one immutable Settings.

Layers, lowest first: built-in mix data, `[defaults]`, the mix's own values, its per-model
tables, the model entry itself, then command-line flags. Built-in and user mixes share one
resolver, so a mix is only data.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from . import catalog, keys, mixes, paths
from .errors import ConfigError, UsageError
from .models import Mix, ModelSettings, RunOptions
from .providers import BUILTIN_PROVIDERS, KINDS, ProviderSpec, find_key, split_spec

MODEL_KEYS = {"temperature", "max_tokens", "system", "timeout", "weight", "seed", "context_window"}


@dataclass(frozen=True)
class Overrides:
    """What the command line asked for; None means "not given"."""

    mix: str | None = None
    references: tuple[str, ...] | None = None
    aggregator: str | None = None
    rounds: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    reference_max_tokens: int | None = None
    system: str | None = None
    timeout: float | None = None
    retries: int | None = None
    min_proposers: int | None = None
    proposer_deadline: float | None = None
    fallback: bool | None = None
    concurrency: int | None = None
    multi_turn: bool | None = None

    def picks_models(self) -> bool:
        return bool(self.mix or self.references or self.aggregator)


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

    def mix_names(self) -> list[str]:
        return sorted({*mixes.BUILTIN_MIXES, *self.config.get("mixes", {})})

    def with_overrides(self, overrides: Overrides) -> "Settings":
        """A new Settings after more flags (the REPL's slash commands use this)."""
        return resolve(overrides, self.env, self.config, self.config_path, base=self)


# ---------------------------------------------------------------- loading


def load_env(cwd: Path | None = None) -> dict[str, str]:
    """The environment with a .env file under it: the real environment wins."""
    from dotenv import dotenv_values

    dotenv_path = (cwd or Path.cwd()) / ".env"
    values = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None} if dotenv_path.is_file() else {}
    return {**values, **os.environ}


def load_config_file(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config error in {path}: invalid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"config error in {path}: cannot read it: {error.strerror}") from None
    _check_shape(data, path)
    return data


def load_settings(overrides: Overrides = Overrides(), cwd: Path | None = None) -> Settings:
    env = load_env(cwd)
    path = paths.config_file()
    return resolve(overrides, env, load_config_file(path), path)


# ---------------------------------------------------------------- resolving


def resolve(
    overrides: Overrides,
    env: Mapping[str, str],
    config: Mapping[str, Any],
    config_path: Path | None = None,
    base: Settings | None = None,
) -> Settings:
    where = str(config_path) if config_path else "config"
    providers = _providers(config, where)
    defaults = dict(config.get("defaults", {}))
    notices: list[str] = []

    _check_flags(overrides)
    mix_name = overrides.mix or (base.mix.name if base else None) or defaults.get("mix") or mixes.DEFAULT_MIX
    user_mixes = config.get("mixes", {})
    known_mixes = {**mixes.BUILTIN_MIXES, **user_mixes}
    if mix_name not in known_mixes:
        raise UsageError(f"unknown mix '{mix_name}'; known mixes: {', '.join(sorted(known_mixes))}")

    if base is not None and not overrides.mix:
        mix = base.mix
    else:
        mix_where = f"{where}: [mixes.{mix_name}]" if mix_name in user_mixes else f"built-in mix '{mix_name}'"
        mix = _resolve_mix(mix_name, known_mixes[mix_name], defaults, providers, mix_where)
        # No key for the default mix: run the embedded local mix instead, and say so.
        if not overrides.picks_models() and "mix" not in defaults and base is None:
            missing = _missing_key(mix, providers, env)
            if missing:
                mix = _resolve_mix(mixes.LOCAL_MIX, mixes.BUILTIN_MIXES[mixes.LOCAL_MIX], defaults, providers, "local")
                notices.append(
                    f"no {missing.api_key_env} set: using the offline local mix (SmolLM2). For the "
                    f"'{mix_name}' mix, set {missing.api_key_env} or run `moa keys set {missing.name}`."
                )
    mix = _apply_overrides(mix, overrides, providers)

    options = base.options if base else RunOptions()
    options = _run_options(options, defaults, overrides, where if base is None else "flags")
    prices = {**catalog.BUILTIN_PRICES, **_pricing(config, where)}
    local_models = {str(k): str(v) for k, v in config.get("local", {}).get("models", {}).items()}
    return Settings(
        mix=mix,
        options=options,
        providers=providers,
        prices=prices,
        local_models=local_models,
        env=env,
        config=config,
        config_path=config_path,
        notices=tuple(notices),
    )


def _missing_key(mix: Mix, providers: Mapping[str, ProviderSpec], env: Mapping[str, str]) -> ProviderSpec | None:
    stored = keys.load_keys()
    for name in sorted(mix.providers()):
        spec = providers[name]
        if spec.key_required and find_key(spec, env, stored) is None:
            return spec
    return None


def _providers(config: Mapping[str, Any], where: str) -> dict[str, ProviderSpec]:
    providers = dict(BUILTIN_PROVIDERS)
    for name, table in config.get("providers", {}).items():
        here = f"{where}: [providers.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"config error in {here}: expected a table")
        unknown = set(table) - {"kind", "base_url", "api_key_env", "headers", "description", "key_required"}
        if unknown:
            raise ConfigError(f"config error in {here}: unknown key '{sorted(unknown)[0]}'")
        builtin = BUILTIN_PROVIDERS.get(name)
        kind = table.get("kind", builtin.kind if builtin else "openai")
        if kind not in KINDS:
            raise ConfigError(f"config error in {here}: kind must be one of {', '.join(KINDS)}, got '{kind}'")
        if not builtin and kind == "openai" and not table.get("base_url"):
            raise ConfigError(f"config error in {here}: base_url is required for a new provider")
        headers = table.get("headers", {})
        if not isinstance(headers, dict):
            raise ConfigError(f"config error in {here}: headers must be a table of strings")
        api_key_env = table.get("api_key_env", builtin.api_key_env if builtin else None)
        base = builtin or ProviderSpec(name, kind)
        providers[name] = replace(
            base,
            kind=kind,
            base_url=table.get("base_url", base.base_url),
            api_key_env=api_key_env,
            key_required=bool(table.get("key_required", api_key_env is not None)),
            headers={str(k): str(v) for k, v in headers.items()},
            description=table.get("description", base.description),
        )
    return providers


def _resolve_mix(name: str, data: Mapping[str, Any], defaults: Mapping, providers, where: str) -> Mix:
    if not isinstance(data, dict):
        raise ConfigError(f"config error in {where}: expected a table")
    allowed = {"description", "source", "layers", "references", "aggregator", "rounds", "strategy",
               "shuffle", "models"} | MODEL_KEYS
    unknown = set(data) - allowed
    if unknown:
        raise ConfigError(f"config error in {where}: unknown key '{sorted(unknown)[0]}'")
    mix_defaults = {k: v for k, v in defaults.items() if k in MODEL_KEYS}
    mix_defaults.update({k: v for k, v in data.items() if k in MODEL_KEYS})
    per_model = data.get("models", {})

    if "layers" in data:
        layers_data = data["layers"]
        if not isinstance(layers_data, list) or not all(isinstance(x, list) for x in layers_data):
            raise ConfigError(f"config error in {where}: layers must be a list of lists of models")
    elif "references" in data:
        layers_data = [data["references"]] * int(data.get("rounds", 1))
    else:
        layers_data = []
    if "rounds" in data and "layers" in data:
        layers_data = _stretch(layers_data, _int(data["rounds"], f"{where} rounds", 0))
    if not any(layers_data) and "aggregator" not in data:
        raise ConfigError(f"config error in {where}: a mix needs reference models (layers) and an aggregator")
    if "aggregator" not in data:
        raise ConfigError(f"config error in {where}: aggregator is missing")

    def model(entry, role_where):
        return _model(entry, mix_defaults, per_model, providers, role_where)

    layers = tuple(
        tuple(model(e, f"{where} layers[{i}]") for e in layer) for i, layer in enumerate(layers_data)
    )
    if any(not layer for layer in layers):
        raise ConfigError(f"config error in {where}: a layer has no models")
    strategy = data.get("strategy", "synthesize")
    if not isinstance(strategy, str) or (
        strategy not in ("synthesize", "rank", "coding") and "{answers}" not in strategy
    ):
        raise ConfigError(
            f"config error in {where}: strategy must be synthesize, rank, or a template containing "
            f"{{answers}}, got {strategy!r}"
        )
    return Mix(
        name=name,
        layers=layers,
        aggregator=model(data["aggregator"], f"{where} aggregator"),
        strategy=strategy,
        shuffle=bool(data.get("shuffle", False)),
        description=str(data.get("description", "")),
    )


def _model(entry, mix_defaults: Mapping, per_model: Mapping, providers, where: str) -> ModelSettings:
    if isinstance(entry, str):
        entry = {"model": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
        raise ConfigError(f"config error in {where}: expected a model name or a table with 'model'")
    provider, model_id = split_spec(entry["model"], providers)
    if provider not in providers:
        raise ConfigError(f"config error in {where}: unknown provider '{provider}'")
    label = f"{provider}:{model_id}"
    merged = {**mix_defaults, **per_model.get(label, per_model.get(entry["model"], {})), **entry}
    merged.pop("model")
    unknown = set(merged) - MODEL_KEYS
    if unknown:
        raise ConfigError(f"config error in {where}: unknown model setting '{sorted(unknown)[0]}'")
    values = {k: _check_value(k, v, f"config error in {where}", ConfigError) for k, v in merged.items()}
    values.setdefault("context_window", catalog.CONTEXT_WINDOWS.get(label))
    return ModelSettings(provider=provider, model=model_id, **values)


def _apply_overrides(mix: Mix, o: Overrides, providers) -> Mix:
    def spec_model(spec: str, template: ModelSettings | None) -> ModelSettings:
        provider, model_id = split_spec(spec, providers)
        if provider not in providers:
            raise UsageError(f"unknown provider '{provider}' in model '{spec}'")
        label = f"{provider}:{model_id}"
        return ModelSettings(
            provider=provider,
            model=model_id,
            context_window=catalog.CONTEXT_WINDOWS.get(label),
            temperature=template.temperature if template else None,
            max_tokens=template.max_tokens if template else None,
            system=template.system if template else None,
        )

    template = mix.layers[0][0] if mix.layers else mix.aggregator
    layers = mix.layers
    if o.references is not None:
        refs = tuple(spec_model(s, template) for s in o.references)
        if not refs:
            raise UsageError("--reference-models: give at least one model")
        layers = (refs,) * max(len(layers), 1)
    if o.rounds is not None:
        layers = tuple(_stretch(list(layers), o.rounds)) if layers else ()
        if o.rounds and not layers:
            raise UsageError("--rounds: this mix has no reference models; add some with -r")
    aggregator = spec_model(o.aggregator, mix.aggregator) if o.aggregator else mix.aggregator
    common = dict(temperature=o.temperature, max_tokens=o.max_tokens, system=o.system, timeout=o.timeout)
    layers = tuple(
        tuple(m.with_(**common).with_(max_tokens=o.reference_max_tokens) for m in layer) for layer in layers
    )
    return replace(mix, layers=layers, aggregator=aggregator.with_(**common))


def _stretch(layers: list, rounds: int) -> list:
    """Exactly `rounds` layers: cut extra ones, or repeat the last one."""
    if rounds <= len(layers):
        return layers[:rounds]
    return layers + [layers[-1]] * (rounds - len(layers))


def _run_options(options: RunOptions, defaults: Mapping, o: Overrides, where: str) -> RunOptions:
    names = {f.name for f in fields(RunOptions)} - {"extra"}
    changes = {k: defaults[k] for k in names if k in defaults}
    for k in names:
        value = getattr(o, k, None)
        if value is not None:
            changes[k] = value
    checked = {k: _check_value(k, v, f"config error in {where}: [defaults]", ConfigError) for k, v in changes.items()}
    return replace(options, **checked)


def _pricing(config: Mapping, where: str) -> dict[str, tuple[float, float]]:
    prices = {}
    for label, table in config.get("pricing", {}).items():
        here = f"config error in {where}: [pricing.\"{label}\"]"
        if not isinstance(table, dict) or set(table) - {"input", "output"}:
            raise ConfigError(f"{here}: expected a table with input and output ($ per million tokens)")
        prices[label] = (
            _check_value("price", table.get("input", 0.0), here, ConfigError),
            _check_value("price", table.get("output", 0.0), here, ConfigError),
        )
    return prices


# ---------------------------------------------------------------- validation

# name -> (type, minimum, maximum, what a user should give)
_RULES: dict[str, tuple[type, float | None, float | None, str]] = {
    "temperature": (float, 0.0, 2.0, "a number from 0 to 2"),
    "max_tokens": (int, 1, None, "a whole number of at least 1"),
    "reference_max_tokens": (int, 1, None, "a whole number of at least 1"),
    "timeout": (float, 0.001, None, "a number of seconds above 0"),
    "weight": (float, 0.0, None, "a number of at least 0"),
    "seed": (int, None, None, "a whole number"),
    "context_window": (int, 256, None, "a whole number of at least 256"),
    "rounds": (int, 0, 10, "a whole number from 0 to 10"),
    "retries": (int, 0, 10, "a whole number from 0 to 10"),
    "backoff": (float, 0.0, 60.0, "a number of seconds from 0 to 60"),
    "min_proposers": (int, 1, None, "a whole number of at least 1"),
    "proposer_deadline": (float, 0.0, None, "a number of seconds of at least 0"),
    "concurrency": (int, 1, None, "a whole number of at least 1"),
    "price": (float, 0.0, None, "a number of dollars of at least 0"),
}


def _check_value(name: str, value, where: str, error=UsageError, label: str | None = None):
    """Check one setting; `label` names it in the message (default: the setting's own name)."""
    label = label or name
    if name == "system":
        if not isinstance(value, str):
            raise error(f"{where}: {label}: expected a string")
        return value
    if name in ("fallback", "multi_turn", "shuffle"):
        if not isinstance(value, bool):
            raise error(f"{where}: {label}: expected true or false, got {value!r}")
        return value
    rule = _RULES.get(name)
    if rule is None:
        return value
    kind, low, high, expected = rule
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        ok_type = ok_type and float(value).is_integer()
    if not ok_type or (low is not None and value < low) or (high is not None and value > high):
        raise error(f"{where}: {label}: expected {expected}, got {value!r}")
    return kind(value)


def _int(value, where: str, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"config error in {where}: expected a whole number of at least {low}, got {value!r}")
    return value


def _check_flags(o: Overrides) -> None:
    for name in ("temperature", "max_tokens", "reference_max_tokens", "timeout", "rounds", "retries",
                 "min_proposers", "proposer_deadline", "concurrency"):
        value = getattr(o, name)
        if value is not None:
            _check_value(name, value, "invalid value", UsageError, label="--" + name.replace("_", "-"))


def _check_shape(data: Mapping, path: Path) -> None:
    known = {"defaults", "providers", "mixes", "pricing", "local"}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"config error in {path}: unknown section '{key}' (known: {', '.join(sorted(known))})")
        if not isinstance(value, dict):
            raise ConfigError(f"config error in {path}: '{key}' must be a table")
