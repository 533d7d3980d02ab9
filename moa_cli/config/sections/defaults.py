"""[defaults]: values for every mix, model and turn (the option table says which keys exist)."""

from __future__ import annotations

from typing import Any, Mapping

from ...errors import ConfigError
from ..schema import DEFAULTS_KEYS
from ..validate import check_value, one_line, show


def check(config: Mapping[str, Any], where: str) -> dict[str, Any]:
    prefix = f"config error in {where}: [defaults]"
    checked = {}
    for key, value in config.get("defaults", {}).items():
        if key not in DEFAULTS_KEYS:
            raise ConfigError(
                one_line(f"{prefix} unknown key '{key}' (expected one of: {', '.join(sorted(DEFAULTS_KEYS))})")
            )
        if key == "mix" and (not isinstance(value, str) or not value):
            raise ConfigError(f"{prefix} mix: expected the name of a mix (a string), got {show(value)}")
        checked[key] = check_value(key, value, prefix, ConfigError)
    return checked
