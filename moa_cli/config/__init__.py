"""Configuration: flags + environment + .env + TOML -> one immutable Settings.

One loader (`load_settings`), one schema (`schema.py`), one resolver (`resolve.py`). The rest of
moa imports from here:

    loader.py         reads the environment, .env and the config file
    schema.py         what each setting is and its allowed range; Mix, ModelSettings, RunOptions
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

from .loader import load_config_file, load_env, load_providers, load_settings
from .redacted_view import secret_values
from .resolve import resolve
from .schema import Mix, ModelSettings, RunOptions
from .settings import Overrides, Settings

__all__ = [
    "Mix", "ModelSettings", "Overrides", "RunOptions", "Settings", "load_config_file", "load_env",
    "load_providers", "load_settings", "resolve", "secret_values",
]
