"""The stream redactor hides a secret however an answer is cut into pieces, in every encoding
redaction knows, and lets everything else through unchanged; and a secret registered while a
stream is under way is hidden from then on (what it derives from the registry is cached)."""

from __future__ import annotations

import base64
import json
import random
import secrets
from urllib.parse import quote

import pytest

from moa_cli.secrets import FRAGMENT, StreamRedactor, redact, register_secrets

CODE = "def add(a, b):\n    return a + b  # sum\n"


def encodings(key: str) -> dict[str, str]:
    raw = key.encode()
    return {
        "raw": key,
        "fragment": key[3:3 + FRAGMENT],  # a message cut short, or a server echoing part of the key
        "json": json.dumps(key)[1:-1],
        "url": quote(key, safe=""),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "base64": base64.b64encode(raw).decode().rstrip("="),
        "urlsafe base64": base64.urlsafe_b64encode(raw).decode().rstrip("="),
        "Basic credential": base64.b64encode(b"api:" + raw).decode(),
    }


def streamed(text: str, cuts: list[int], secrets_: tuple[str, ...] = ()) -> list[str]:
    hiding = StreamRedactor(secrets_)
    bounds = [0, *cuts, len(text)]
    out = [piece for a, b in zip(bounds, bounds[1:]) for piece in hiding.feed(text[a:b])]
    return out + hiding.flush()


def splits(text: str, rng: random.Random) -> list[list[int]]:
    """Every cut into two pieces, one-character pieces, and some random cuts."""
    every = [[i] for i in range(1, len(text))]
    randoms = [sorted(rng.sample(range(1, len(text)), rng.randint(1, len(text) - 1))) for _ in range(20)]
    return [*every, list(range(1, len(text))), *randoms]


def fragments(form: str) -> list[str]:
    return [form[i:i + FRAGMENT] for i in range(len(form) - FRAGMENT + 1)]


@pytest.mark.parametrize("make_key", [lambda: secrets.token_hex(16), lambda: secrets.token_urlsafe(24)],
                         ids=["hex key", "urlsafe key"])
def test_a_secret_in_any_encoding_is_hidden_at_every_cut(make_key):
    key = make_key()
    register_secrets(key)
    rng = random.Random(key)
    for name, form in encodings(key).items():
        text = f"{CODE}x = {form} # end\n{CODE}"
        for cuts in splits(text, rng):
            out = "".join(streamed(text, cuts))
            assert out == f"{CODE}x = *** # end\n{CODE}", (name, cuts)
            assert not any(fragment in out for fragment in fragments(form)), (name, cuts)


def test_a_secret_given_to_the_redactor_alone_is_hidden_like_a_registered_one():
    key = secrets.token_hex(16)  # never registered: only this stream's provider holds it
    rng = random.Random(key)
    text = f"{CODE}token={key}\n"
    for cuts in splits(text, rng):
        assert "".join(streamed(text, cuts, (key,))) == f"{CODE}token=***\n"


def test_text_holding_no_secret_goes_out_as_it_came_piece_for_piece():
    register_secrets(secrets.token_hex(16))
    words = ["def", " has_close_elements(numbers:", " List[float],", " threshold:", " float)", "\n", "    ",
             " return", " aGVsbG8gd29ybGQgaGVsbG8gd29ybGQ=", " 0123456789abcdef0123", ""]
    hiding = StreamRedactor()
    out = [piece for word in words for piece in hiding.feed(word)] + hiding.flush()
    assert out == [w for w in words if w]
    assert redact("".join(words), keylike=False) == "".join(words)


def test_a_secret_registered_during_a_stream_is_hidden_in_what_follows():
    register_secrets(secrets.token_hex(16))
    hiding = StreamRedactor()
    assert "".join(hiding.feed("before the key")) == "before the "
    late = secrets.token_hex(16)
    register_secrets(late)
    out = [*hiding.feed(f" came: {late[:20]}"), *hiding.feed(f"{late[20:]} after"), *hiding.flush()]
    assert "".join(out) == "key came: *** after"


def test_a_secret_with_a_lone_surrogate_is_registered_and_hidden():
    # An environment value read from bytes that are not UTF-8 holds lone surrogates.
    key = secrets.token_hex(10) + "\udcff" + secrets.token_hex(6)
    register_secrets(key)
    raw = key.encode("utf-8", "surrogatepass")
    assert key not in redact(f"echo {key} back")
    assert quote(raw, safe="") not in redact(f"url ?k={quote(raw, safe='')}")
    redactor = StreamRedactor()
    out = "".join([*redactor.feed("said " + key[:9]), *redactor.feed(key[9:] + " ok"), *redactor.flush()])
    assert key not in out and out.startswith("said ") and out.endswith(" ok")
