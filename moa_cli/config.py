"""Flags + environment + .env + TOML config -> one immutable Settings.

Layers, lowest first: built-in defaults, `[defaults]`, the mix's own values, its per-model
tables (`[mixes.NAME.models."provider:model"]`), the model entry itself (an inline table in
`layers`), then command-line flags. Built-in and user mixes share one resolver, so a mix is
only data (see mixes.py).

Every problem in a config file is one ConfigError line naming the file, the key and what was
expected (exit code 2). The file is only ever read, never rewritten.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from . import catalog, keys, mixes, paths
from .errors import ConfigError, UsageError
from .validate import check_value, one_line, show, toml_key
from .models import Mix, ModelSettings, RunOptions
from .providers import BUILTIN_PROVIDERS, KINDS, ProviderSpec, find_key, header_secrets, split_spec

MODEL_KEYS = frozenset({"temperature", "max_tokens", "system", "timeout", "weight", "seed", "context_window"})
RUN_OPTION_KEYS = frozenset(f.name for f in fields(RunOptions)) - {"extra"}
DEFAULTS_KEYS = frozenset({"mix", "reference_max_tokens"}) | MODEL_KEYS | RUN_OPTION_KEYS
MIX_KEYS = frozenset({"description", "source", "layers", "references", "aggregator", "rounds", "strategy",
                      "shuffle", "models"}) | MODEL_KEYS
PROVIDER_KEYS = frozenset({"kind", "base_url", "api_key_env", "headers", "description", "key_required"})
SECTIONS = ("defaults", "providers", "mixes", "pricing", "local")
STRATEGIES = ("synthesize", "rank", "coding")

_PROVIDER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


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

    def merged(self, newer: "Overrides") -> "Overrides":
        """These overrides with `newer`'s given values on top. Choosing a new mix drops the
        earlier -r/-a/--rounds, which described the old mix."""
        base = self
        if newer.mix is not None:
            base = replace(base, references=None, aggregator=None, rounds=None)
        return replace(base, **{f.name: getattr(newer, f.name) for f in fields(newer)
                                if getattr(newer, f.name) is not None})


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
    overrides: Overrides = Overrides()  # the flags that produced these settings

    def mix_names(self) -> list[str]:
        return sorted({*mixes.BUILTIN_MIXES, *self.config.get("mixes", {})})

    def mix_data(self, name: str) -> Mapping[str, Any]:
        """The raw table of a mix: the user's `[mixes.NAME]` wins over a built-in of that name."""
        user = self.config.get("mixes", {})
        return user[name] if name in user else mixes.BUILTIN_MIXES[name]

    def mix_origin(self, name: str) -> str:
        return str(self.config_path or "config") if name in self.config.get("mixes", {}) else "built-in"

    def default_mix_name(self) -> str:
        return self.config.get("defaults", {}).get("mix", mixes.DEFAULT_MIX)

    def with_overrides(self, overrides: Overrides) -> "Settings":
        """A new Settings after more flags (the REPL's slash commands use this): the new values
        go on top of the ones given so far, and everything is resolved again."""
        return resolve(self.overrides.merged(overrides), self.env, self.config, self.config_path, base=self)


# ---------------------------------------------------------------- loading


def load_env(cwd: Path | None = None) -> dict[str, str]:
    """The environment with a .env file under it: the real environment wins."""
    from dotenv import dotenv_values

    dotenv_path = (cwd or Path.cwd()) / ".env"
    values = {k: v for k, v in dotenv_values(dotenv_path).items() if v is not None} if dotenv_path.is_file() else {}
    return {**values, **os.environ}


def load_config_file(path: Path) -> dict:
    """The parsed config file ({} when there is none). Read only: it is never rewritten."""
    if not path.exists():
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(one_line(f"config error in {path}: invalid TOML: {error}")) from None
    except UnicodeDecodeError:
        raise ConfigError(f"config error in {path}: invalid TOML: the file is not UTF-8 text") from None
    except OSError as error:
        raise ConfigError(f"config error in {path}: cannot read it: {error.strerror}") from None
    _check_shape(data, str(path))
    return data


def load_settings(overrides: Overrides = Overrides(), cwd: Path | None = None) -> Settings:
    env = load_env(cwd)
    path = paths.config_file()
    return resolve(overrides, env, load_config_file(path), path)


def load_providers(config: Mapping[str, Any], config_path: Path | None = None) -> dict[str, ProviderSpec]:
    """Built-in providers plus the config's `[providers.NAME]` tables, checked."""
    where = str(config_path) if config_path else "config"
    _check_shape(config, where)
    return _providers(config, where)


# ---------------------------------------------------------------- resolving


def resolve(
    overrides: Overrides,
    env: Mapping[str, str],
    config: Mapping[str, Any],
    config_path: Path | None = None,
    base: Settings | None = None,
    stored_keys: Mapping[str, str] | None = None,
) -> Settings:
    """Everything a turn needs, from flags (`overrides`), the environment and the parsed config.

    `stored_keys` are the keys saved by `moa keys set` (read from the key file when None); they
    only decide whether the default mix can run or the offline local mix stands in for it.
    """
    where = str(config_path) if config_path else "config"
    _check_shape(config, where)
    providers = _providers(config, where)
    defaults = _defaults(config, where)
    prices = {**catalog.BUILTIN_PRICES, **_pricing(config, providers, where)}
    local_models = _local_models(config, where)
    user_mixes = config.get("mixes", {})
    known = {**mixes.BUILTIN_MIXES, **user_mixes}
    # Every user mix is checked now, so a broken one is reported before any call is made.
    for name, data in user_mixes.items():
        _resolve_mix(name, data, defaults, providers, _mix_where(name, user_mixes, where))
    if "mix" in defaults and defaults["mix"] not in known:
        raise ConfigError(
            f"config error in {where}: [defaults] mix: unknown mix '{defaults['mix']}'; "
            f"known mixes: {', '.join(sorted(known))}"
        )
    _check_flags(overrides)
    if overrides.mix is not None and overrides.mix not in known:
        raise UsageError(f"unknown mix '{overrides.mix}'; known mixes: {', '.join(sorted(known))}")

    name = overrides.mix or defaults.get("mix") or mixes.DEFAULT_MIX
    notices: list[str] = []
    # The user asked for nothing in particular and the default mix has no key: run the offline
    # local mix instead, and say so. Never when a mix or models were chosen (flags or [defaults]).
    if not overrides.picks_models() and "mix" not in defaults and mixes.LOCAL_MIX in known:
        plain = _resolve_mix(name, known[name], defaults, providers, _mix_where(name, user_mixes, where))
        missing = _missing_key(plain, providers, env, stored_keys)
        if missing is not None:
            variable = missing.api_key_env
            notices.append(
                f"no {variable or 'key for ' + missing.name} set: using the offline '{mixes.LOCAL_MIX}' mix. "
                f"For the '{name}' mix, {'set ' + variable + ' or ' if variable else ''}"
                f"run `moa keys set {missing.name}`."
            )
            name = mixes.LOCAL_MIX

    mix_where = _mix_where(name, user_mixes, where)
    data, models_from_flags = _with_flag_models(name, known[name], overrides, providers)
    unused: list[str] = []
    mix = _resolve_mix(name, data, defaults, providers, mix_where, unused)
    if unused and not models_from_flags:
        notices.append(f"{mix_where} models.{toml_key(unused[0])} matches no model of the mix (a typo?)")
    mix = _apply_flags(mix, overrides)
    options = _run_options(defaults, overrides)
    if base is not None:
        notices = [n for n in notices if n not in base.notices]  # said once is enough
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
        overrides=overrides,
    )


def _mix_where(name: str, user_mixes: Mapping, where: str) -> str:
    return f"{where}: [mixes.{toml_key(name)}]" if name in user_mixes else f"built-in mix '{name}':"


def _missing_key(
    mix: Mix, providers: Mapping[str, ProviderSpec], env: Mapping[str, str], stored: Mapping[str, str] | None
) -> ProviderSpec | None:
    """The first provider of the mix that needs a key and has none (environment, .env or key file)."""
    stored = keys.load_keys() if stored is None else stored
    for name in sorted(mix.providers()):
        spec = providers[name]
        if spec.key_required and find_key(spec, env, stored) is None:
            return spec
    return None


def _with_flag_models(
    name: str, data: Mapping[str, Any], o: Overrides, providers
) -> tuple[Mapping[str, Any], bool]:
    """The mix's data with -r/-a/--rounds written into it, so flag-chosen models still get the
    mix's settings, [defaults] and per-model tables. Returns (data, whether models changed)."""
    if o.references is None and o.aggregator is None and o.rounds is None:
        return data, False
    data = dict(data)
    if o.references is not None:
        if not o.references:
            raise UsageError("--reference-models: give at least one model")
        # Canonical PROVIDER:MODEL, so the strict config resolver below accepts any flag spelling.
        refs = [":".join(split_spec(spec, providers)) for spec in o.references]
        rounds = _layer_count(data)
        data.pop("references", None)
        data.pop("rounds", None)
        data["layers"] = [refs] * max(rounds, 1)
    if o.aggregator is not None:
        data["aggregator"] = ":".join(split_spec(o.aggregator, providers))
    if o.rounds is not None:
        if o.rounds > 0 and _layer_count(data) == 0:
            raise UsageError(f"--rounds: the mix '{name}' has no reference models; add some with -r")
        data["rounds"] = o.rounds
    return data, o.references is not None or o.aggregator is not None


def _layer_count(data: Mapping[str, Any]) -> int:
    """How many reference rounds a (checked) mix table describes."""
    if data.get("layers"):
        return int(data["rounds"]) if "rounds" in data else len(data["layers"])
    if data.get("references"):
        return int(data.get("rounds", 1))
    return 0


def _defaults(config: Mapping[str, Any], where: str) -> dict[str, Any]:
    table = config.get("defaults", {})
    prefix = f"config error in {where}: [defaults]"
    checked = {}
    for key, value in table.items():
        if key not in DEFAULTS_KEYS:
            raise ConfigError(
                one_line(f"{prefix} unknown key '{key}' (expected one of: {', '.join(sorted(DEFAULTS_KEYS))})")
            )
        if key == "mix":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{prefix} mix: expected the name of a mix (a string), got {show(value)}")
            checked[key] = value
        else:
            checked[key] = check_value(key, value, prefix, ConfigError)
    return checked


def _providers(config: Mapping[str, Any], where: str) -> dict[str, ProviderSpec]:
    providers = dict(BUILTIN_PROVIDERS)
    for name, table in config.get("providers", {}).items():
        prefix = f"config error in {where}: [providers.{toml_key(name)}]"
        if not _PROVIDER_NAME.fullmatch(name):
            raise ConfigError(
                f"{prefix} expected a provider name of letters, digits, '-' and '_' starting with a letter"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{prefix} expected a table (base_url, api_key_env, headers)")
        unknown = set(table) - PROVIDER_KEYS
        if unknown:
            key = sorted(unknown)[0]
            hint = (" (never put a key in the config: name its variable with api_key_env, or run "
                    f"`moa keys set {name}`)") if "key" in key.lower() else ""
            raise ConfigError(
                f"{prefix} unknown key '{key}' (expected one of: {', '.join(sorted(PROVIDER_KEYS))}){hint}"
            )
        builtin = BUILTIN_PROVIDERS.get(name)
        kind = table.get("kind", builtin.kind if builtin else "openai")
        if kind not in KINDS:
            raise ConfigError(f"{prefix} kind: expected one of {', '.join(KINDS)}, got {show(kind)}")
        base_url = table.get("base_url", builtin.base_url if builtin else None)
        if "base_url" in table and (not isinstance(base_url, str) or not base_url.startswith(("http://", "https://"))):
            raise ConfigError(f"{prefix} base_url: expected a URL starting with http:// or https://")
        if not builtin and kind == "openai" and not base_url:
            raise ConfigError(f"{prefix} base_url: missing; a new provider needs the URL of its OpenAI-compatible API")
        api_key_env = table.get("api_key_env", builtin.api_key_env if builtin else None)
        if "api_key_env" in table and (not isinstance(api_key_env, str) or not _ENV_NAME.fullmatch(api_key_env)):
            # Never echo the value: people paste the key itself here.
            raise ConfigError(
                f"{prefix} api_key_env: expected the name of an environment variable (like MYLAB_API_KEY), "
                "not the key itself"
            )
        headers = table.get("headers", dict(builtin.headers) if builtin else {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ConfigError(f"{prefix} headers: expected a table of strings, like headers = {{ \"X-Team\" = \"lab\" }}")
        key_required = table.get("key_required", api_key_env is not None)
        if not isinstance(key_required, bool):
            raise ConfigError(f"{prefix} key_required: expected true or false, got {show(key_required)}")
        description = table.get("description", builtin.description if builtin else "")
        if not isinstance(description, str):
            raise ConfigError(f"{prefix} description: expected a string")
        spec = builtin or ProviderSpec(name, kind)
        providers[name] = replace(
            spec,
            kind=kind,
            base_url=base_url,
            api_key_env=api_key_env,
            key_required=key_required,
            headers={str(k): v for k, v in headers.items()},
            description=description,
        )
    return providers


def _resolve_mix(
    name: str, data: Mapping[str, Any], defaults: Mapping[str, Any], providers, where: str,
    unused: list[str] | None = None,
) -> Mix:
    """One mix table -> Mix. `where` starts every error ("FILE: [mixes.NAME]"). Labels of
    per-model tables that match no model of the mix are added to `unused` (a typo, or settings
    kept for models one may pick with -r)."""

    def fail(key: str, problem: str):
        raise ConfigError(one_line(f"config error in {where} {key}: {problem}" if key
                                    else f"config error in {where} {problem}"))

    if not isinstance(data, dict):
        fail("", "expected a table with layers (or references) and an aggregator")
    unknown = set(data) - MIX_KEYS
    if unknown:
        fail(sorted(unknown)[0], f"unknown key (expected one of: {', '.join(sorted(MIX_KEYS))})")
    for key in ("description", "source"):
        if key in data and not isinstance(data[key], str):
            fail(key, "expected a string")
    prefix = f"config error in {where}"
    # [defaults] < the mix's own values < per-model tables < the entry itself.
    model_defaults = {k: v for k, v in defaults.items() if k in MODEL_KEYS}
    mix_level = {k: check_value(k, data[k], prefix, ConfigError) for k in MODEL_KEYS if k in data}
    ref_defaults = dict(model_defaults)
    if "reference_max_tokens" in defaults:
        ref_defaults["max_tokens"] = defaults["reference_max_tokens"]
    per_model = _per_model_tables(data.get("models", {}), providers, prefix)

    rounds = check_value("rounds", data["rounds"], prefix, ConfigError) if "rounds" in data else None
    if "layers" in data and "references" in data:
        fail("references", "give either layers or references (with rounds), not both")
    if "layers" in data:
        layers_data = data["layers"]
        if not isinstance(layers_data, list) or not all(isinstance(x, list) for x in layers_data):
            fail("layers", 'expected a list of lists of models, like layers = [["together:a", "together:b"]]')
        for i, layer in enumerate(layers_data):
            if not layer:
                fail(f"layers[{i}]", "expected at least one model in each layer")
        if rounds is not None:
            if rounds > 0 and not layers_data:
                fail("rounds", f"rounds = {rounds} but layers is empty")
            layers_data = _stretch(layers_data, rounds)
    elif "references" in data:
        refs = data["references"]
        if not isinstance(refs, list) or not refs:
            fail("references", 'expected a non-empty list of models, like references = ["together:a", "together:b"]')
        layers_data = [refs] * (1 if rounds is None else rounds)
    else:
        if rounds:
            fail("rounds", f"rounds = {rounds} but the mix has no reference models (layers or references)")
        layers_data = []
    if "aggregator" not in data:
        if not layers_data:
            fail("", "has no models: expected layers (or references) and an aggregator")
        fail("aggregator", 'missing; expected a model, like aggregator = "together:deepseek-ai/DeepSeek-V3"')

    used: set[str] = set()

    def model(entry, key: str, defaults_here: Mapping) -> ModelSettings:
        if isinstance(entry, str):
            entry = {"model": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("model"), str) or not entry["model"].strip():
            fail(key, 'expected a model name or an inline table like { model = "together:x", temperature = 0.7 }')
        bad = set(entry) - MODEL_KEYS - {"model"}
        if bad:
            fail(key, f"unknown model setting '{sorted(bad)[0]}' (expected one of: {', '.join(sorted(MODEL_KEYS))})")
        try:
            provider, model_id = split_spec(entry["model"], providers, strict=True)
        except UsageError as error:
            fail(key, f"{error.message}; define it in a [providers.NAME] table")
        label = f"{provider}:{model_id}"
        used.add(label)
        inline = {k: check_value(k, v, f"{prefix} {key}", ConfigError) for k, v in entry.items() if k != "model"}
        values = {**defaults_here, **mix_level, **per_model.get(label, {}), **inline}
        if values.get("context_window") is None:
            values["context_window"] = catalog.CONTEXT_WINDOWS.get(label)
        return ModelSettings(provider=provider, model=model_id, **values)

    layers = tuple(
        tuple(model(e, f"layers[{i}][{j}]" if "layers" in data else f"references[{j}]", ref_defaults)
              for j, e in enumerate(layer))
        for i, layer in enumerate(layers_data)
    )
    aggregator = model(data["aggregator"], "aggregator", model_defaults)

    strategy = data.get("strategy", "synthesize")
    if not isinstance(strategy, str) or (strategy not in STRATEGIES and "{answers}" not in strategy):
        fail("strategy", "expected synthesize, rank, coding, or a template containing {answers} "
                         f"(and optionally {{question}}), got {show(strategy)}")
    shuffle = check_value("shuffle", data.get("shuffle", False), prefix, ConfigError)
    if unused is not None:
        unused.extend(sorted(set(per_model) - used))
    return Mix(
        name=name,
        layers=layers,
        aggregator=aggregator,
        strategy=strategy,
        shuffle=shuffle,
        description=data.get("description", ""),
    )


def _per_model_tables(tables, providers, prefix: str) -> dict[str, dict]:
    if not isinstance(tables, dict):
        raise ConfigError(f'{prefix} models: expected tables like [mixes.NAME.models."together:x"]')
    out: dict[str, dict] = {}
    for spec, table in tables.items():
        here = f"{prefix} models.{toml_key(spec)}"
        if not isinstance(table, dict):
            raise ConfigError(f"{here}: expected a table of model settings ({', '.join(sorted(MODEL_KEYS))})")
        try:
            provider, model_id = split_spec(spec, providers, strict=True)
        except UsageError as error:
            raise ConfigError(one_line(f"{here}: {error.message}")) from None
        bad = set(table) - MODEL_KEYS
        if bad:
            raise ConfigError(one_line(
                f"{here}: unknown model setting '{sorted(bad)[0]}' (expected one of: {', '.join(sorted(MODEL_KEYS))})"
            ))
        out[f"{provider}:{model_id}"] = {k: check_value(k, v, here, ConfigError) for k, v in table.items()}
    return out


def _apply_flags(mix: Mix, o: Overrides) -> Mix:
    """Flags that set a value for every model go on top of everything else."""
    common = dict(temperature=o.temperature, max_tokens=o.max_tokens, system=o.system, timeout=o.timeout)
    layers = tuple(
        tuple(m.with_(**common).with_(max_tokens=o.reference_max_tokens) for m in layer) for layer in mix.layers
    )
    return replace(mix, layers=layers, aggregator=mix.aggregator.with_(**common))


def _stretch(layers: list, rounds: int) -> list:
    """Exactly `rounds` layers: cut extra ones, or repeat the last one."""
    if rounds <= len(layers):
        return layers[:rounds]
    return layers + [layers[-1]] * (rounds - len(layers))


def _run_options(defaults: Mapping, o: Overrides) -> RunOptions:
    changes = {k: defaults[k] for k in RUN_OPTION_KEYS if k in defaults}  # checked by _defaults
    for k in RUN_OPTION_KEYS:
        value = getattr(o, k, None)
        if value is not None:
            changes[k] = value  # checked by _check_flags
    return replace(RunOptions(), **changes)


def _pricing(config: Mapping, providers, where: str) -> dict[str, tuple[float, float]]:
    prices = {}
    for label, table in config.get("pricing", {}).items():
        here = f"config error in {where}: [pricing.{toml_key(label)}]"
        if not isinstance(table, dict) or set(table) != {"input", "output"}:
            raise ConfigError(f"{here} expected a table with input and output, in dollars per million tokens")
        try:
            provider, model_id = split_spec(label, providers, strict=True)
        except UsageError as error:
            raise ConfigError(one_line(f"{here} {error.message}")) from None
        prices[f"{provider}:{model_id}"] = (
            check_value("price", table["input"], here, ConfigError, label="input"),
            check_value("price", table["output"], here, ConfigError, label="output"),
        )
    return prices


def _local_models(config: Mapping, where: str) -> dict[str, str]:
    table = config.get("local", {})
    prefix = f"config error in {where}: [local]"
    if set(table) - {"models"}:
        raise ConfigError(f"{prefix} unknown key '{sorted(set(table) - {'models'})[0]}' (expected: models)")
    models = table.get("models", {})
    if not isinstance(models, dict) or not all(isinstance(v, str) for v in models.values()):
        raise ConfigError(f'{prefix} models: expected a table of names to GGUF paths, like tiny = "/path/model.gguf"')
    return {str(k): v for k, v in models.items()}


# ---------------------------------------------------------------- secrets


def secret_values(
    providers: Mapping[str, ProviderSpec], env: Mapping[str, str], stored: Mapping[str, str]
) -> tuple[str, ...]:
    """Every string that must never be printed: known keys and credential-like header values."""
    values: set[str] = set(stored.values())
    for spec in providers.values():
        if spec.api_key_env and env.get(spec.api_key_env):
            values.add(env[spec.api_key_env])
        for header, value in spec.headers.items():
            for name in _ENV_REF.findall(value):  # `${VAR}` in a header: its value is a secret too
                if env.get(name):
                    values.add(env[name])
            if not _ENV_REF.search(value):
                values.update(header_secrets({header: value}))
    return tuple(sorted((v for v in values if len(v) >= 4), key=len, reverse=True))


def _check_flags(o: Overrides) -> None:
    for name in ("temperature", "max_tokens", "reference_max_tokens", "timeout", "rounds", "retries",
                 "min_proposers", "proposer_deadline", "concurrency"):
        value = getattr(o, name)
        if value is not None:
            check_value(name, value, "invalid value for", UsageError, label="--" + name.replace("_", "-"))
    if o.mix is not None and not o.mix.strip():
        raise UsageError("--mix: expected a mix name (see `moa mixes`)")


def _check_shape(data: Mapping, where: str) -> None:
    for key, value in data.items():
        if key not in SECTIONS:
            raise ConfigError(one_line(
                f"config error in {where}: unknown section '{key}' (expected one of: {', '.join(SECTIONS)})"
            ))
        if not isinstance(value, dict):
            raise ConfigError(f"config error in {where}: {key}: expected a table, like [{key}]")
