"""[pricing."PROVIDER:MODEL"]: input and output prices, dollars per million tokens."""

from __future__ import annotations

from typing import Mapping

from ...errors import ConfigError, UsageError
from ...providers import ProviderSpec, split_spec
from ..toml_write import toml_key
from ..validate import check_value, one_line


def check(config: Mapping, providers: Mapping[str, ProviderSpec], where: str) -> dict[str, tuple[float, float]]:
    prices = {}
    for label, table in config.get("pricing", {}).items():
        here = f"config error in {where}: [pricing.{toml_key(label)}]"
        if not isinstance(table, dict) or set(table) != {"input", "output"}:
            raise ConfigError(f"{here} expected a table with input and output, in dollars per million tokens")
        try:
            provider, model_id = split_spec(label, providers, strict=True)
        except UsageError as error:
            raise ConfigError(one_line(f"{here} {error.message}")) from None
        prices[f"{provider}:{model_id}"] = (
            check_value("price", table["input"], here, ConfigError, label="input"),
            check_value("price", table["output"], here, ConfigError, label="output"),
        )
    return prices
