"""The answer ledger: every model answer a benchmark asked for, kept by the request that asked it.

A model's answer depends only on what was sent: the provider, the model, the messages and the
sampling settings. A search over mixes sends the same request many times (a round-1 answer is
the same in every configuration that has that model, and in the model's solo row), so the ledger
asks each distinct request once and replays it for every later turn that sends it again.

It sits between the engine and the providers (`MemoPool` wraps the shared provider pool), so
every configuration still runs as a real turn through the turn service: prompts, fallbacks,
usage and cost are exactly those of the mix run alone. Identical requests in flight at the same
moment are asked once (the later ones wait for the first). Only whole, successful answers are
kept; a failure is asked again next time.

The file is append-only JSONL (see predictions.Ledger): a `kill -9` loses at most the answer being
written, and `--resume` replays everything saved. Each record keeps how long the call took, so
a replayed answer is charged its original time when a configuration's latency is computed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

from ..providers.pool import ProviderPool
from ..providers.base import ChatRequest, Chunk, Usage
from .predictions import Ledger


SYNC_EVERY = 64  # see Ledger.sync_every: flushed at once (kill -9 safe), fsync'ed in batches


def request_key(provider: str, request: ChatRequest) -> str:
    """What makes two calls the same call. The timeout is left out: it bounds a wait, it does
    not change the answer."""
    payload = {"provider": provider, "model": request.model, "messages": list(request.messages),
               "temperature": request.temperature, "max_tokens": request.max_tokens, "seed": request.seed,
               "extra": request.extra}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def by_key(record: dict) -> tuple:
    """A record's ledger key; a malformed one (an edited file) gets a key of its own, so it never
    hides the well-formed answer asked again after it."""
    if isinstance(record.get("key"), str) and _well_formed(record):
        return (record["key"],)
    return ("malformed", id(record))


@dataclass
class Served:
    """One answer a turn received through the ledger: what, from whom, and its original time."""

    label: str
    text: str
    duration: float
    replayed: bool
    key: str = ""


@dataclass
class AnswerLedger:
    path: Path
    ledger: Ledger = field(init=False)
    asked: int = 0  # calls sent to a provider by this process
    replayed: int = 0  # answers served from the ledger (or from an identical call in flight)
    spent: float = 0.0  # dollars of the calls this process asked, at known prices
    unpriced: set = field(default_factory=set)
    prices: dict = field(default_factory=dict)
    _inflight: dict = field(default_factory=dict)

    def __post_init__(self):
        self.ledger = Ledger(self.path, by_key, sync_every=SYNC_EVERY)

    def load(self) -> "AnswerLedger":
        self.ledger.load()
        return self

    def __len__(self) -> int:
        return sum(1 for key in self.ledger.records if key[0] != "malformed")

    def get(self, key: str) -> dict | None:
        """The saved answer to this request, if there is a well-formed one (a ledger file given
        with --answers may have been edited: a record of the wrong shape is asked again)."""
        record = self.ledger.records.get((key,))
        return record if record is not None and _well_formed(record) else None

    def pool(self, shared: ProviderPool, trace: list[Served] | None = None) -> "MemoPool":
        """A pool for one turn: the shared providers behind this ledger, noting what it served."""
        return MemoPool(shared, self, trace if trace is not None else [])

    def close(self) -> None:
        self.ledger.close()


def _well_formed(record: dict) -> bool:
    usage = record.get("usage")
    duration = record.get("duration")
    return (isinstance(record.get("output"), str) and bool(record["output"].strip())
            and isinstance(duration, (int, float)) and not isinstance(duration, bool) and 0 <= duration < 1e6
            and isinstance(usage, dict)
            and all(isinstance(usage.get(k), int) and not isinstance(usage.get(k), bool) and 0 <= usage[k] < 1e12
                    for k in ("prompt_tokens", "completion_tokens"))
            and (record.get("finish_reason") is None or isinstance(record["finish_reason"], str)))


class MemoPool(ProviderPool):
    """The shared pool seen through the ledger. It owns nothing: closing it closes nothing."""

    def __init__(self, shared: ProviderPool, answers: AnswerLedger, trace: list[Served]):
        # The same request twice in one turn (Self-MoA: one model sampled several times) is two
        # samples, not one answer: the n-th copy in a turn is the request's n-th sample.
        samples: dict[str, set[int]] = {}
        super().__init__(lambda name: MemoProvider(name, shared.get(name), answers, trace, samples))
        self.shared = shared

    def limit(self, name: str):
        return self.shared.limit(name)

    async def warm_up(self) -> None:
        await self.shared.warm_up()

    async def aclose(self) -> None:
        self._providers.clear()


class MemoProvider:
    def __init__(self, name: str, inner, answers: AnswerLedger, trace: list[Served], samples: dict):
        self.name, self.inner, self.answers, self.trace, self.samples = name, inner, answers, trace, samples

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        base = request_key(self.name, request)
        taken = self.samples.setdefault(base, set())
        sample = next(n for n in range(1, len(taken) + 2) if n not in taken)
        taken.add(sample)
        kept = False
        inner = self._stream(request, base if sample == 1 else f"{base}#{sample}")
        try:
            async for chunk in inner:
                yield chunk
            kept = True
        finally:
            await inner.aclose()
            if not kept:
                taken.discard(sample)  # a failed try (a retry follows) does not use up a sample

    async def _stream(self, request: ChatRequest, key: str) -> AsyncIterator[Chunk]:
        answers = self.answers
        label = f"{self.name}:{request.model}"
        record = answers.get(key)
        while record is None and key in answers._inflight:
            # The same call is already on its way for another turn: wait for it, do not ask twice.
            await asyncio.shield(answers._inflight[key])
            record = answers.get(key)
            if record is None:
                break  # it failed; this turn asks for itself
        if record is not None:
            answers.replayed += 1
            self.trace.append(Served(label, record["output"], record["duration"], True, key))
            usage = record["usage"]
            yield Chunk(text=record["output"])
            yield Chunk(usage=Usage(usage["prompt_tokens"], usage["completion_tokens"]),
                        finish_reason=record.get("finish_reason"))
            return
        done = asyncio.get_running_loop().create_future()
        answers._inflight[key] = done
        try:
            started = time.monotonic()
            text, usage, finish, first = [], None, None, None
            answers.asked += 1
            stream = self.inner.stream(request)
            try:
                async for chunk in stream:
                    if chunk.text:
                        first = first if first is not None else time.monotonic() - started
                        text.append(chunk.text)
                    if chunk.usage is not None:
                        usage = chunk.usage
                    if chunk.finish_reason:
                        finish = chunk.finish_reason
                    yield chunk
            finally:
                await stream.aclose()
            duration = time.monotonic() - started
            output = "".join(text)
            if usage is not None:
                from ..config.model_facts import cost

                dollars = cost(label, usage, answers.prices)
                if dollars is None:
                    answers.unpriced.add(label)
                else:
                    answers.spent += dollars
            if output.strip():  # the engine counts an empty answer as a failure: never replay one
                answers.ledger.add({"key": key, "model": label, "output": output, "finish_reason": finish,
                                    "usage": {"prompt_tokens": usage.prompt_tokens if usage else 0,
                                              "completion_tokens": usage.completion_tokens if usage else 0},
                                    "duration": round(duration, 6),
                                    "first_token": None if first is None else round(first, 6)})
                self.trace.append(Served(label, output, duration, False, key))
        finally:
            answers._inflight.pop(key, None)
            done.set_result(None)

    async def list_models(self) -> list[str]:
        return await self.inner.list_models()

    async def aclose(self) -> None:  # the shared pool closes the real provider
        return None


def modelled_latency(turn, trace: list[Served]) -> float:
    """The turn's latency as the mix alone would have seen it: for each round the slowest of
    its reference calls, plus the aggregator; every call charged its original duration (a
    replayed answer its recorded time, not the instant it took to replay)."""
    unused = list(trace)

    def duration(result) -> float:
        for i, served in enumerate(unused):
            if served.label == result.call.label and served.text == result.text:
                return unused.pop(i).duration
        if result.started is not None and result.finished is not None:
            return result.finished - result.started  # a failed call: the time it really took
        return 0.0

    total = 0.0
    for layer in turn.rounds:
        total += max((duration(r) for r in layer), default=0.0)
    if turn.aggregate is not None:
        total += duration(turn.aggregate)
    return total


async def ledger_turn(answers: AnswerLedger, settings, shared: ProviderPool, question: str, history=(),
                      trace: list[Served] | None = None):
    """One turn through the ledger, its latency modelled from the recorded call times; what it
    was served is appended to `trace` when one is given."""
    from ..service import TurnService

    trace = [] if trace is None else trace
    outcome = await TurnService(settings, pool=answers.pool(shared, trace)).run(question, history=list(history))
    outcome.turn.elapsed = modelled_latency(outcome.turn, trace)
    return outcome
