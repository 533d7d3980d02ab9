"""[mixes.NAME]: which models answer in which round, which one aggregates, and their settings.

A model's values are layered, lowest first: [defaults], the mix's own values, its per-model
tables (`[mixes.NAME.models."provider:model"]`), the model entry itself (an inline table in
`layers`). Built-in mixes are the same data (builtin_mixes.py) and go through the same checks.
"""

from __future__ import annotations

from typing import Any, Mapping

from ...errors import ConfigError, UsageError
from ... import strategies
from ...providers import ProviderSpec, split_spec
from .. import model_facts
from ..options import MIX_KEY_OPTIONS, MODEL_OPTIONS
from ..schema import MIX_KEYS, MODEL_KEYS, Mix, ModelSettings
from ..toml_write import toml_key
from ..validate import check_value, one_line, show


def check(name: str, data: Any, defaults: Mapping[str, Any], providers: Mapping[str, ProviderSpec], where: str,
          unused: list[str] | None = None) -> Mix:
    """One mix table -> Mix. `where` starts every error ("FILE: [mixes.NAME]"). Labels of
    per-model tables that match no model of the mix are added to `unused` (a typo, or settings
    kept for models one may pick with -r)."""
    reader = _MixReader(data, defaults, providers, where)
    layers_data = reader.layers()
    layers = tuple(
        tuple(reader.model(e, f"layers[{i}][{j}]" if "layers" in data else f"references[{j}]", reader.ref_defaults)
              for j, e in enumerate(layer))
        for i, layer in enumerate(layers_data)
    )
    aggregator = reader.model(data["aggregator"], "aggregator", reader.model_defaults)
    strategy = data.get("strategy", strategies.DEFAULT)
    problem = MIX_VALUE_PROBLEMS["strategy"](strategy)
    if problem is not None:
        reader.fail("strategy", f"{problem}, got {show(strategy)}")
    shuffle = check_value("shuffle", data.get("shuffle", False), reader.prefix, ConfigError)
    if unused is not None:
        unused.extend(sorted(set(reader.per_model) - reader.used))
    return Mix(name=name, layers=layers, aggregator=aggregator, strategy=strategy, shuffle=shuffle,
               description=data.get("description", ""))


# Why a value of a mix key is not allowed ("expected ..."), or None: for keys whose allowed values
# are not a plain rule of the option table. Used for config files and for flags (MIX_KEY_OPTIONS).
MIX_VALUE_PROBLEMS = {
    "strategy": strategies.problem,  # any registered strategy, or a template
}


class _MixReader:
    """Reads one mix table; every problem is one ConfigError starting with `where`."""

    def __init__(self, data: Any, defaults: Mapping[str, Any], providers: Mapping[str, ProviderSpec], where: str):
        self.data, self.providers, self.where = data, providers, where
        self.prefix = f"config error in {where}"
        if not isinstance(data, dict):
            self.fail("", "expected a table with layers (or references) and an aggregator")
        unknown = set(data) - MIX_KEYS
        if unknown:
            self.fail(sorted(unknown)[0], f"unknown key (expected one of: {', '.join(sorted(MIX_KEYS))})")
        for key in ("description", "source"):
            if key in data and not isinstance(data[key], str):
                self.fail(key, "expected a string")
        self.model_defaults = {k: v for k, v in defaults.items() if k in MODEL_KEYS}
        # Options only reference models get ([defaults] reference_max_tokens) are their default.
        self.ref_defaults = {**self.model_defaults, **{o.model_field: defaults[o.name] for o in MODEL_OPTIONS
                                                       if o.references_only and o.name in defaults}}
        self.mix_level = {k: check_value(k, data[k], self.prefix, ConfigError) for k in MODEL_KEYS if k in data}
        self.per_model = per_model_tables(data.get("models", {}), providers, self.prefix)
        self.used: set[str] = set()

    def fail(self, key: str, problem: str):
        raise ConfigError(one_line(f"{self.prefix} {key}: {problem}" if key else f"{self.prefix} {problem}"))

    def layers(self) -> list[list]:
        """The model entries of each reference round, `rounds` applied."""
        data, fail = self.data, self.fail
        rounds = check_value("rounds", data["rounds"], self.prefix, ConfigError) if "rounds" in data else None
        if "layers" in data and "references" in data:
            fail("references", "give either layers or references (with rounds), not both")
        if "layers" in data:
            layers = data["layers"]
            if not isinstance(layers, list) or not all(isinstance(x, list) for x in layers):
                fail("layers", 'expected a list of lists of models, like layers = [["together:a", "together:b"]]')
            for i, layer in enumerate(layers):
                if not layer:
                    fail(f"layers[{i}]", "expected at least one model in each layer")
            if rounds is not None:
                if rounds > 0 and not layers:
                    fail("rounds", f"rounds = {rounds} but layers is empty")
                layers = stretch(layers, rounds)
        elif "references" in data:
            refs = data["references"]
            if not isinstance(refs, list) or not refs:
                fail("references", 'expected a non-empty list of models, like references = ["together:a", "together:b"]')
            layers = [refs] * (1 if rounds is None else rounds)
        else:
            if rounds:
                fail("rounds", f"rounds = {rounds} but the mix has no reference models (layers or references)")
            layers = []
        if "aggregator" not in data:
            if not layers:
                fail("", "has no models: expected layers (or references) and an aggregator")
            fail("aggregator", 'missing; expected a model, like aggregator = "together:deepseek-ai/DeepSeek-V3"')
        return layers

    def model(self, entry: Any, key: str, defaults_here: Mapping[str, Any]) -> ModelSettings:
        if isinstance(entry, str):
            entry = {"model": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("model"), str) or not entry["model"].strip():
            self.fail(key, 'expected a model name or an inline table like { model = "together:x", temperature = 0.7 }')
        bad = set(entry) - MODEL_KEYS - {"model"}
        if bad:
            self.fail(key, f"unknown model setting '{sorted(bad)[0]}' (expected one of: {', '.join(sorted(MODEL_KEYS))})")
        try:
            provider, model_id = split_spec(entry["model"], self.providers, strict=True)
        except UsageError as error:
            self.fail(key, f"{error.message}; define it in a [providers.NAME] table")
        label = f"{provider}:{model_id}"
        self.used.add(label)
        inline = {k: check_value(k, v, f"{self.prefix} {key}", ConfigError) for k, v in entry.items() if k != "model"}
        values = {**defaults_here, **self.mix_level, **self.per_model.get(label, {}), **inline}
        if values.get("context_window") is None:
            values["context_window"] = model_facts.CONTEXT_WINDOWS.get(label)
        return ModelSettings(provider=provider, model=model_id, **values)


def per_model_tables(tables: Any, providers: Mapping[str, ProviderSpec], prefix: str) -> dict[str, dict]:
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


def with_flag_models(name: str, data: Mapping[str, Any], o, providers) -> tuple[Mapping[str, Any], bool]:
    """The mix's data with -r/-a/--rounds and the flags of its own keys (`--strategy`; of Overrides
    `o`) written into it, so flag-chosen models still get the mix's settings, [defaults] and
    per-model tables. Returns (data, whether models changed)."""
    keys = {option: getattr(o, option.name) for option in MIX_KEY_OPTIONS if getattr(o, option.name) is not None}
    if o.references is None and o.aggregator is None and o.rounds is None and not keys:
        return data, False
    data = dict(data)
    for option, value in keys.items():
        check = MIX_VALUE_PROBLEMS.get(option.name)
        problem = check(value) if check else None
        if problem is not None:
            raise UsageError(f"{option.flag}: {problem}")
        data[option.name] = value
    if o.references is not None:
        if not o.references:
            raise UsageError("--reference-models: give at least one model")
        # Canonical PROVIDER:MODEL, so the strict config checks accept any flag spelling.
        refs = [":".join(split_spec(spec, providers)) for spec in o.references]
        rounds = layer_count(data)
        data.pop("references", None)
        data.pop("rounds", None)
        data["layers"] = [refs] * max(rounds, 1)
    if o.aggregator is not None:
        data["aggregator"] = ":".join(split_spec(o.aggregator, providers))
    if o.rounds is not None:
        if o.rounds > 0 and layer_count(data) == 0:
            raise UsageError(f"--rounds: the mix '{name}' has no reference models; add some with -r")
        data["rounds"] = o.rounds
    return data, o.references is not None or o.aggregator is not None


def layer_count(data: Mapping[str, Any]) -> int:
    """How many reference rounds a (checked) mix table describes."""
    if data.get("layers"):
        return int(data["rounds"]) if "rounds" in data else len(data["layers"])
    if data.get("references"):
        return int(data.get("rounds", 1))
    return 0


def stretch(layers: list, rounds: int) -> list:
    """Exactly `rounds` layers: cut extra ones, or repeat the last one."""
    if rounds <= len(layers):
        return layers[:rounds]
    return layers + [layers[-1]] * (rounds - len(layers))
