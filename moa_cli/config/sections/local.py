"""[local]: names for GGUF files the local provider runs (`local:NAME`)."""

from __future__ import annotations

from typing import Mapping

from ...errors import ConfigError


def check(config: Mapping, where: str) -> dict[str, str]:
    table = config.get("local", {})
    prefix = f"config error in {where}: [local]"
    if set(table) - {"models"}:
        raise ConfigError(f"{prefix} unknown key '{sorted(set(table) - {'models'})[0]}' (expected: models)")
    models = table.get("models", {})
    if not isinstance(models, dict) or not all(isinstance(v, str) for v in models.values()):
        raise ConfigError(f'{prefix} models: expected a table of names to GGUF paths, like tiny = "/path/model.gguf"')
    return {str(k): v for k, v in models.items()}
