"""Roles: named system prompts from the config file, each optionally with its own mix.

    [roles.reviewer]
    description = "a strict code reviewer"
    system = "You review code. Point out bugs first, then style."
    mix = "coding-oss"                 # optional

`--role NAME` (ask, chat) and `/role NAME` (chat) apply one: its system prompt for every model,
and its mix unless the flags chose the models. A role is only flag values (`with_role` fills in
`system` and `mix` of the Overrides), checked and resolved like `-s` and `-m`, and saved with the
session (its system prompt in the stored mix, its name on the session), so `--continue`
restores it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Any, Mapping

from .config import Overrides
from .errors import ConfigError, UsageError
from .sanitize import one_line_safe

KEYS = ("system", "mix", "description")


@dataclass(frozen=True)
class Role:
    name: str
    system: str
    mix: str | None = None
    description: str = ""


def roles_of(config: Mapping[str, Any], where: str = "config") -> dict[str, Role]:
    """Every `[roles.NAME]` table, checked: a bad one is one ConfigError line naming it."""
    roles = {}
    for name, table in (config.get("roles") or {}).items():
        here = f"config error in {where}: [roles.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(one_line_safe(f"{here}: expected a table with a `system` prompt"))
        unknown = sorted(set(table) - set(KEYS))
        if unknown:
            raise ConfigError(one_line_safe(f"{here}: unknown key '{unknown[0]}' (expected: {', '.join(KEYS)})"))
        system, mix, description = table.get("system"), table.get("mix"), table.get("description", "")
        if not isinstance(system, str) or not system.strip():
            raise ConfigError(one_line_safe(f"{here}: `system` must be a non-empty string (the system prompt)"))
        if mix is not None and (not isinstance(mix, str) or not mix.strip()):
            raise ConfigError(one_line_safe(f"{here}: `mix` must be a mix name"))
        if not isinstance(description, str):
            raise ConfigError(one_line_safe(f"{here}: `description` must be a string"))
        roles[name] = Role(name, system, mix, description)
    return roles


def load_roles() -> dict[str, Role]:
    """The roles of this process's config file (MOA_CONFIG, MOA_HOME), checked."""
    from .config import load_config_file, paths

    path = paths.config_file()
    return roles_of(load_config_file(path), str(path))


def find_role(name: str) -> Role:
    roles = load_roles()
    if name not in roles:
        known = ", ".join(sorted(roles)) or "none; add a [roles.NAME] table to the config file"
        raise UsageError(one_line_safe(f"unknown role '{name}'; known roles: {known}"))
    return roles[name]


def with_role(overrides: Overrides, name: str | None) -> Overrides:
    """The flags with a role on top: its system prompt unless -s gave one, its mix unless
    -m, -r or -a chose the models. A role is only flag values, resolved like them."""
    if not name:
        return overrides
    role = find_role(name)
    return replace(overrides, system=role.system if overrides.system is None else overrides.system,
                   mix=role.mix if role.mix and not overrides.picks_models() else overrides.mix)


def list_roles() -> None:
    from .output import warn

    roles = load_roles()
    if not roles:
        warn("no roles yet: add a [roles.NAME] table with a `system` prompt to the config file (`moa config path`)")
        return
    for role in roles.values():
        head = role.name + (f" (mix {role.mix})" if role.mix else "")
        lines = [one_line_safe(head)]
        if role.description:
            lines.append("    " + one_line_safe(role.description))
        system = one_line_safe(role.system)
        lines.append("    system: " + (system if len(system) <= 70 else system[:69] + "…"))
        sys.stdout.write("\n".join(lines) + "\n")
