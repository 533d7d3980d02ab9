"""Every error a user can see, each with its documented exit code.

Anything raised past a provider boundary is one of these; SDK exception types never escape.
"""

from __future__ import annotations

import functools

# Exit codes (documented in README.md).
EXIT_OK = 0
EXIT_TURN_FAILED = 1  # every reference failed, or the aggregator failed with no fallback
EXIT_USAGE = 2  # bad flag value, bad config, unknown mix/provider, empty or binary stdin
EXIT_AUTH = 3  # missing or rejected API key
EXIT_PROVIDER = 4  # provider outage, unknown model, bad request, timeout
EXIT_OUTPUT = 5  # the output could not be written (a full disk, a closed stdout)
EXIT_INTERRUPTED = 130  # Ctrl-C


class MoaError(Exception):
    """Base: a one-line message for the user plus the process exit code."""

    exit_code = EXIT_TURN_FAILED

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(MoaError):
    exit_code = EXIT_USAGE


class ConfigError(MoaError):
    exit_code = EXIT_USAGE


class TurnFailed(MoaError):
    """The turn produced no answer; `turn` keeps every answer that did arrive."""

    exit_code = EXIT_TURN_FAILED

    def __init__(self, message: str, turn=None, failures=()):
        super().__init__(message)
        self.turn = turn
        # Rejected keys everywhere deserve the key exit code, so scripts can tell them apart.
        if failures and all(f.error_status in (401, 403) for f in failures):
            self.exit_code = EXIT_AUTH


class ProviderError(MoaError):
    """A call to a model failed. `retryable` tells the engine whether trying again can help."""

    exit_code = EXIT_PROVIDER

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.provider = provider
        self.model = model
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class AuthError(ProviderError):
    exit_code = EXIT_AUTH


class MissingKeyError(AuthError):
    pass


class ModelNotFound(ProviderError):
    pass


# Every secret this process holds (API keys, expanded `${VAR}` header values), registered when it
# is read, so that every message is scrubbed of all of them, whichever path it took.
_SECRETS: set[str] = set()
_KEYLIKE = None
# A fragment of a secret this long is as good as the secret: a message cut short (or a server
# echoing part of the key) must not show it either.
FRAGMENT = 12


def register_secrets(*values: str | None) -> None:
    """Remember secrets so that `redact` removes them, in any encoding, from every message."""
    for value in values:
        if value and len(value.strip()) >= 4:
            _SECRETS.add(value)
            _SECRETS.add(value.strip())
    _variants.cache_clear()


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove known secrets (and their repr-escaped, JSON-escaped, URL-encoded and base64 forms,
    and any long fragment of them) and anything shaped like an API key from a message."""
    global _KEYLIKE
    import re

    if _KEYLIKE is None:
        _KEYLIKE = re.compile(r"\b(sk|tgp|gsk|key)[-_][A-Za-z0-9_\-*.]{8,}")
    text = str(text)
    for variant in _variants(tuple(sorted({*_SECRETS, *(s for s in secrets if s and len(s) >= 4)}))):
        text = _without(text, variant)
    return _KEYLIKE.sub("***", text)


@functools.lru_cache(maxsize=8)
def _variants(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """Each secret as it may appear in a message: raw, escaped the ways Python, JSON and URLs
    escape text, and base64 (HTTP Basic credentials). Longest first, so a longer form is removed
    before a shorter one inside it."""
    import base64
    import json
    from urllib.parse import quote, quote_plus

    forms: set[str] = set()
    for secret in secrets:
        raw = secret.encode("utf-8", "surrogatepass")
        forms.update({
            secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
            secret.encode("unicode_escape").decode("ascii"), repr(raw)[2:-1],
            quote(secret, safe=""), quote_plus(secret), quote(secret, safe="").lower(),
            base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("="),
        })
    return tuple(sorted((f for f in forms if len(f) >= 4), key=len, reverse=True))


def _without(text: str, secret: str) -> str:
    """`text` with `secret`, and every run of at least FRAGMENT characters of it, replaced by ***."""
    if secret in text:
        text = text.replace(secret, "***")
    width = min(FRAGMENT, len(secret))
    if len(secret) <= width or len(text) < width:
        return text
    grams = {secret[i:i + width] for i in range(len(secret) - width + 1)}
    hidden = bytearray(len(text))
    found = False
    for i in range(len(text) - width + 1):
        if text[i:i + width] in grams:
            hidden[i:i + width] = b"\x01" * width
            found = True
    if not found:
        return text
    out, i = [], 0
    while i < len(text):
        if hidden[i]:
            while i < len(text) and hidden[i]:
                i += 1
            out.append("***")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def print_error(message: str) -> None:
    """The one-line form every user-facing error takes, `moa: error: ...`, printed by `warn`:
    secrets scrubbed, control characters from outside text (server messages, model ids) made visible."""
    from .output import warn

    warn(f"error: {message}")
