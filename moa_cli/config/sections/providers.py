"""[providers.NAME]: new OpenAI-compatible endpoints, or changes to a built-in provider."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from ...errors import ConfigError, UsageError
from ...providers import BUILTIN_PROVIDERS, KINDS, PROVIDER_NAME, ProviderSpec, check_base_url
from ..schema import ENV_NAME, PROVIDER_KEYS
from ..toml_write import toml_key
from ..validate import show


def check(config: Mapping[str, Any], where: str) -> dict[str, ProviderSpec]:
    """The built-in providers with the config's tables applied (new ones added)."""
    providers = dict(BUILTIN_PROVIDERS)
    for name, table in config.get("providers", {}).items():
        providers[name] = _provider(name, table, f"config error in {where}: [providers.{toml_key(name)}]")
    return providers


def _provider(name: str, table: Any, prefix: str) -> ProviderSpec:
    if not PROVIDER_NAME.fullmatch(name):
        raise ConfigError(f"{prefix} expected a provider name of letters, digits, '-' and '_' starting with a letter")
    if not isinstance(table, dict):
        raise ConfigError(f"{prefix} expected a table (base_url, api_key_env, headers)")
    unknown = set(table) - PROVIDER_KEYS
    if unknown:
        key = sorted(unknown)[0]
        hint = (" (never put a key in the config: name its variable with api_key_env, or run "
                f"`moa keys set {name}`)") if "key" in key.lower() else ""
        raise ConfigError(f"{prefix} unknown key '{key}' (expected one of: {', '.join(sorted(PROVIDER_KEYS))}){hint}")
    builtin = BUILTIN_PROVIDERS.get(name)
    kind = table.get("kind", builtin.kind if builtin else "openai")
    if kind not in KINDS:
        raise ConfigError(f"{prefix} kind: expected one of {', '.join(KINDS)}, got {show(kind)}")
    base_url = _base_url(table, builtin, kind, prefix)
    api_key_env = table.get("api_key_env", builtin.api_key_env if builtin else None)
    if "api_key_env" in table and (not isinstance(api_key_env, str) or not ENV_NAME.fullmatch(api_key_env)):
        # Never echo the value: people paste the key itself here.
        raise ConfigError(f"{prefix} api_key_env: expected the name of an environment variable (like MYLAB_API_KEY), "
                          "not the key itself")
    key_required = table.get("key_required", api_key_env is not None)
    if not isinstance(key_required, bool):
        raise ConfigError(f"{prefix} key_required: expected true or false, got {show(key_required)}")
    description = table.get("description", builtin.description if builtin else "")
    if not isinstance(description, str):
        raise ConfigError(f"{prefix} description: expected a string")
    return replace(builtin or ProviderSpec(name, kind), kind=kind, base_url=base_url, api_key_env=api_key_env,
                   key_required=key_required, headers=_headers(table, builtin, prefix), description=description)


def _base_url(table: Mapping, builtin: ProviderSpec | None, kind: str, prefix: str) -> str | None:
    base_url = table.get("base_url", builtin.base_url if builtin else None)
    if "base_url" in table:
        if not isinstance(base_url, str):
            raise ConfigError(f"{prefix} base_url: expected a URL starting with http:// or https://")
        try:
            check_base_url(base_url, f"{prefix} base_url")
        except UsageError as error:
            raise ConfigError(error.message) from None
    if not builtin and kind == "openai" and not base_url:
        raise ConfigError(f"{prefix} base_url: missing; a new provider needs the URL of its OpenAI-compatible API")
    return base_url


def _headers(table: Mapping, builtin: ProviderSpec | None, prefix: str) -> dict[str, str]:
    headers = table.get("headers", dict(builtin.headers) if builtin else {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ConfigError(f"{prefix} headers: expected a table of strings, like headers = {{ \"X-Team\" = \"lab\" }}")
    if not all(v.isprintable() and str(k).isprintable() and str(k).strip() for k, v in headers.items()):
        raise ConfigError(f"{prefix} headers: a header name or value contains a line break or control character")
    return {str(k): v for k, v in headers.items()}
