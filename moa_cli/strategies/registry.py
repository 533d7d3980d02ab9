"""Strategies by name: register one, look one up, list them (for help and config validation).

A mix's `strategy` is either a registered name or a template containing {answers}, which
becomes a TemplateStrategy. Nothing else in moa keeps a list of strategies.
"""

from __future__ import annotations

from ..errors import UsageError
from .base import Strategy
from .templates import from_template, is_template

_STRATEGIES: dict[str, Strategy] = {}


def register(strategy: Strategy, *, replace: bool = False) -> Strategy:
    """Make `strategy` available as `strategy = "NAME"` in any mix, and return it."""
    name = strategy.name
    if not isinstance(name, str) or not name.strip() or is_template(name):
        raise ValueError(f"a strategy needs a plain name, got {name!r}")
    if name in _STRATEGIES and not replace:
        raise ValueError(f"a strategy named {name!r} is already registered")
    _STRATEGIES[name] = strategy
    return strategy


def unregister(name: str) -> None:
    _STRATEGIES.pop(name, None)


def names() -> list[str]:
    """Registered names, in the order they were registered (the default first)."""
    return list(_STRATEGIES)


def registered() -> list[Strategy]:
    return list(_STRATEGIES.values())


def expected() -> str:
    """What a mix's `strategy` may be, for error messages and help."""
    return f"one of {', '.join(names())}, or a template containing {{answers}} (and optionally {{question}})"


def problem(spec: object) -> str | None:
    """Why `spec` is not a strategy ("expected ..."), or None when it is one."""
    if isinstance(spec, str) and (spec in _STRATEGIES or is_template(spec)):
        return None
    return f"expected {expected()}"


def get(spec: str) -> Strategy:
    """The strategy `spec` names, or the template strategy it spells out."""
    found = _STRATEGIES.get(spec) if isinstance(spec, str) else None
    if found is not None:
        return found
    if isinstance(spec, str) and is_template(spec):
        return from_template(spec)
    raise UsageError(f"unknown strategy; {expected()}")
