"""Checking single settings, and writing TOML keys and strings, for config files and flags.

Every check raises one line that says what was expected; strings a user gave are never echoed,
since a pasted API key would otherwise end up on screen.
"""

from __future__ import annotations

import json
import math
import re

from .errors import UsageError

# name -> (type, minimum, maximum, what a user should give)
RULES: dict[str, tuple[type, float | None, float | None, str]] = {
    "temperature": (float, 0.0, 2.0, "a number from 0 to 2"),
    "max_tokens": (int, 1, None, "a whole number of at least 1"),
    "reference_max_tokens": (int, 1, None, "a whole number of at least 1"),
    "timeout": (float, 0.001, None, "a number of seconds above 0"),
    "weight": (float, 0.0, None, "a number of at least 0"),
    "seed": (int, None, None, "a whole number"),
    "context_window": (int, 256, None, "a whole number of at least 256"),
    "rounds": (int, 0, 10, "a whole number from 0 to 10"),
    "retries": (int, 0, 10, "a whole number from 0 to 10"),
    "backoff": (float, 0.0, 60.0, "a number of seconds from 0 to 60"),
    "min_proposers": (int, 1, None, "a whole number of at least 1"),
    "proposer_deadline": (float, 0.0, None, "a number of seconds of at least 0"),
    "concurrency": (int, 1, None, "a whole number of at least 1"),
    "price": (float, 0.0, None, "a number of dollars of at least 0"),
}


def check_value(name: str, value, prefix: str, error=UsageError, label: str | None = None):
    """Check one setting. The message is "<prefix> <label>: expected ..., got ..."."""
    label = label or name
    if name == "system":
        if not isinstance(value, str):
            raise error(f"{prefix} {label}: expected a string, got {show(value)}")
        return value
    if name in ("fallback", "multi_turn", "shuffle"):
        if not isinstance(value, bool):
            raise error(f"{prefix} {label}: expected true or false, got {show(value)}")
        return value
    rule = RULES.get(name)
    if rule is None:
        return value
    kind, low, high, expected = rule
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and kind is int:
        ok = float(value).is_integer()
    if not ok or (low is not None and value < low) or (high is not None and value > high):
        raise error(f"{prefix} {label}: expected {expected}, got {show(value)}")
    return kind(value)


def show(value) -> str:
    """A value for an error message. Strings are not echoed: they might be a pasted secret."""
    if isinstance(value, bool):
        return "true" if value else "false"
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


def toml_key(name: str) -> str:
    """A TOML key: bare when it can be, else a quoted string."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return name
    return toml_string(name)


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's escaping, plus DEL, which TOML does not allow raw."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")
