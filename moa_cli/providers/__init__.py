"""Provider presets, model-spec parsing, and construction of provider instances.

SDKs are imported only inside the factory functions, so that importing this package is cheap.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Mapping

from ..errors import MissingKeyError, UsageError
from .base import Provider

KINDS = ("together", "openai", "local")


@dataclass(frozen=True)
class ProviderSpec:
    name: str
    kind: str  # which implementation: together | openai (any OpenAI-compatible endpoint) | local
    base_url: str | None = None
    base_url_env: str | None = None
    api_key_env: str | None = None
    key_required: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    def resolved_base_url(self, env: Mapping[str, str]) -> str | None:
        if self.base_url_env and env.get(self.base_url_env):
            return env[self.base_url_env]
        return self.base_url


BUILTIN_PROVIDERS: dict[str, ProviderSpec] = {
    spec.name: spec
    for spec in (
        ProviderSpec(
            "together", "together", None, "TOGETHER_BASE_URL", "TOGETHER_API_KEY",
            description="Together AI serverless models (together SDK)",
        ),
        ProviderSpec(
            "openai", "openai", None, "OPENAI_BASE_URL", "OPENAI_API_KEY",
            description="OpenAI, or any OpenAI-compatible endpoint via OPENAI_BASE_URL",
        ),
        ProviderSpec(
            "openrouter", "openai", "https://openrouter.ai/api/v1", "OPENROUTER_BASE_URL",
            "OPENROUTER_API_KEY", description="OpenRouter",
        ),
        ProviderSpec(
            "groq", "openai", "https://api.groq.com/openai/v1", "GROQ_BASE_URL", "GROQ_API_KEY",
            description="Groq",
        ),
        ProviderSpec(
            "ollama", "openai", "http://127.0.0.1:11434/v1", "OLLAMA_BASE_URL", "OLLAMA_API_KEY",
            key_required=False, description="a local Ollama server",
        ),
        ProviderSpec(
            "vllm", "openai", "http://127.0.0.1:8000/v1", "VLLM_BASE_URL", "VLLM_API_KEY",
            key_required=False, description="a vLLM (or any local OpenAI-compatible) server",
        ),
        ProviderSpec(
            "local", "local", key_required=False,
            description="GGUF models run in-process by llama.cpp (extra: moa-cli[local])",
        ),
    )
}


PROVIDER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def split_spec(
    spec: str, known: Mapping[str, ProviderSpec], default: str = "together", strict: bool = False
) -> tuple[str, str]:
    """`PROVIDER:MODEL` -> (provider, model). A prefix that is not a known provider is part of a
    model id on `default`.

    So `ollama:llama3.2:1b` is ("ollama", "llama3.2:1b") and `meta-llama/Llama-3.3-70B` is
    (default, "meta-llama/Llama-3.3-70B"). With `strict` (config files, checked before any call),
    a prefix shaped like a provider name (letters, digits, '-', '_') that is not a known provider
    is an error instead, so a typo or a forgotten `[providers.NAME]` table is reported at once.
    """
    spec = spec.strip()
    if not spec:
        raise UsageError("empty model name")
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in known:
        if not rest:
            raise UsageError(f"model spec '{spec}' names provider '{prefix}' but no model")
        return prefix, rest
    if strict and sep and PROVIDER_NAME.fullmatch(prefix):
        raise UsageError(
            f"unknown provider '{prefix}' in model '{spec}' (known providers: {', '.join(sorted(known))})"
        )
    return default, spec


def find_key(spec: ProviderSpec, env: Mapping[str, str], stored: Mapping[str, str]) -> str | None:
    """The API key for a provider: the environment wins over keys saved with `moa keys set`."""
    if spec.api_key_env and env.get(spec.api_key_env):
        return env[spec.api_key_env]
    return stored.get(spec.name)


def build_provider(
    spec: ProviderSpec, env: Mapping[str, str] | None = None, stored_keys: Mapping[str, str] | None = None,
    local_models: Mapping[str, str] | None = None,
) -> Provider:
    env = os.environ if env is None else env
    key = find_key(spec, env, stored_keys or {})
    if spec.kind == "local":
        from .local import LocalProvider

        return LocalProvider(spec.name, aliases=local_models or {})
    if key is None and spec.key_required:
        where = f"set {spec.api_key_env} (in the environment or a .env file) or run" if spec.api_key_env else "run"
        raise MissingKeyError(
            f"no API key for provider '{spec.name}': {where} `moa keys set {spec.name}`", provider=spec.name
        )
    headers = expand_headers(spec, env)
    if spec.kind == "together":
        from .together_sdk import TogetherProvider

        return TogetherProvider(spec.name, key, spec.resolved_base_url(env), headers)
    from .openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(spec.name, key or "not-needed", spec.resolved_base_url(env), headers)


ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Header names whose values are credentials: redacted from errors and from `moa config show`.
_CREDENTIAL_HEADER = re.compile(r"auth|key|token|secret|password|cookie|signature|session", re.I)


def is_credential_header(name: str) -> bool:
    return bool(_CREDENTIAL_HEADER.search(name))


def header_secrets(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The values of credential headers, and their parts ("Bearer <token>"), for redaction."""
    out: list[str] = []
    for name, value in (headers or {}).items():
        if is_credential_header(name):
            out.append(value)
            out.extend(part for part in value.split() if len(part) >= 8)
    return tuple(out)


def expand_headers(spec: ProviderSpec, env: Mapping[str, str]) -> dict[str, str]:
    """Header values with `${VAR}` taken from the environment, so a credential header (say
    `api-key = "${AZURE_KEY}"`) never has to be written into the config file."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        if not env.get(name):
            raise MissingKeyError(
                f"provider '{spec.name}': a header uses ${{{name}}} but {name} is not set "
                "(set it in the environment or a .env file)",
                provider=spec.name,
            )
        return env[name]

    return {k: ENV_REF.sub(value, v) for k, v in spec.headers.items()}
