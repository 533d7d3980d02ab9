"""API keys saved by `moa keys set`: one JSON file in the user data dir, readable by its owner only."""

from __future__ import annotations

import json
import os

from . import paths
from .errors import ConfigError


def load_keys() -> dict[str, str]:
    path = paths.keys_file()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ConfigError(f"cannot read the key file {path}: remove it and run `moa keys set` again") from None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save_key(provider: str, key: str) -> None:
    data = load_keys()
    data[provider] = key
    path = paths.keys_file()
    paths.ensure_data_dir()
    tmp = path.with_suffix(".tmp")
    # Created 0600 from the start, so the key is never readable by others, not even briefly.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
