"""Provider presets, model-spec parsing, and construction of provider instances.

SDKs are imported only inside the factory functions, so that importing this package is cheap.
"""

from __future__ import annotations

import os
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


def split_spec(spec: str, known: Mapping[str, ProviderSpec], default: str = "together") -> tuple[str, str]:
    """`PROVIDER:MODEL` -> (provider, model). An unknown prefix means a model id on `default`.

    So `ollama:llama3.2:1b` is ("ollama", "llama3.2:1b") and `meta-llama/Llama-3.3-70B` is
    (default, "meta-llama/Llama-3.3-70B").
    """
    spec = spec.strip()
    if not spec:
        raise UsageError("empty model name")
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in known:
        if not rest:
            raise UsageError(f"model spec '{spec}' names provider '{prefix}' but no model")
        return prefix, rest
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
        raise MissingKeyError(
            f"no API key for provider '{spec.name}': set {spec.api_key_env} "
            f"(in the environment or a .env file) or run `moa keys set {spec.name}`",
            provider=spec.name,
        )
    if spec.kind == "together":
        from .together_sdk import TogetherProvider

        return TogetherProvider(spec.name, key, spec.resolved_base_url(env), dict(spec.headers))
    from .openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(spec.name, key or "not-needed", spec.resolved_base_url(env), dict(spec.headers))
