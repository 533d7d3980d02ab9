"""Configuration: flags + environment + .env + TOML -> one immutable Settings.

A `ConfigSource` (the environment, .env and the config file) resolves flags into `Settings`, a
pure value; the source, not the value, is asked again when flags change. The rest of moa
imports from here:

    loader.py         reads the environment, .env and the config file
    source.py         ConfigSource: resolving, the mixes it defines and where each comes from
    sections/         one checker per config section: defaults, providers, mixes, pricing, local
    layering.py       the flags on top of the checked config
    options.py        the option table: every setting's name, type, bounds, help, default, scope
    schema.py         the values settings resolve to (Mix, ModelSettings, RunOptions); config keys
    validate.py       checks single values against their option's rule
    settings.py       the Settings and Overrides values
    builtin_mixes.py  the built-in mixes, as config data
    model_facts.py    prices and context windows of known models
    keystore.py       keys saved by `moa keys set`
    paths.py          where state lives (MOA_HOME relocates all of it)
    redacted_view.py  which strings are secrets; config data with them shown as ***
    toml_write.py     TOML output for `moa mixes show` and `moa config show`
"""

import importlib

# Where each name this package hands out lives. Imported on first use, so that importing one
# light module (options.py for the CLI's flags, paths.py) never loads the resolver.
_EXPORTS = {
    "Mix": "schema", "ModelSettings": "schema", "RunOptions": "schema",
    "Overrides": "settings", "Settings": "settings",
    "load_config_file": "loader", "load_env": "loader", "load_providers": "loader", "load_settings": "source",
    "load_source": "source", "ConfigSource": "source", "resolve": "source", "secret_values": "redacted_view",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
