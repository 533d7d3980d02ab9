"""The secrets this process holds, and text with every one of them removed.

Imports nothing of moa's, so that anything (errors, output, providers, config, the server, bench)
can register or redact without an import cycle. A secret is registered the moment it is read
(API keys, expanded `${VAR}` header values, credential-like header literals).
"""

from __future__ import annotations

import functools

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
