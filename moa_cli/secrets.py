"""The secrets this process holds, and text with every one of them removed.

Imports nothing of moa's, so that anything (errors, output, providers, config, the server, bench)
can register or redact without an import cycle. A secret is registered the moment it is read
(API keys, expanded `${VAR}` header values, credential-like header literals).

Redaction is linear in the text: each secret form is looked for by a few `str.find` scans (C
speed) for its aligned blocks, never by a Python loop over every character, so even megabytes
of hostile text cost milliseconds. Callers still cut text to what can reach an output first.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

# Every secret this process holds (API keys, expanded `${VAR}` header values), registered when it
# is read, so that every message is scrubbed of all of them, whichever path it took.
_SECRETS: set[str] = set()
_GENERATION = 0  # bumped by every register_secrets: what is derived from _SECRETS is for one state of it
_KEYLIKE = None
_BASE64 = "[A-Za-z0-9+/_-]"  # a character of either base64 alphabet
_BASE64_RUN = None
# A fragment of a secret this long is as good as the secret: a message cut short (or a server
# echoing part of the key) must not show it either.
FRAGMENT = 12
# Any run of FRAGMENT characters of a secret holds one of its blocks of BLOCK characters that
# starts at a multiple of BLOCK: finding those blocks finds every fragment.
BLOCK = FRAGMENT // 2


def register_secrets(*values: str | None) -> None:
    """Remember secrets so that `redact` removes them, in any encoding, from every message."""
    global _GENERATION
    for value in values:
        if value and len(value.strip()) >= 4:
            _SECRETS.add(value)
            _SECRETS.add(value.strip())
    _GENERATION += 1
    _variants.cache_clear()
    _forms_of.cache_clear()


def redact(text: str, secrets: tuple[str, ...] = (), keylike: bool = True) -> str:
    """Remove known secrets (and their repr-escaped, JSON-escaped, URL-encoded and base64 forms,
    base64 inside a longer credential such as HTTP Basic's `user:KEY`, and any long fragment of
    them) and, unless `keylike` is False (a model's answer, where `key_value_pairs` is code),
    anything shaped like an API key from a message."""
    return _redacted(str(text), _known(secrets), keylike)


class _Forms(NamedTuple):
    """What redaction looks for, derived once per set of secrets."""

    forms: tuple[str, ...]  # every secret in every encoding (`_variants`)
    raw: tuple[bytes, ...]  # every secret's bytes, looked for inside decoded base64
    longest: int  # the longest form's length, plus what a Basic credential adds around it
    # Matches wherever anything could be hidden: a run of the forms' characters as long as the
    # shortest thing `_spans` finds, or a base64 run. Text it does not match is left as it is,
    # so most text (a streamed word) costs one regex search instead of every form's scans.
    screen: "re.Pattern[str] | None"


def _known(secrets: tuple[str, ...]) -> _Forms:
    return _forms_of(tuple(sorted({*_SECRETS, *(s for s in secrets if s and len(s) >= 4)})))


@functools.lru_cache(maxsize=8)
def _forms_of(names: tuple[str, ...]) -> _Forms:
    global _KEYLIKE, _BASE64_RUN
    import re

    if _KEYLIKE is None:
        _KEYLIKE = re.compile(r"\b(sk|tgp|gsk|key)[-_][A-Za-z0-9_\-*.]{8,}")
        _BASE64_RUN = re.compile(_BASE64 + "{16,}={0,2}")
    forms = _variants(names)
    # `_spans` finds whole forms shorter than FRAGMENT and FRAGMENT-long runs of longer ones:
    # either is a run, this long at least, of characters that occur in the forms.
    shortest = min([FRAGMENT, *(len(f) for f in forms)])
    chars = "".join(re.escape(c) for c in sorted({c for f in forms for c in f}))
    screen = re.compile(f"[{chars}]{{{shortest}}}|{_BASE64}{{16}}") if forms else None
    # A Basic credential's base64 ("user:KEY") runs a little past the key's own encoding.
    longest = max((len(f) for f in forms), default=0) + 64
    return _Forms(forms, _variants_raw(names), longest, screen)


def _redacted(text: str, known: _Forms, keylike: bool) -> str:
    if known.forms and known.screen.search(text):
        text = _hide(text, _spans(text, known.forms))
        # A secret base64-encoded after a prefix ("api:KEY" in `Authorization: Basic ...`) is
        # shifted in the encoding: decode each base64-looking run and look inside.
        text = _BASE64_RUN.sub(lambda m: "***" if _encodes_secret(m.group(0), known.raw) else m.group(0), text)
    return _KEYLIKE.sub("***", text) if keylike else text


@functools.lru_cache(maxsize=8)
def _variants(secrets: tuple[str, ...]) -> tuple[str, ...]:
    """Each secret as it may appear in a message: raw, escaped the ways Python, JSON and URLs
    escape text, base64 (HTTP Basic credentials) and hex."""
    import base64
    import json
    from urllib.parse import quote, quote_plus

    forms: set[str] = set()
    for secret in secrets:
        raw = secret.encode("utf-8", "surrogatepass")
        forms.update({
            secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
            secret.encode("unicode_escape").decode("ascii"), repr(raw)[2:-1],
            # URL-quoted from the bytes: a lone surrogate (an env value read from undecodable
            # bytes) has no UTF-8 form of its own, and quote() of the str would raise.
            quote(raw, safe=""), quote_plus(raw), quote(raw, safe="").lower(),
            base64.b64encode(raw).decode().rstrip("="), base64.urlsafe_b64encode(raw).decode().rstrip("="),
            raw.hex(), raw.hex().upper(),  # a server dumping the header bytes it was sent
        })
    return tuple(sorted(f for f in forms if len(f) >= 4))


@functools.lru_cache(maxsize=8)
def _variants_raw(secrets: tuple[str, ...]) -> tuple[bytes, ...]:
    return tuple(s.encode("utf-8", "surrogatepass") for s in secrets)


def _spans(text, forms) -> list[tuple[int, int]]:
    """Where in `text` (str or bytes) a form occurs whole, or a run of FRAGMENT of its characters."""
    spans: list[tuple[int, int]] = []
    n = len(text)
    for form in forms:
        if len(form) < FRAGMENT:  # too short for fragments to mean anything: only whole copies
            start = text.find(form)
            while start >= 0:
                spans.append((start, start + len(form)))
                start = text.find(form, start + len(form))
            continue
        for offset in range(0, len(form) - BLOCK + 1, BLOCK):
            block = form[offset:offset + BLOCK]
            at = text.find(block)
            while at >= 0:
                # Grow the match both ways while text and form agree.
                left = 0
                while left < offset and at - left > 0 and text[at - left - 1:at - left] == form[offset - left - 1:offset - left]:
                    left += 1
                right = BLOCK
                while offset + right < len(form) and at + right < n and \
                        text[at + right:at + right + 1] == form[offset + right:offset + right + 1]:
                    right += 1
                if left + right >= FRAGMENT:
                    spans.append((at - left, at + right))
                at = text.find(block, at + right if left + right >= FRAGMENT else at + 1)
    return spans


def _hide(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each span (overlapping or touching ones merged) replaced by ***."""
    if not spans:
        return text
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, last = [], 0
    for start, end in merged:
        out += [text[last:start], "***"]
        last = end
    out.append(text[last:])
    return "".join(out)


def _encodes_secret(run: str, secrets: tuple[bytes, ...]) -> bool:
    """Whether a base64 run (either alphabet), decoded, holds a secret or a long fragment of one."""
    import base64
    import binascii

    body = run.rstrip("=")
    body = body[: len(body) - len(body) % 4] if len(body) % 4 == 1 else body
    padded = body + "=" * (-len(body) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            data = decode(padded)
        except (binascii.Error, ValueError):
            continue
        if _spans(data, secrets):
            return True
    return False


class StreamRedactor:
    """`redact` of the known secrets (not of key-shaped words: `key_value_pairs` is code) for
    text that arrives in pieces (a model's streamed answer): a secret split
    across pieces is still found. A piece is let through as it came unless a secret, in any of
    its forms, could still be continuing in it: the pieces that hold the text's last run of
    non-space characters wait for the next piece or `flush` (a word's delay, never a secret's
    head). Pieces keep their boundaries; only text that held a secret is merged and redacted."""

    def __init__(self, secrets: tuple[str, ...] = ()):
        self.secrets = secrets
        self.pending: list[str] = []
        self._known: _Forms | None = None
        self._generation = -1  # of the registry `_known` was derived from

    def _forms(self) -> _Forms:
        """The forms to hide, derived again only when a secret has been registered since."""
        generation = _GENERATION  # read first: a secret registered meanwhile is picked up next time
        if self._generation != generation:
            self._known, self._generation = _known(self.secrets), generation
        return self._known

    def feed(self, text: str) -> list[str]:
        """The pieces that may go out now (maybe none)."""
        pieces = [*self.pending, text]
        if not (_SECRETS or self.secrets):
            self.pending = []
            return [p for p in pieces if p]
        buffer = "".join(pieces)
        known = self._forms()
        run, longest = _trailing_run(buffer), known.longest
        if run > longest:
            # A run longer than any secret form (minified code, a long token): all but the
            # longest form's length may go, redacted as a whole first.
            buffer = _redacted(buffer, known, keylike=False)
            self.pending = [buffer[len(buffer) - longest:]]
            return [buffer[:len(buffer) - longest]]
        cut = len(buffer) - run
        # The last piece boundary at or before the cut that no run of non-space crosses: no
        # secret can straddle it (nor the cut), so what goes before it is redacted on its own.
        go, at, boundary = 0, 0, 0
        for index, piece in enumerate(pieces):
            at += len(piece)
            if at > cut:
                break
            if at == cut or buffer[at - 1].isspace() or buffer[at].isspace():
                go, boundary = index + 1, at
        if buffer[boundary:cut].strip():  # the pieces after it hold whole words too: those go, as one piece
            self.pending = [buffer[cut:]]
            return self._hidden([*pieces[:go], buffer[boundary:cut]])
        self.pending = pieces[go:]
        return self._hidden(pieces[:go])

    def flush(self) -> list[str]:
        out, self.pending = self._hidden(self.pending), []
        return out

    def _hidden(self, pieces: list[str]) -> list[str]:
        text = "".join(pieces)
        hidden = _redacted(text, self._forms(), keylike=False) if text else ""
        return [p for p in pieces if p] if hidden == text else [hidden]


def _trailing_run(text: str) -> int:
    """How many characters end `text` without a whitespace among them."""
    end = len(text)
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return end - start

