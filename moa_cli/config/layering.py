"""The last layer: what the flags (an Overrides) set goes on top of the checked config.

Lowest first: built-in defaults, [defaults], the mix's own values, its per-model tables, the
model entry itself (all in sections/mixes.py), then the flags, here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from .options import MIX_KEY_OPTIONS, MODEL_OPTIONS
from .schema import RUN_OPTION_KEYS, Mix, RunOptions


def apply_flags(mix: Mix, o) -> Mix:
    """Flags that set a value for every model (options of scope MODEL) go on top of everything
    else, and so do flags of the mix's own keys (`--strategy`): a session's stored mix, restored
    with `Settings.with_mix`, still runs the way the flags asked. (Their values were checked when
    the flags were first resolved against a mix, sections/mixes.py.)"""
    mix = replace(mix, **{k.name: getattr(o, k.name) for k in MIX_KEY_OPTIONS if getattr(o, k.name) is not None})
    given = [(option, getattr(o, option.name)) for option in MODEL_OPTIONS if getattr(o, option.name) is not None]
    every = {option.model_field: value for option, value in given if not option.references_only}
    references = {option.model_field: value for option, value in given if option.references_only}
    layers = tuple(tuple(m.with_(**every).with_(**references) for m in layer) for layer in mix.layers)
    return replace(mix, layers=layers, aggregator=mix.aggregator.with_(**every))


def run_options(defaults: Mapping[str, Any], o) -> RunOptions:
    """RunOptions: the built-in defaults, then [defaults] (checked), then the flags (checked)."""
    changes = {k: defaults[k] for k in RUN_OPTION_KEYS if k in defaults}
    changes.update({k: getattr(o, k) for k in RUN_OPTION_KEYS if getattr(o, k, None) is not None})
    return replace(RunOptions(), **changes)
