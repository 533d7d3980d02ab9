"""Provider presets, model-spec parsing, and construction of provider instances.

The presets live in presets.py and header handling in headers.py (re-exported here), so that the
provider modules this package builds use them without importing the package back.

SDKs are imported only inside the factory functions, so that importing this package is cheap.
"""

from __future__ import annotations

import os
import re
from typing import Mapping

from ..errors import MissingKeyError, UsageError
from ..secrets import register_secrets
from .base import Provider
from .headers import ENV_REF, expand_headers, header_secrets, is_credential_header  # noqa: F401 - re-exported
from .presets import BUILTIN_PROVIDERS, KINDS, ProviderSpec  # noqa: F401 - re-exported

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
    if not MODEL_ID.fullmatch(spec):
        raise UsageError("a model name must be printable text with a letter or digit, "
                         "like together:meta-llama/Llama-3.3-70B-Instruct-Turbo")
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in known:
        # After a provider, a model id is the provider's own opaque text ("openai:[/]" is fine).
        if not OPAQUE_ID.fullmatch(rest):
            raise UsageError(f"model spec '{spec}' names provider '{prefix}' but no model")
        return prefix, rest
    if strict and sep and PROVIDER_NAME.fullmatch(prefix):
        raise UsageError(
            f"unknown provider '{prefix}' in model '{spec}' (known providers: {', '.join(sorted(known))})"
        )
    return default, spec


# A model id: no control characters, at least one letter or digit (so ":::" or "-" is no model).
MODEL_ID = re.compile(r"[^\x00-\x1f\x7f-\x9f]*[^\W_][^\x00-\x1f\x7f-\x9f]*")
# A model id after a known provider: any printable text that is not only spaces.
OPAQUE_ID = re.compile(r"[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*")


def misread_prefix(model: str) -> str | None:
    """The provider-like prefix of a model id read as the default provider's (`nolab:x`), if any."""
    prefix, sep, _ = model.partition(":")
    return prefix if sep and PROVIDER_NAME.fullmatch(prefix) else None


def check_base_url(url: str, where: str) -> str:
    """A base URL moa can call: http(s), a host, and a port number that exists. Checked when the
    settings are read, so a typo is one line naming where it came from, not a failed call."""
    from urllib.parse import urlsplit

    problem = None
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            problem = "expected a URL starting with http:// or https://"
        elif not parts.hostname:
            problem = "the URL has no host"
        elif any(ch.isspace() or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in url):
            problem = "the URL contains spaces or control characters"
        else:
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        problem = "the port must be a number from 1 to 65535"
    if problem is None and parts.port == 0:
        problem = "the port must be a number from 1 to 65535"
    if problem:
        raise UsageError(f"{where}: {problem}")
    return url


def find_key(spec: ProviderSpec, env: Mapping[str, str], stored: Mapping[str, str]) -> str | None:
    """The API key for a provider: the environment wins over keys saved with `moa keys set`."""
    return env_key(spec, env) or (stored.get(spec.name) or "").strip() or None


def env_key(spec: ProviderSpec, env: Mapping[str, str]) -> str | None:
    """The provider's key from the environment or a .env file, if one is set there."""
    # Whitespace around a key (`KEY\r` from a Windows .env, a pasted newline) is never part of
    # it, and inside an HTTP header it would be an error message quoting the key.
    if not spec.api_key_env:
        return None
    return (env.get(spec.api_key_env) or "").strip() or None


def build_provider(
    spec: ProviderSpec, env: Mapping[str, str] | None = None, stored_keys: Mapping[str, str] | None = None,
    local_models: Mapping[str, str] | None = None, many_calls: bool = False,
) -> Provider:
    """The provider `spec` describes, with its key. `many_calls`: this process will make many
    calls over it (bench, serve), so an HTTP client that is slower to load but cheaper per call
    is worth it (openai_style.http_client)."""
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
    if key is not None:
        register_secrets(key)
        if not key.isprintable() or any(ch.isspace() for ch in key):
            raise MissingKeyError(f"the API key for provider '{spec.name}' contains spaces or control characters; "
                                  "set it again", provider=spec.name)
    # Every configured header value is a secret for redaction, whatever its name: an upstream
    # error that echoes the request's headers must not carry any of them into a message.
    register_secrets(*header_secrets(spec.headers), *spec.headers.values())
    headers = expand_headers(spec, env)
    base_url = spec.resolved_base_url(env)
    if base_url is not None:
        origin = f"${spec.base_url_env}" if spec.base_url_env and env.get(spec.base_url_env) else "base_url"
        check_base_url(base_url, f"provider '{spec.name}': {origin}")
    if spec.kind == "together":
        from .together_sdk import TogetherProvider

        return TogetherProvider(spec.name, key, base_url, headers, many_calls)
    from .openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(spec.name, key or "not-needed", base_url, headers, many_calls)
