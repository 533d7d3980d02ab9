"""Together AI through the `together` SDK (which reads TOGETHER_BASE_URL and appends /v1 itself)."""

from __future__ import annotations

from .stainless import StainlessProvider


class TogetherProvider(StainlessProvider):
    def __init__(self, name: str, api_key: str, base_url: str | None, headers: dict[str, str]):
        import together

        self.sdk = together
        kwargs = {"api_key": api_key, "max_retries": 0}
        if base_url:
            kwargs["base_url"] = base_url
        if headers:
            kwargs["default_headers"] = headers
        super().__init__(name, together.AsyncTogether(**kwargs), secrets=(api_key,))
