"""Writing TOML: config values, a resolved mix as a `[mixes.NAME]` table, a whole parsed config.

Python reads TOML (tomllib) but cannot write it; this small writer covers what moa prints
(`moa mixes show`, `moa config show`), and its output parses back to the same values.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from ..sanitize import json_dumps
from .schema import Mix, ModelSettings


def toml_key(name: str) -> str:
    """A TOML key: bare when it can be, else a quoted string."""
    if re.fullmatch(r"[A-Za-z0-9_-]+", name):
        return name
    return toml_string(name)


def toml_string(text: str) -> str:
    """A TOML basic string: JSON's escaping, with DEL and the C1 and bidi controls escaped too
    (TOML does not allow DEL raw, and none of them may reach a terminal showing the TOML)."""
    return json_dumps(text)


def mix_to_toml(mix: Mix, source: str | None = None) -> str:
    """A resolved mix as a `[mixes.NAME]` table that parses back (tomllib) to the same mix."""
    lines = [f"[mixes.{toml_key(mix.name)}]"]
    if mix.description:
        lines.append(f"description = {toml_value(mix.description)}")
    if source:
        lines.append(f"source = {toml_value(source)}")
    lines.append(f"rounds = {mix.rounds}")
    lines.append(f"strategy = {toml_value(mix.strategy)}")
    lines.append(f"shuffle = {toml_value(mix.shuffle)}")
    lines.append("layers = [")
    for layer in mix.layers:
        lines.append("  [")
        lines.extend(f"    {_model_table(m)}," for m in layer)
        lines.append("  ],")
    lines.append("]")
    lines.append(f"aggregator = {_model_table(mix.aggregator)}")
    return "\n".join(lines) + "\n"


def _model_table(m: ModelSettings) -> str:
    fields = {"model": m.label, "temperature": m.temperature, "max_tokens": m.max_tokens, "system": m.system,
              "timeout": m.timeout, "seed": m.seed, "weight": m.weight if m.weight != 1.0 else None,
              "context_window": m.context_window}
    return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in fields.items() if v is not None) + " }"


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_key(str(k))} = {toml_value(x)}" for k, x in v.items()) + " }"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return toml_string(str(v))


def dump_toml(data: Mapping[str, Any]) -> str:
    """A parsed config written back as TOML (tables as [sections], lists and nested values inline)."""
    lines: list[str] = []

    def table(path: list[str], values: Mapping[str, Any]) -> None:
        plain = [(k, v) for k, v in values.items() if not isinstance(v, dict)]
        nested = [(k, v) for k, v in values.items() if isinstance(v, dict)]
        if path and (plain or not nested):
            lines.extend(["", "[" + ".".join(toml_key(str(p)) for p in path) + "]"])
        lines.extend(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in plain)
        for k, v in nested:
            table(path + [k], v)

    table([], data)
    return "\n".join(lines).lstrip("\n") + "\n"
