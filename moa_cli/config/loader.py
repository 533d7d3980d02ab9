"""Reading what configures moa: the environment, a .env file and the TOML config file.

The config source (source.py) reads through these; nothing here ever writes a file.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError, UsageError
from ..files import read_small_file
from ..providers import ProviderSpec
from .validate import check_shape, one_line


def load_env(cwd: Path | None = None) -> dict[str, str]:
    """The environment with a .env file under it: the real environment wins."""
    from dotenv import dotenv_values

    dotenv_path = (cwd or Path.cwd()) / ".env"
    values = {}
    if dotenv_path.is_file():  # a regular file (never a FIFO), and a small one
        import io

        text = read_small_file(dotenv_path, "the .env file").decode("utf-8", "replace")
        values = {k: v for k, v in dotenv_values(stream=io.StringIO(text)).items() if v is not None}
    return {**values, **os.environ}


def load_config_file(path: Path) -> dict:
    """The parsed config file ({} when there is none). Read only: it is never rewritten."""
    if not path.exists() and not path.is_symlink():
        return {}
    try:
        data = tomllib.loads(read_small_file(path, "the config file").decode("utf-8"))
    except UsageError as error:
        raise ConfigError(f"config error: {error.message}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(one_line(f"config error in {path}: invalid TOML: {error}")) from None
    except UnicodeDecodeError:
        raise ConfigError(f"config error in {path}: invalid TOML: the file is not UTF-8 text") from None
    except RecursionError:
        raise ConfigError(f"config error in {path}: invalid TOML: nested too deeply") from None
    except ValueError:  # a number with thousands of digits: Python refuses to convert it
        raise ConfigError(f"config error in {path}: invalid TOML: a number is too long") from None
    check_shape(data, str(path))
    return data


def load_providers(config: Mapping[str, Any], config_path: Path | None = None) -> dict[str, ProviderSpec]:
    """Built-in providers plus the config's `[providers.NAME]` tables, checked."""
    from .sections import providers

    where = str(config_path) if config_path else "config"
    check_shape(config, where)
    return providers.check(config, where)
