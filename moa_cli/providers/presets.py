"""The providers moa knows without any config: what each is called, which implementation it uses,
where it is and which variables hold its URL and key.

Apart from the package, so that modules the package builds can name a ProviderSpec without
importing the package back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

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
