"""Checking single settings from config files and flags against the schema's rules.

Every check raises one line that says what was expected; strings a user gave are never echoed,
since a pasted API key would otherwise end up on screen.
"""

from __future__ import annotations

from typing import Mapping

from ..errors import ConfigError, UsageError
from .options import FLAG_OPTIONS, Kind
from .schema import RULES, SECTIONS


def check_value(name: str, value, prefix: str, error=UsageError, label: str | None = None):
    """Check one setting against its rule (options.py). The message is "<prefix> <label>: expected ..., got ..."."""
    rule = RULES.get(name)
    if rule is None:
        return value
    if not rule.check(value):
        raise error(f"{prefix} {label or name}: expected {rule.describe_expected()}, got {show(value)}")
    return rule.kind.value(value) if rule.kind in (Kind.INT, Kind.FLOAT) else value


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
    """Every value of `o` (an Overrides) against its option's rule, named as its flag."""
    for option in FLAG_OPTIONS:
        value = getattr(o, option.name, None)
        if value is not None and option.kind is not Kind.MODELS:
            check_value(option.name, value, "invalid value for", UsageError, label=option.flag)
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
