"""API keys saved by `moa keys set`: one JSON file in the user data dir, readable by its owner only.

A key in the environment (or a .env file) always wins over a saved one (providers.find_key).
"""

from __future__ import annotations

import json
import os

from . import paths
from ..errors import ConfigError


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
    """Add or replace one provider's key, keeping the others. The file is replaced atomically and
    is never readable by anyone else, not even briefly."""
    data = load_keys()  # a broken key file stops here: nothing saved is thrown away
    data[provider] = key
    path = paths.keys_file()
    paths.ensure_data_dir()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # a fresh file, created 0600
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def delete_key(provider: str) -> bool:
    """Forget one provider's saved key; False when none was saved. Replaced atomically, 0600."""
    data = load_keys()
    if provider not in data:
        return False
    del data[provider]
    path = paths.keys_file()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True
