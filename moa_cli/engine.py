"""The Mixture-of-Agents call runner: the mix's strategy plans rounds of calls, then an aggregator;
the engine runs them concurrently, with retries, deadlines and cut-offs.

No terminal code lives here. The engine tells whoever listens what happens through events (see
`events.py`); renderers, the REPL and the JSON output are all such listeners.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import replace
from typing import Callable, Sequence

from . import prompts, strategies
from .errors import MoaError, ProviderError, TurnFailed
from .failure import Failure, FailureKind
from .secrets import redact
from .events import (
    Call,
    CallDelta,
    CallFinished,
    CallProgress,
    CallRestarted,
    CallResult,
    CallStalled,
    CallStarted,
    Event,
    Notice,
    TurnResult,
)
from .config.schema import Mix, ModelSettings, RunOptions
from .providers.base import ChatRequest, Chunk, Provider, Usage
from .providers.pool import ProviderPool
from .strategies import Role

Listener = Callable[[Event], None]

# Without a fixed --proposer-deadline, a reference that has sent nothing for this long, once half
# the round has answered, is cut: max(STALL_MIN, STALL_FACTOR x the time those answers took).
STALL_MIN = 15.0
STALL_FACTOR = 2.0
# A strategy plans rounds from results; this bounds a strategy that never stops planning.
MAX_ROUNDS = 32
# Once a round could go on without it, a reference that has sent nothing for this long is
# reported stalled (CallStalled), so a display can say it risks the cut before it happens.
STALL_WARN = 5.0


class _Deadline:
    """When a call must be done by (loop time); moved on while the call waits in line."""

    def __init__(self, at: float):
        self.at = at


class _IdleWatch:
    """Expires `timeout` once `idle` seconds have passed with no progress.

    Progress only records its time (`seen`): one timer, due when the silence would end if
    nothing more came, looks when it fires whether something did, and then waits for the new
    end instead. Rescheduling the timeout itself for every chunk cancelled and scheduled a timer
    per chunk, a large share of the event loop's time when answers stream fast."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: asyncio.Timeout, idle: float):
        self._loop, self._timeout, self._idle = loop, timeout, idle
        self._last = loop.time()
        self._armed_from: float | None = None  # the progress time the pending timer was set from
        self._handle: asyncio.TimerHandle | None = None

    def seen(self, now: float) -> None:
        self._last = now
        if self._handle is None:
            self._arm()

    def pause(self) -> None:
        """No idle clock (the call waits in line) until the next `seen`."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    stop = pause

    def _arm(self) -> None:
        self._armed_from = self._last
        self._handle = self._loop.call_at(self._last + self._idle, self._check)

    def _check(self) -> None:
        self._handle = None
        if self._last == self._armed_from:  # nothing since: the silence lasted `idle` seconds
            self._timeout.reschedule(self._last + self._idle)  # in the past: expires at once
        else:
            self._arm()


class _NullLimit:
    async def __aenter__(self):
        return None

    async def __aexit__(self, *exc):
        return False


class Engine:
    """Runs one turn at a time. `turn` is the turn so far, readable even after a failure or a
    cancellation: its results are filled in as calls progress."""

    def __init__(
        self,
        pool: ProviderPool | None,
        options: RunOptions = RunOptions(),
        listeners: Listener | Sequence[Listener] = (),
        fit: Callable[[ModelSettings, tuple[dict, ...]], tuple[tuple[dict, ...], bool]] | None = None,
    ):
        self.pool = pool
        self.options = options
        self._listeners: list[Listener] = [listeners] if callable(listeners) else list(listeners)
        # What each listener that raised raised: it was detached, the turn went on.
        self.listener_errors: list[BaseException] = []
        self.turn: TurnResult | None = None
        self._fit = fit  # trims a call's messages to the model's context window
        self._warned_trim = False
        self._cut: dict[Call, str] = {}  # calls the round cut and why, told apart from a cancelled turn
        self._gone: set[str] = set()  # references that failed for good this turn (404, 401)
        self._activity: dict[Call, float] = {}  # when each running call last sent something

    def emit(self, event: Event) -> None:
        """Tell every listener. A listener that raises is detached and its error kept: output
        failing (a closed pipe, a full disk) is never a model's failure."""
        for listener in list(self._listeners):
            self._guarded(listener, listener, event)

    def _guarded(self, listener: Listener, method: Callable, *args) -> None:
        if listener not in self._listeners:
            return
        try:
            method(*args)
        except Exception as error:  # noqa: BLE001 - whatever a listener does wrong stays its own
            self._listeners.remove(listener)
            self.listener_errors.append(error)
            # A detached listener is told to stop, so a live display does not go on redrawing
            # (or keep the cursor hidden) for the rest of the turn.
            close = getattr(listener, "close", None)
            if close is not None and method is not close:
                try:
                    close()
                except Exception:  # noqa: BLE001 - it is already failing; the first error is kept
                    pass

    def finish_listeners(self, turn: TurnResult, error: str | None = None) -> None:
        """The turn is over: listeners with a `finish(turn, error)` print their last words."""
        self._call_hook("finish", turn, error)

    def close_listeners(self) -> None:
        """The turn was cancelled: listeners with a `close()` stop drawing, keeping the screen."""
        self._call_hook("close")

    def _call_hook(self, name: str, *args) -> None:
        """Call the optional method `name` of every listener that has one, guarded like `emit`."""
        for listener in list(self._listeners):
            hook = getattr(listener, name, None)
            if hook is not None:
                self._guarded(listener, hook, *args)

    async def run_turn(self, mix: Mix, conversation: Sequence[dict]) -> TurnResult:
        """Run one turn. `conversation` ends with the new user message and is never mutated.

        The mix's strategy plans each round and the aggregator's call from the results so far;
        the engine runs them. A reference round in which every call failed fails the turn.
        """
        conversation = tuple(dict(m) for m in conversation)
        turn = self.turn = TurnResult(mix=mix.name, started=time.time())
        t0 = time.monotonic()
        self._t0 = t0
        self._warned_trim = False
        self._cut.clear()
        self._gone.clear()
        try:
            strategy = strategies.get(mix.strategy)
            so_far = strategies.TurnSoFar(mix, conversation)
            while (planned := strategy.next_round(so_far)) is not None:
                round_no = len(turn.rounds) + 1
                if round_no > MAX_ROUNDS:
                    raise TurnFailed(f"the {strategy.name} strategy planned more than {MAX_ROUNDS} rounds", turn)
                planned = self._without_gone(planned)
                results = [CallResult(Call(planned.role, round_no, i, step.model.label, step.model.temperature))
                           for i, step in enumerate(planned.steps)]
                turn.rounds.append(results)  # filled in as the calls progress
                await self._round(planned, results)
                ok = [r for r in results if r.status == "ok"]
                if not ok and planned.role is Role.REFERENCE:
                    reasons = "; ".join(_said(r) for r in results)
                    raise TurnFailed(f"every reference model failed in round {round_no} ({reasons})", turn,
                                     [r.failure for r in results if r.failure])
                so_far = replace(so_far, played=(*so_far.played, strategies.Played(planned, tuple(results))))

            step = strategy.aggregate(so_far)
            turn.aggregate = CallResult(Call(Role.AGGREGATOR, len(turn.rounds) + 1, 0, step.model.label))
            call = turn.aggregate.call
            await self._call(turn.aggregate, step.model, step.messages)
            answers = so_far.latest(Role.REFERENCE)
            if turn.aggregate.status == "ok":
                turn.final = turn.aggregate.text
            elif self.options.fallback and answers is not None and answers.ok():
                best = _best_answer(answers.results, mix)
                turn.final, turn.fallback = best.text, best.call.label
                self.emit(
                    Notice(
                        f"aggregator {call.label} failed ({_said(turn.aggregate, labelled=False)}); "
                        f"answering with {best.call.label}'s reference answer"
                    )
                )
            else:
                raise TurnFailed(f"aggregator {call.label} failed: {_said(turn.aggregate, labelled=False)}", turn,
                                 [turn.aggregate.failure] if turn.aggregate.failure else [])
        finally:
            turn.elapsed = time.monotonic() - t0
        return turn

    def _without_gone(self, planned: strategies.Round) -> strategies.Round:
        """The round without the references that failed for good earlier in the turn (no such
        model, no access): asking them again would only fail, and warn, again."""
        if planned.role is not Role.REFERENCE or not self._gone:
            return planned
        steps = tuple(step for step in planned.steps if step.model.label not in self._gone)
        return replace(planned, steps=steps) if steps else planned

    async def _round(self, planned: strategies.Round, results: list[CallResult]) -> None:
        calls = [r.call for r in results]
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._call(result, step.model, step.messages))
                     for result, step in zip(results, planned.steps)]
            await self._cut_stragglers(tasks, calls)

    async def _cut_stragglers(self, tasks: list[asyncio.Task], calls: list[Call]) -> None:
        """Wait for the round, cutting the stragglers the options allow to be cut.

        With a fixed `proposer_deadline`, once `min_proposers` answers are in and the deadline has
        passed, every unfinished call is cut. Without one (the default), once `min_proposers` and
        at least half of the round have answered, a call that has sent nothing for
        max(STALL_MIN, STALL_FACTOR x the time those answers took) is cut: a hung model cannot hold
        up the turn, while a slow model that is still streaming is never cut.

        Once the round could go on without them, calls silent for STALL_WARN seconds are reported
        (CallStalled, once per silence), with how long until the cut: displays show this decision
        instead of guessing at the rule.
        """
        opts = self.options
        start = time.monotonic()
        need = min(max(opts.min_proposers, 1), len(tasks))
        fixed = opts.proposer_deadline
        quorum = need if fixed is not None else max(need, (len(tasks) + 1) // 2)
        call_of = dict(zip(tasks, calls))
        pending = set(tasks)
        quorum_after: float | None = None  # seconds into the round when the quorum was reached
        warned: dict[Call, float] = {}  # the activity time each reported silence started from
        while pending:
            now = time.monotonic()
            if quorum_after is None:
                ok = sum(1 for t in tasks if t.done() and t.result().status == "ok")
                if ok >= quorum:
                    quorum_after = now - start
            wake: float | None = None
            if quorum_after is not None and fixed is not None:
                if now >= start + fixed:
                    self._cut_tasks(pending, call_of, f"cut: too slow for the round deadline "
                                                      f"(--proposer-deadline {fixed:g}s)")
                    return  # the TaskGroup waits for the cut calls to close their streams
                wake = start + fixed
                for task in pending:
                    wake = self._report_stall(call_of[task], now, start + fixed, warned, wake)
            elif quorum_after is not None:
                window = max(STALL_MIN, STALL_FACTOR * quorum_after)
                stalled = set()
                for task in pending:
                    last = self._activity.get(call_of[task])
                    if last is None:
                        continue  # still queued behind --concurrency: it has not had its chance
                    if now - last >= window:
                        stalled.add(task)
                    else:
                        wake = last + window if wake is None else min(wake, last + window)
                        wake = self._report_stall(call_of[task], now, last + window, warned, wake)
                if stalled:
                    self._cut_tasks(stalled, call_of, f"cut: too slow for the round (no output for {window:.0f}s "
                                                      "after the others had answered)")
                    pending -= stalled
                    if not pending:
                        return
            timeout = None if wake is None else max(wake - now, 0.0)
            _, pending = await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)

    def _report_stall(self, call: Call, now: float, cut_at: float, warned: dict[Call, float],
                      wake: float | None) -> float | None:
        """Emit CallStalled for `call` once it has been silent STALL_WARN seconds (once per silence);
        return the wake-up time, moved earlier when that moment is still to come."""
        last = self._activity.get(call)
        if last is None or warned.get(call) == last:
            return wake
        if now - last >= STALL_WARN:
            warned[call] = last
            self.emit(CallStalled(call, silent_for=now - last, cut_in=max(cut_at - now, 0.0)))
            return wake
        at = last + STALL_WARN
        return at if wake is None else min(wake, at)

    def _cut_tasks(self, tasks: set[asyncio.Task], call_of: dict, reason: str) -> None:
        for task in tasks:
            self._cut[call_of[task]] = reason
            task.cancel("cut")

    async def _call(self, result: CallResult, model: ModelSettings, messages: tuple[dict, ...]) -> CallResult:
        """One model call with retries, filling in `result`. Never raises a ProviderError:
        failures become the result."""
        call = result.call
        if self._fit is not None:
            messages, trimmed = self._fit(model, messages)
            if trimmed and not self._warned_trim:
                self._warned_trim = True
                self.emit(Notice(f"the conversation is too long for {call.label}: oldest turns and long answers were trimmed"))
        timeout = model.timeout or self.options.timeout
        request = ChatRequest(
            model=model.model,
            messages=messages,
            temperature=model.temperature,
            max_tokens=model.max_tokens,
            timeout=timeout,
            seed=model.seed,
        )
        result.started = self._now()
        self.emit(CallStarted(call))
        tries = max(self.options.retries, 0) + 1
        # Every wait is bounded: the read timeout (per read), an idle limit (no text for `timeout`
        # seconds, whatever keep-alive comments or empty events arrive) and a total deadline for
        # the call, retries and their pauses included.
        limit = self.options.call_deadline(timeout)
        clock = _Deadline(asyncio.get_running_loop().time() + limit)
        try:
            for attempt in range(tries):
                try:
                    await self._stream_into(result, model.provider, request, clock, limit, timeout)
                    if not result.text.strip():
                        # Nothing to show or to build on: a failure, so the fallback can answer.
                        raise ProviderError(f"{call.label}: the model returned an empty answer",
                                            detail="the model returned an empty answer", kind=FailureKind.EMPTY)
                    result.status = "ok"
                    if not result.usage.prompt_tokens and not result.usage.completion_tokens:
                        # Some servers (llama.cpp's, older vLLM) send no usage: estimate it, and say so.
                        result.usage = Usage(prompt_tokens=prompts.estimate_tokens(messages),
                                             completion_tokens=result.chunks)
                        result.usage_estimated = True
                    break
                except Exception as error:  # noqa: BLE001 - a provider bug must not kill the turn
                    failure = _failure_of(error, model)
                    delay = _retry_delay(error, attempt, self.options.backoff)
                    left = clock.at - asyncio.get_running_loop().time()
                    later = getattr(error, "retry_after", None)
                    if failure.retryable and attempt < tries - 1 and later is not None and (
                            not later <= RETRY_AFTER_CAP or later >= left):
                        # The server named a time past what moa would wait: waiting the cap and
                        # trying anyway would only ask again too early. Fail now, saying when.
                        bound = (f"no time left to retry within the {limit:g}s deadline" if not later < left
                                 else f"past the {RETRY_AFTER_CAP:g}s Retry-After cap; not retried")
                        failure = replace(failure, detail=f"{failure.detail} (the server said to retry in "
                                                          f"{_duration(later)}: {bound})", retryable=False)
                        result.status, result.failure = "failed", failure
                        break
                    if not failure.retryable or attempt == tries - 1 or delay >= left:
                        if failure.retryable and attempt < tries - 1:
                            failure = replace(failure, detail=f"{failure.detail} (no time left to retry "
                                                              f"within the {limit:g}s deadline)")
                        result.status, result.failure = "failed", failure
                        if call.role == Role.REFERENCE and _permanent(error, failure):
                            self._gone.add(call.label)  # not asked again in a later round
                        break
                    self.emit(Notice(f"{call.label}: {failure.describe()} — retrying in {delay:.1f}s "
                                     f"(try {attempt + 2} of {tries})"))
                    if result.text:
                        self.emit(CallRestarted(call))  # the retry starts the answer from scratch
                    result.text, result.usage, result.chunks = "", Usage(), 0
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            cut = call in self._cut
            result.status = "cut" if cut else "cancelled"
            kind, why = (FailureKind.CUT, self._cut[call]) if cut else (FailureKind.CANCELLED, "cancelled")
            result.failure = Failure(kind, why, provider=model.provider, model=model.model)
            result.finished = self._now()
            self.emit(CallFinished(call, result))
            if cut:
                return result  # a cut is the round's decision, not a cancellation of the turn
            raise
        finally:
            self._activity.pop(call, None)
        result.finished = self._now()
        self.emit(CallFinished(call, result))
        return result

    async def _stream_into(self, result: CallResult, provider_name: str, request: ChatRequest,
                           clock: _Deadline, limit: float, idle: float) -> None:
        provider = self.pool.get(provider_name)
        call = result.call
        loop = asyncio.get_running_loop()
        total = asyncio.timeout_at(clock.at)
        quiet = asyncio.timeout(None)  # expired by `watch`, whose clock every chunk of output resets
        watch: _IdleWatch | None = None
        queued_since: float | None = None

        def progressed(chunk: Chunk) -> None:
            # A call waiting in line for a shared model (local samples take turns) is making
            # progress, not silent: both clocks stop, and start again when its generation does,
            # the deadline moved on by the time spent in line.
            nonlocal queued_since
            now = loop.time()
            if chunk.queued:
                if queued_since is None:
                    queued_since = now
                total.reschedule(None)
                watch.pause()
                self._activity.pop(call, None)  # not yet had its chance: never cut as stalled
                return
            if queued_since is not None:
                clock.at += now - queued_since
                queued_since = None
                total.reschedule(clock.at)
            watch.seen(now)

        try:
            async with total, self.pool.limit(provider_name) or _NullLimit(), quiet:
                watch = _IdleWatch(loop, quiet, idle)
                watch.seen(loop.time())
                try:
                    await self._read_stream(result, provider, request, progressed)
                finally:
                    watch.stop()  # before `quiet` is left: a timeout that has exited cannot be moved
        except TimeoutError:
            if total.expired():
                detail = f"no complete answer within the {limit:g}s deadline (--deadline)"
                raise ProviderError(f"{call.label}: {detail}", detail=detail, kind=FailureKind.DEADLINE) from None
            if quiet.expired():
                detail = f"no output for {idle:g}s (--timeout)"
                raise ProviderError(f"{call.label}: {detail}", detail=detail, kind=FailureKind.IDLE,
                                    retryable=True) from None
            raise

    async def _read_stream(self, result: CallResult, provider: Provider, request: ChatRequest, progressed) -> None:
        """Read one stream into `result`. Providers yield chunks only for output (text, usage; an
        empty text is output held back, say by the stream redactor), so keep-alive comments and
        empty events never call `progressed`."""
        call = result.call
        self._activity[call] = time.monotonic()
        stream = provider.stream(request)
        try:
            async for chunk in stream:
                progressed(chunk)
                if not chunk.queued:
                    self._activity[call] = time.monotonic()
                if chunk.text:
                    if result.first_token is None:
                        result.first_token = self._now()
                    result.text += chunk.text
                    result.chunks += 1
                    if self._listeners:  # no event built when nobody listens (bench, a turn answered whole)
                        self.emit(CallDelta(call, chunk.text))
                if chunk.usage is not None:
                    result.usage = chunk.usage
                if chunk.finish_reason:
                    result.finish_reason = chunk.finish_reason
                if chunk.note or chunk.began:
                    self.emit(CallProgress(call, chunk.note or "", queued=chunk.queued, began=chunk.began))
        finally:
            await stream.aclose()

    def _now(self) -> float:
        return time.monotonic() - self._t0


def _failure_of(error: Exception, model: ModelSettings) -> Failure:
    """What a call's exception means, as a value. Its detail is scrubbed again here: it is kept
    in --json, the session and exports."""
    if isinstance(error, ProviderError):
        kind, detail, status, retryable = error.kind, error.detail, error.status, error.retryable
    elif isinstance(error, MoaError):  # e.g. a local model that cannot be loaded
        kind, detail, status, retryable = FailureKind.INTERNAL, error.message, None, False
    else:  # a provider's bug
        kind, detail, status, retryable = FailureKind.INTERNAL, f"{type(error).__name__}: {error}", None, False
    return Failure(kind, redact(detail), status=status, retryable=retryable, provider=model.provider,
                   model=model.model)


def _said(result: CallResult, labelled: bool = True) -> str:
    """Why the call did not answer, in a sentence, naming it unless the sentence already does."""
    reason = result.failure.describe() if result.failure else result.status
    return f"{result.call.label}: {reason}" if labelled else reason


# A server may ask for a pause before the next try (Retry-After); moa waits a minute at most,
# and never past the call's deadline (then the call fails at once instead).
RETRY_AFTER_CAP = 60.0


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "an unbounded time"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f}s"


def _permanent(error: Exception, failure: Failure) -> bool:
    """A failure that asking again in the same turn cannot mend: no such model, no access."""
    from .errors import AuthError, ModelNotFound

    return isinstance(error, (AuthError, ModelNotFound)) or (
        failure.kind is FailureKind.HTTP and failure.status in (401, 403, 404))


def _retry_delay(error: Exception, attempt: int, backoff: float) -> float:
    retry_after = getattr(error, "retry_after", None)  # a ProviderError's, from the server
    if retry_after is not None and math.isfinite(retry_after):
        return min(max(retry_after, 0.0), RETRY_AFTER_CAP)
    base = backoff * (2**attempt)
    return base * (0.5 + random.random() / 2)  # jitter spreads retries of parallel calls apart


def _best_answer(results: Sequence[CallResult], mix: Mix) -> CallResult:
    """The fallback answer: the highest-weighted successful reference, longer answers breaking ties."""
    weights = {m.label: m.weight for layer in mix.layers for m in layer}
    ok = [r for r in results if r.status == "ok"]
    return max(ok, key=lambda r: (weights.get(r.call.label, 1.0), len(r.text)))
