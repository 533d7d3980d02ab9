"""API keys saved by `moa keys set`: one JSON file in the user data dir, readable by its owner only.

A key in the environment (or a .env file) always wins over a saved one (providers.find_key).
"""

from __future__ import annotations

import json

from . import paths
from ..errors import ConfigError, UsageError
from ..secrets import register_secrets
from ..files import read_small_file, write_atomic


def load_keys() -> dict[str, str]:
    path = paths.keys_file()
    if not path.exists():
        return {}
    try:
        data = json.loads(read_small_file(path, "the key file").decode("utf-8"))
    except (UsageError, ValueError, RecursionError):
        raise ConfigError(f"cannot read the key file {path}: remove it and run `moa keys set` again") from None
    if not isinstance(data, dict):
        return {}
    # Whitespace is never part of a key (a pasted newline would end up inside an HTTP header).
    keys = {str(k): v.strip() for k, v in data.items() if isinstance(v, str) and v.strip()}
    register_secrets(*keys.values())
    return keys


def save_key(provider: str, key: str) -> None:
    """Add or replace one provider's key, keeping the others. The file is replaced atomically and
    is never readable by anyone else, not even briefly."""
    data = load_keys()  # a broken key file stops here: nothing saved is thrown away
    data[provider] = key.strip()
    paths.ensure_data_dir()
    write_atomic(paths.keys_file(), json.dumps(data), mode=0o600)


def delete_key(provider: str) -> bool:
    """Forget one provider's saved key; False when none was saved. Replaced atomically, 0600."""
    data = load_keys()
    if provider not in data:
        return False
    del data[provider]
    write_atomic(paths.keys_file(), json.dumps(data), mode=0o600)
    return True
