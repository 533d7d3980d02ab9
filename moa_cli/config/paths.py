"""Where moa keeps user state. `MOA_HOME` relocates all of it at once (handy for tests)."""

from __future__ import annotations

import os
from pathlib import Path


def _home() -> Path | None:
    value = os.environ.get("MOA_HOME")
    return Path(value).expanduser() if value else None


def config_file() -> Path:
    if os.environ.get("MOA_CONFIG"):
        return Path(os.environ["MOA_CONFIG"]).expanduser()
    home = _home()
    if home:
        return home / "config.toml"
    import platformdirs

    return Path(platformdirs.user_config_dir("moa", appauthor=False)) / "config.toml"


def data_dir() -> Path:
    home = _home()
    if home:
        return home
    import platformdirs

    return Path(platformdirs.user_data_dir("moa", appauthor=False))


def ensure_data_dir() -> Path:
    """The data directory, created 0700 if it is missing (it holds transcripts and keys)."""
    from ..files import make_private_dir

    return make_private_dir(data_dir())


def sessions_db() -> Path:
    return data_dir() / "sessions.db"


def keys_file() -> Path:
    return data_dir() / "keys.json"


def history_file() -> Path:
    return data_dir() / "input_history"
