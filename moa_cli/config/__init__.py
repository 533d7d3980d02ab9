"""Configuration: flags + environment + .env + TOML -> one immutable Settings.

One loader (`load_settings`), one schema (`schema.py`), one resolver (`resolve.py`). The rest of
moa imports from here:

    loader.py         reads the environment, .env and the config file
    options.py        the option table: every setting's name, type, bounds, help, default, scope
    schema.py         the values settings resolve to (Mix, ModelSettings, RunOptions); config keys
    validate.py       checks single values against the schema
    resolve.py        layers everything into Settings
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
    "load_config_file": "loader", "load_env": "loader", "load_providers": "loader", "load_settings": "loader",
    "resolve": "resolve", "secret_values": "redacted_view",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
