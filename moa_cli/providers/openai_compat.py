"""OpenAI and every OpenAI-compatible endpoint, through the `openai` SDK."""

from __future__ import annotations

from .headers import header_secrets
from .openai_style import OpenAIStyleProvider, http_client


class OpenAICompatProvider(OpenAIStyleProvider):
    def __init__(self, name: str, api_key: str, base_url: str | None, headers: dict[str, str],
                 many_calls: bool = False):
        import openai

        self.sdk = openai
        # Retries are the engine's job (it honours Retry-After and reports each try); the SDK's
        # own would hide them and multiply the wait.
        client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, default_headers=headers or None, max_retries=0,
            http_client=http_client(openai, many_calls),
        )
        super().__init__(name, client, secrets=(api_key, *header_secrets(headers)))

    def _create_kwargs(self, request):
        kwargs = super()._create_kwargs(request)
        kwargs.setdefault("stream_options", {"include_usage": True})
        return kwargs
