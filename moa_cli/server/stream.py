"""One turn's engine events -> `chat.completion.chunk` server-sent events, as they happen.

The aggregator's deltas are the answer's `content`, sent as they arrive. The references answer
in parallel, so with reference progress on (`reasoning_content`) their streams are told one
after another: the first to start is streamed live while the others are held, and each held one
is told whole, or caught up and then streamed live, when the one before it ends.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable

from ..secrets import redact
from ..events import Call, CallDelta, CallFinished, CallRestarted, CallResult, CallStarted, Notice, TurnResult
from ..failure import FailureKind
from ..service import TurnOutcome
from ..strategies import Role
from . import protocol
from .protocol import ChatCall

END = object()  # put on the queue when the turn's task is done


class ReferenceNarrator:
    """Interleaved reference streams -> one sequential text, each answer under its own header."""

    def __init__(self):
        self.focus: Call | None = None  # the reference streamed live
        self.held: dict[Call, list[str]] = {}  # started, not yet told: their text so far
        self.ended: dict[Call, CallResult] = {}  # held ones that have finished

    def started(self, call: Call) -> str:
        if self.focus is None:
            self.focus = call
            return self._header(call)
        self.held[call] = []
        return ""

    def delta(self, call: Call, text: str) -> str:
        if call == self.focus:
            return text
        self.held.setdefault(call, []).append(text)
        return ""

    def restarted(self, call: Call) -> str:
        if call == self.focus:
            return "\n[retrying]\n"
        self.held[call] = []
        return ""

    def finished(self, call: Call, result: CallResult) -> str:
        if call != self.focus:
            self.ended[call] = result
            return ""
        self.focus = None
        text = self._footer(result)
        while self.held:  # tell the held answers, until one is still running: it goes live
            nxt = next(iter(self.held))
            text += self._header(nxt) + "".join(self.held.pop(nxt))
            if nxt not in self.ended:
                self.focus = nxt
                break
            text += self._footer(self.ended.pop(nxt))
        return text

    @staticmethod
    def _header(call: Call) -> str:
        return f"[{call.label}, round {call.round}]\n"

    def _footer(self, result: CallResult) -> str:
        if result.status == "ok":
            return "\n\n"
        reason = result.failure.describe() if result.failure else result.status
        return f"\n[{result.status}: {_excerpt(reason)}]\n\n"


class TurnStream:
    """Builds the SSE body of one streamed completion from the turn's events."""

    def __init__(self, call: ChatCall, call_id: str, created: int):
        self.call, self.call_id, self.created = call, call_id, created
        self.narrator = ReferenceNarrator() if call.reasoning else None
        self.answer_since_start = False  # aggregator text sent since its last (re)start
        self.sent_answer = False  # aggregator text sent at all

    def _chunk(self, delta: dict | None, finish: str | None = None, **extra) -> bytes:
        return protocol.chunk(self.call_id, self.call.model, self.created, delta, finish, **extra)

    def opening(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def translate(self, event) -> bytes:
        if isinstance(event, CallDelta) and event.call.role == "aggregator":
            self.answer_since_start = self.sent_answer = True
            return self._chunk({"content": event.text})
        if isinstance(event, CallRestarted) and event.call.role == "aggregator" and self.answer_since_start:
            self.answer_since_start = False  # what was sent cannot be taken back: say so, then the new answer
            return self._chunk({"content": "\n\n[moa: the answer broke off and restarts here]\n\n"})
        if self.narrator is None:
            return b""
        text = ""
        if isinstance(event, Notice):
            text = f"[moa: {redact(event.message)}]\n"
        elif event.call.role != Role.AGGREGATOR:  # references and reviewers are narrated alike
            if isinstance(event, CallStarted):
                text = self.narrator.started(event.call)
            elif isinstance(event, CallDelta):
                text = self.narrator.delta(event.call, event.text)
            elif isinstance(event, CallRestarted):
                text = self.narrator.restarted(event.call)
            elif isinstance(event, CallFinished):
                text = self.narrator.finished(event.call, event.result)
        return self._chunk({"reasoning_content": text}) if text else b""

    def ending(self, outcome: TurnOutcome, extra: dict) -> bytes:
        """The final events: any answer not streamed (the fallback), or the error; the finish
        chunk, with the `moa` extension when asked for; usage when asked for; [DONE]."""
        out = b""
        if outcome.ok and outcome.turn.fallback is not None:
            # The aggregator failed and a reference answer stands in: it was never streamed.
            lead = "\n\n[moa: the aggregator failed; the best reference answer follows]\n\n" if self.sent_answer else ""
            out += self._chunk({"content": lead + outcome.turn.final})
        if not outcome.ok:
            error = failure(outcome)
            out += protocol.event(error.body())
        out += self._chunk({}, "stop", **extra)
        if self.call.include_usage:
            out += self._chunk(None, usage=usage_of(outcome.turn))
        return out + protocol.DONE


async def sse_body(stream: TurnStream, queue: asyncio.Queue, task: asyncio.Task, keep_alive: float,
                   extras: Callable[[TurnOutcome], dict]) -> AsyncIterator[bytes]:
    """The response body: the role chunk at once, keep-alive comments while nothing happens
    (the references can take many seconds before the first token), then the turn as it goes.
    Events already queued are sent together, one write for a burst."""
    yield stream.opening()
    while True:
        try:
            async with asyncio.timeout(keep_alive):
                event = await queue.get()
        except TimeoutError:
            yield protocol.KEEP_ALIVE
            continue
        out, done = b"", False
        while True:
            if event is END:
                done = True
                break
            out += stream.translate(event)
            if queue.empty():
                break
            event = queue.get_nowait()
        if out:
            yield out
        if done:
            outcome = task.result()
            yield stream.ending(outcome, extras(outcome))
            return


def usage_of(turn: TurnResult) -> dict:
    total = turn.total_usage()  # every call of the turn: references of every round and the aggregator
    return protocol.usage_body(total.prompt_tokens, total.completion_tokens)


MAX_ERROR = 2000  # characters of an upstream error passed on: enough to say what went wrong


# Failures that mean "no answer in time": when every failure that decided the turn is one of
# these, the gateway timed out (504), and a client may well try again; else the upstreams failed (502).
TIMED_OUT = frozenset({FailureKind.TIMEOUT, FailureKind.IDLE, FailureKind.DEADLINE})


def failure(outcome: TurnOutcome) -> protocol.ApiError:
    message = _excerpt(outcome.error.message if outcome.error else "the turn failed")
    kinds = {f.kind for f in outcome.failures}
    status = 504 if kinds and kinds <= TIMED_OUT else 502
    return protocol.ApiError(status, message, kind="upstream_error", code="all_providers_failed")


def _excerpt(text: str, limit: int = MAX_ERROR) -> str:
    """A server's text cut to `limit` characters, then redacted: redaction never runs over more
    than can reach the client."""
    text = str(text)
    return redact(text if len(text) <= limit else text[: limit - 1] + "…")


def proposals(outcome: TurnOutcome) -> dict:
    """The `moa` extension field: every round's answers, the aggregator's, and the usage by role.
    Everything but the answers' own text (finish reasons, errors, ids) goes through redaction."""
    data = outcome.turn.to_dict()
    for result in [r for rnd in data["rounds"] for r in rnd] + [data["aggregator"] or {}]:
        for name, value in result.items():
            if isinstance(value, str) and name != "text":
                result[name] = _excerpt(value)
    data.pop("final", None)  # it is the answer itself
    return data
