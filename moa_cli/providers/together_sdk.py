"""Together AI through the `together` SDK (which reads TOGETHER_BASE_URL and appends /v1 itself)."""

from __future__ import annotations

from .headers import header_secrets
from .openai_style import OpenAIStyleProvider, http_client


class TogetherProvider(OpenAIStyleProvider):
    def __init__(self, name: str, api_key: str, base_url: str | None, headers: dict[str, str],
                 many_calls: bool = False):
        import together

        self.sdk = together
        kwargs = {"api_key": api_key, "max_retries": 0}
        if base_url:
            kwargs["base_url"] = base_url
        if headers:
            kwargs["default_headers"] = headers
        client = http_client(together, many_calls)
        if client is not None:
            kwargs["http_client"] = client
        super().__init__(name, together.AsyncTogether(**kwargs), secrets=(api_key, *header_secrets(headers)))

    async def list_models(self) -> list[str]:
        # In together>=3, `client.models.list()` lists a project's own uploaded models; the
        # serverless catalog is still `GET /v1/models` (a JSON list, or {"data": [...]}).
        try:
            data = await self.client.get("/v1/models", cast_to=object)
        except Exception as error:  # noqa: BLE001 - translated at the boundary
            raise self.translate(error, "") from None
        items = data.get("data", []) if isinstance(data, dict) else data
        return sorted(str(m["id"]) for m in items or [] if isinstance(m, dict) and m.get("id"))
