"""Flags + environment + .env + TOML config -> one immutable Settings.

Layers, lowest first: built-in defaults, `[defaults]`, the mix's own values, its per-model
tables (`[mixes.NAME.models."provider:model"]`), the model entry itself (an inline table in
`layers`), then command-line flags. Built-in and user mixes share one resolver, so a mix is
only data (see builtin_mixes.py).

Every problem in a config file is one ConfigError line naming the file, the key and what was
expected (exit code 2). The file is only ever read, never rewritten.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, UsageError
from .. import strategies
from ..providers import (BUILTIN_PROVIDERS, KINDS, PROVIDER_NAME, ProviderSpec, check_base_url, find_key,
                         split_spec)
from . import builtin_mixes, keystore, model_facts
from .schema import (DEFAULTS_KEYS, ENV_NAME, MIX_KEYS, MODEL_KEYS, PROVIDER_KEYS, RUN_OPTION_KEYS, Mix,
                     ModelSettings, RunOptions)
from .options import MODEL_OPTIONS
from .settings import Overrides, Settings
from .toml_write import toml_key
from .validate import check_flags, check_shape, check_value, one_line, show


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
    check_shape(config, where)
    providers = providers_of(config, where)
    defaults = _defaults(config, where)
    prices = {**model_facts.BUILTIN_PRICES, **_pricing(config, providers, where)}
    local_models = _local_models(config, where)
    user_mixes = config.get("mixes", {})
    known = {**builtin_mixes.BUILTIN_MIXES, **user_mixes}
    # Every user mix is checked now, so a broken one is reported before any call is made.
    for name, data in user_mixes.items():
        _resolve_mix(name, data, defaults, providers, _mix_where(name, user_mixes, where))
    if "mix" in defaults and defaults["mix"] not in known:
        raise ConfigError(
            f"config error in {where}: [defaults] mix: unknown mix '{defaults['mix']}'; "
            f"known mixes: {', '.join(sorted(known))}"
        )
    check_flags(overrides)
    if overrides.mix is not None and overrides.mix not in known:
        raise UsageError(f"unknown mix '{overrides.mix}'; known mixes: {', '.join(sorted(known))}")

    name = overrides.mix or defaults.get("mix") or builtin_mixes.DEFAULT_MIX
    notices: list[str] = []
    standin: str | None = None
    # The user asked for nothing in particular and the default mix has no key: run the offline
    # local mix instead, and say so. Never when a mix or models were chosen (flags or [defaults]).
    if not overrides.picks_models() and "mix" not in defaults and builtin_mixes.LOCAL_MIX in known:
        plain = _resolve_mix(name, known[name], defaults, providers, _mix_where(name, user_mixes, where))
        missing = _missing_key(plain, providers, env, stored_keys)
        if missing is not None:
            variable = missing.api_key_env
            standin = (
                f"no {variable or 'key for ' + missing.name} set: using the offline '{builtin_mixes.LOCAL_MIX}' mix. "
                f"For the '{name}' mix, {'set ' + variable + ' or ' if variable else ''}"
                f"run `moa keys set {missing.name}`."
            )
            name = builtin_mixes.LOCAL_MIX

    mix_where = _mix_where(name, user_mixes, where)
    data, models_from_flags = _with_flag_models(name, known[name], overrides, providers)
    unused: list[str] = []
    mix = _resolve_mix(name, data, defaults, providers, mix_where, unused)
    if unused and not models_from_flags:
        notices.append(f"{mix_where} models.{toml_key(unused[0])} matches no model of the mix (a typo?)")
    mix = apply_flags(mix, overrides)
    if overrides.changes_models():
        mix = replace(mix, name=mix.describe())  # what runs is no longer the named mix as it stands
    options = _run_options(defaults, overrides)
    if base is not None:
        notices = [n for n in notices if n not in base.notices]  # said once is enough
        standin = None if standin == base.standin else standin
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
        standin=standin,
        overrides=overrides,
    )


def _mix_where(name: str, user_mixes: Mapping, where: str) -> str:
    return f"{where}: [mixes.{toml_key(name)}]" if name in user_mixes else f"built-in mix '{name}':"


def _missing_key(
    mix: Mix, providers: Mapping[str, ProviderSpec], env: Mapping[str, str], stored: Mapping[str, str] | None
) -> ProviderSpec | None:
    """The first provider of the mix that needs a key and has none (environment, .env or key file)."""
    stored = keystore.load_keys() if stored is None else stored
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


def providers_of(config: Mapping[str, Any], where: str) -> dict[str, ProviderSpec]:
    providers = dict(BUILTIN_PROVIDERS)
    for name, table in config.get("providers", {}).items():
        prefix = f"config error in {where}: [providers.{toml_key(name)}]"
        if not PROVIDER_NAME.fullmatch(name):
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
        if "base_url" in table:
            if not isinstance(base_url, str):
                raise ConfigError(f"{prefix} base_url: expected a URL starting with http:// or https://")
            try:
                check_base_url(base_url, f"{prefix} base_url")
            except UsageError as error:
                raise ConfigError(error.message) from None
        if not builtin and kind == "openai" and not base_url:
            raise ConfigError(f"{prefix} base_url: missing; a new provider needs the URL of its OpenAI-compatible API")
        api_key_env = table.get("api_key_env", builtin.api_key_env if builtin else None)
        if "api_key_env" in table and (not isinstance(api_key_env, str) or not ENV_NAME.fullmatch(api_key_env)):
            # Never echo the value: people paste the key itself here.
            raise ConfigError(
                f"{prefix} api_key_env: expected the name of an environment variable (like MYLAB_API_KEY), "
                "not the key itself"
            )
        headers = table.get("headers", dict(builtin.headers) if builtin else {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ConfigError(f"{prefix} headers: expected a table of strings, like headers = {{ \"X-Team\" = \"lab\" }}")
        if not all(v.isprintable() and str(k).isprintable() and str(k).strip() for k, v in headers.items()):
            raise ConfigError(f"{prefix} headers: a header name or value contains a line break or control character")
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
            values["context_window"] = model_facts.CONTEXT_WINDOWS.get(label)
        return ModelSettings(provider=provider, model=model_id, **values)

    layers = tuple(
        tuple(model(e, f"layers[{i}][{j}]" if "layers" in data else f"references[{j}]", ref_defaults)
              for j, e in enumerate(layer))
        for i, layer in enumerate(layers_data)
    )
    aggregator = model(data["aggregator"], "aggregator", model_defaults)

    strategy = data.get("strategy", strategies.DEFAULT)
    problem = strategies.problem(strategy)  # any registered strategy, or a template
    if problem is not None:
        fail("strategy", f"{problem}, got {show(strategy)}")
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


def apply_flags(mix: Mix, o: Overrides) -> Mix:
    """Flags that set a value for every model (options of scope MODEL) go on top of everything else."""
    given = [(option, getattr(o, option.name)) for option in MODEL_OPTIONS if getattr(o, option.name) is not None]
    every = {option.model_field: value for option, value in given if not option.references_only}
    references = {option.model_field: value for option, value in given if option.references_only}
    layers = tuple(tuple(m.with_(**every).with_(**references) for m in layer) for layer in mix.layers)
    return replace(mix, layers=layers, aggregator=mix.aggregator.with_(**every))


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
            changes[k] = value  # checked by validate.check_flags
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
