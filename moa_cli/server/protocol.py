"""The OpenAI chat-completions wire format: checking a request, and building errors, whole
completions and streamed chunks.

Clients send many fields moa has no use for (`top_p`, `user`, `tools: []` ...). OpenAI clients
expect unknown fields to be accepted, so they are ignored; the ones moa honours are checked, and
a bad one is a 400 naming the field, never echoing a string the client sent.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, Mapping

from ..config.options import REQUEST_OPTIONS
from ..config.settings import Overrides
from ..sanitize import json_dumps

ROLES = {"system", "user", "assistant", "developer"}  # "developer" is OpenAI's newer "system"
# Roles and content parts of OpenAI's API that moa cannot pass on: named in the 400.
KNOWN_ROLES = {"tool", "function"}
KNOWN_PARTS = {"image_url", "input_audio", "file", "refusal", "input_image", "audio"}
# No model id is this long; a longer one is a 400 before anything quotes, caches or redacts it.
MAX_MODEL_ID = 256


class ApiError(Exception):
    """An error response: HTTP status plus OpenAI's {"error": {...}} body."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}



def bad_request(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param)


@dataclass(frozen=True)
class ChatCall:
    """One checked `POST /v1/chat/completions` request."""

    model: str
    question: str  # the last user message
    history: tuple[dict, ...]  # every message before it
    stream: bool = False
    include_usage: bool = False
    # The moa options the request set (`temperature`, `max_tokens`...: options.REQUEST_OPTIONS).
    overrides: Overrides = Overrides()
    reasoning: bool = False  # stream the reference answers as `reasoning_content`
    proposals: bool = False  # return every round's answers in the `moa` field


def opted_in(body: Mapping, headers: Mapping[str, str], name: str) -> bool:
    """An opt-in moa option: the body field `moa_NAME: true` or the header `X-Moa-NAME: 1`.
    The header is for clients that can add headers but not body fields."""
    value = body.get(f"moa_{name}")
    if value is not None:
        if not isinstance(value, bool):
            raise bad_request(f"moa_{name}: expected true or false", f"moa_{name}")
        return value
    return headers.get(f"x-moa-{name}", "").strip().lower() in ("1", "true", "yes", "on")


_WHITESPACE = None
_DECODER = json.JSONDecoder()


def load_body(raw: bytes):
    """`json.loads(raw)`, but a top-level object is decoded one member at a time, and a
    `messages` array one message at a time: each step is a short C call, so a worker thread
    parsing megabytes lets the event loop's thread run between steps (one `json.loads` would
    hold the GIL for the whole body). Same result, same errors (ValueError)."""
    global _WHITESPACE
    import re

    if _WHITESPACE is None:
        _WHITESPACE = re.compile(r"[ \t\n\r]*")
    text = raw.decode("utf-8")
    skip = _WHITESPACE.match
    at = skip(text, 0).end()
    if not text.startswith("{", at):
        return json.loads(text)
    body: dict = {}
    at = skip(text, at + 1).end()
    if text.startswith("}", at):
        at += 1
    else:
        while True:
            if not text.startswith('"', at):
                raise ValueError("expected a member name")
            name, at = _DECODER.raw_decode(text, at)
            at = skip(text, at).end()
            if not text.startswith(":", at):
                raise ValueError("expected ':'")
            at = skip(text, at + 1).end()
            if name == "messages" and text.startswith("[", at):
                value, at = _array(text, at, skip)
            else:
                value, at = _DECODER.raw_decode(text, at)
            body[name] = value
            at = skip(text, at).end()
            if text.startswith(",", at):
                at = skip(text, at + 1).end()
                continue
            if not text.startswith("}", at):
                raise ValueError("expected ',' or '}'")
            at += 1
            break
    if skip(text, at).end() != len(text):
        raise ValueError("extra data after the object")
    return body


def _array(text: str, at: int, skip) -> tuple[list, int]:
    items: list = []
    at = skip(text, at + 1).end()
    if text.startswith("]", at):
        return items, at + 1
    while True:
        value, at = _DECODER.raw_decode(text, at)
        items.append(value)
        at = skip(text, at).end()
        if text.startswith(",", at):
            at = skip(text, at + 1).end()
            continue
        if not text.startswith("]", at):
            raise ValueError("expected ',' or ']'")
        return items, at + 1


def parse_chat_request(raw: bytes, headers: Mapping[str, str]) -> ChatCall:
    try:
        body = load_body(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise bad_request("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise bad_request("model: expected a model id (see GET /v1/models)", "model")
    if len(model) > MAX_MODEL_ID:
        raise bad_request(f"model: a model id is at most {MAX_MODEL_ID} characters", "model")
    _text(model, "model")
    messages = _messages(body.get("messages"))
    *history, last = messages
    if last["role"] != "user":
        raise bad_request("messages: the last message must be from the user", "messages")
    stream = _flag(body, "stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise bad_request("stream_options: expected an object", "stream_options")
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("n: only n = 1 is supported", "n")
    return ChatCall(
        model=model.strip(),
        question=last["content"],
        history=tuple(history),
        stream=stream,
        include_usage=stream and bool((options or {}).get("include_usage")),
        overrides=request_overrides(body),
        reasoning=opted_in(body, headers, "reasoning"),
        proposals=opted_in(body, headers, "proposals"),
    )


def parse_bounded(raw: bytes, headers: Mapping[str, str], max_messages: int) -> ChatCall:
    """`parse_chat_request`, the conversation cut to its newest `max_messages` messages: what goes
    on is small, however large the request was."""
    call = parse_chat_request(raw, headers)
    if len(call.history) + 1 > max_messages:
        kept = newest((*call.history, {"role": "user", "content": call.question}), max_messages)
        call = replace(call, history=kept[:-1])
    return call


def newest(messages: tuple[dict, ...], limit: int) -> tuple[dict, ...]:
    """At most `limit` messages: the system message if there is one, then the newest ones,
    starting with a user message (never an answer whose question is gone)."""
    if len(messages) <= limit:
        return messages
    head = messages[:1] if messages[0].get("role") == "system" else ()
    rest = messages[len(messages) - max(limit - len(head), 1):]
    while len(rest) > 1 and rest[0].get("role") != "user":
        rest = rest[1:]
    return (*head, *rest)


def _messages(value: Any) -> list[dict]:
    if not isinstance(value, list):
        raise bad_request("messages: expected a list of messages", "messages")
    if not value:
        raise bad_request("messages: the list is empty; send at least one user message", "messages")
    out = []
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request(f"{where}: expected an object with role and content", where)
        role = message.get("role")
        if role not in ROLES:
            said = f"'{role}' messages are not supported; " if role in KNOWN_ROLES else ""
            raise bad_request(f"{where}.role: {said}expected one of system, user, assistant", f"{where}.role")
        out.append({"role": "system" if role == "developer" else role,
                    "content": _content(message.get("content"), f"{where}.content")})
    return out


def _content(value: Any, where: str) -> str:
    """A message's text: a string, or a list of text parts (images and audio are not supported)."""
    if isinstance(value, str):
        return _text(value, where)
    if value is None:
        # Only a tool-calling assistant message has no content, and tools are not supported:
        # running a turn on an empty question would answer something nobody asked.
        raise bad_request(f"{where}: expected a string or a list of text parts, not null", where)
    if isinstance(value, list):
        texts = []
        for j, part in enumerate(value):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text" or not isinstance(part.get("text"), str):
                said = f"'{kind}' parts are not supported" if kind in KNOWN_PARTS else "expected a text part"
                raise bad_request(f"{where}[{j}]: {said}; only text parts are", f"{where}[{j}]")
            texts.append(_text(part["text"], f"{where}[{j}].text"))
        return "".join(texts)
    raise bad_request(f"{where}: expected a string or a list of text parts", where)


def _text(value: str, where: str) -> str:
    """A string that can be sent on: JSON's `\\ud800` escapes decode to lone surrogates, which no
    upstream can be sent (the client's mistake, a 400, never an upstream failure)."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise bad_request(f"{where}: the text is not valid Unicode (a lone surrogate)", where) from None
    return value


def _flag(body: Mapping, name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(f"{name}: expected true or false", name)
    return value


def request_overrides(body: Mapping) -> Overrides:
    """The options a request sets, each from the fields the option table names for it (the first
    given wins: `max_completion_tokens` over `max_tokens`), checked against the table's rules."""
    values = {}
    for option in REQUEST_OPTIONS:
        name = next((name for name in option.request if body.get(name) is not None), None)
        if name is None:
            continue
        value = body[name]
        if not option.check(value):
            raise bad_request(f"{name}: expected {option.describe_expected()}", name)
        values[option.name] = option.kind.value(value)
    return Overrides(**values)


# ------------------------------------------------------------------------------- responses

def new_id() -> str:
    return "chatcmpl-moa-" + uuid.uuid4().hex


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion(call_id: str, model: str, text: str, usage: dict, extra: Mapping | None = None) -> dict:
    return {
        "id": call_id, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage, **(extra or {}),
    }


def chunk(call_id: str, model: str, created: int, delta: dict | None, finish_reason: str | None = None,
          **extra) -> bytes:
    """One `data:` event. `delta=None` is the usage-only chunk, which has no choices."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    payload = {"id": call_id, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": choices, **extra}
    return event(payload)


def event(payload: Mapping) -> bytes:
    return b"data: " + json_dumps(payload, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"
KEEP_ALIVE = b": keep-alive\n\n"  # an SSE comment: clients ignore it, proxies see traffic
