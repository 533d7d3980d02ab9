"""Checking single settings from config files and flags against the schema's rules.

Every check raises one line that says what was expected; strings a user gave are never echoed,
since a pasted API key would otherwise end up on screen.
"""

from __future__ import annotations

import math
from typing import Mapping

from ..errors import ConfigError, UsageError
from .schema import BOOLEAN_KEYS, RULES, SECTIONS


def check_value(name: str, value, prefix: str, error=UsageError, label: str | None = None):
    """Check one setting. The message is "<prefix> <label>: expected ..., got ..."."""
    label = label or name
    if name == "system":
        if not isinstance(value, str):
            raise error(f"{prefix} {label}: expected a string, got {show(value)}")
        return value
    if name in BOOLEAN_KEYS:
        if not isinstance(value, bool):
            raise error(f"{prefix} {label}: expected true or false, got {show(value)}")
        return value
    rule = RULES.get(name)
    if rule is None:
        return value
    kind, low, high, expected = rule
    # Compared without converting a huge int to float (that would raise OverflowError).
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and isinstance(value, float):
        ok = math.isfinite(value) and (kind is float or value.is_integer())
    if not ok or value < low or value > high:
        raise error(f"{prefix} {label}: expected {expected}, got {show(value)}")
    return kind(value)


def show(value) -> str:
    """A value for an error message. Strings are not echoed: they might be a pasted secret."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) >= 10**15:
        return f"a {len(str(abs(value)))}-digit number" if abs(value) < 10**4000 else "a huge number"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def one_line(message: str) -> str:
    return " ".join(message.split())


def check_flags(o) -> None:
    """Every numeric flag of `o` (an Overrides) against its rule in the schema."""
    for name in RULES:
        value = getattr(o, name, None)
        if value is not None:
            check_value(name, value, "invalid value for", UsageError, label="--" + name.replace("_", "-"))
    if o.mix is not None and not o.mix.strip():
        raise UsageError("--mix: expected a mix name (see `moa mixes`)")


def check_shape(data: Mapping, where: str) -> None:
    for key, value in data.items():
        if key not in SECTIONS:
            raise ConfigError(one_line(
                f"config error in {where}: unknown section '{key}' (expected one of: {', '.join(SECTIONS)})"
            ))
        if not isinstance(value, dict):
            raise ConfigError(f"config error in {where}: {key}: expected a table, like [{key}]")
