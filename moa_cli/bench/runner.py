"""Runs a suite's items through every system: the mix, each of its reference models alone, and
any `--baseline` models; grades or judges the answers as they come in.

Every item is one turn through the turn service (store=None: a benchmark is not a chat
session). All systems share one provider pool. `--concurrency N` bounds the calls in flight:
an item is admitted only when the calls its system runs side by side fit in the budget, so a
turn never waits behind another inside itself and its latency is its own; and the pool itself
never lets more than N calls run at once (a mix wider than N runs its calls N at a time).

The public pieces other frontends build on (a mix search, for one):
    systems_for / judge_system     the systems of a run, and the judge
    definition(system)             a system's full definition, what a run's fingerprint holds
    open_shared_pool               one pool for every system, at most N calls in flight
    Runner(...).run()              answers, grades and judges every pending item
    prediction_record              one answer as saved in predictions.jsonl
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections import deque
from dataclasses import dataclass
from typing import Callable, Protocol

from ..config import ConfigSource, Overrides, Settings
from ..config.model_facts import turn_cost
from ..config.schema import Mix, ModelSettings
from ..providers.pool import ProviderPool
from ..secrets import redact, register_secrets
from ..service import TurnOutcome, TurnService
from . import judge as judging
from .predictions import RunFiles
from .suites import Item, Suite


SANDBOXES = os.cpu_count() or 1  # graded programs in flight


@dataclass(frozen=True)
class System:
    name: str  # the generator: the mix's name, or a model's provider:model
    settings: Settings
    role: str = "reference"  # mix | reference (one of the mix's own models) | baseline (--baseline)

    @property
    def is_mix(self) -> bool:
        return self.role == "mix"

    @property
    def width(self) -> int:
        """The most calls one turn of this system has in flight at once."""
        return max((len(layer) for layer in self.settings.mix.layers), default=1)


def systems_for(source: ConfigSource, settings: Settings, baselines: list[str]) -> list[System]:
    """The mix, then each of its reference models alone (with its settings in the mix), then the
    `--baseline` models; each model once."""
    mix = settings.mix
    systems = [System(mix.name, settings, role="mix")]
    names = {mix.name}
    candidates = [*((m, "reference") for layer in mix.layers for m in layer),
                  *((_model_named(source, settings, spec), "baseline") for spec in baselines)]
    for model, role in candidates:
        if model.label not in names:
            names.add(model.label)
            systems.append(_alone(settings, model, role))
    return systems


def definition(system: System) -> dict:
    """Everything that decides a system's answers: its models with their settings and prompts,
    strategy, run options and the providers it calls (kind and address, never a key or header)."""
    settings = system.settings
    options = {k: v for k, v in dataclasses.asdict(settings.options).items() if k not in ("log", "concurrency")}
    providers = {name: {"kind": settings.providers[name].kind,
                        "base_url": settings.providers[name].resolved_base_url(settings.provider_env)}
                 for name in sorted(settings.mix.providers())}
    return {"role": system.role, "mix": dataclasses.asdict(settings.mix), "options": options, "providers": providers}


def judge_system(source: ConfigSource, settings: Settings, spec: str) -> System:
    """The judge: one model, answering alone, at temperature 0 for steadier verdicts."""
    return _alone(settings, _model_named(source, settings, spec).with_(temperature=0.0), "judge")


def _model_named(source: ConfigSource, settings: Settings, spec: str) -> ModelSettings:
    """The model a `--baseline`/`--judge` PROVIDER:MODEL names, resolved as `-a SPEC` would be."""
    return source.changed(settings, Overrides(aggregator=spec, rounds=0)).mix.aggregator


def _alone(settings: Settings, model: ModelSettings, role: str) -> System:
    """`model` answering on its own (a zero-round mix named after it), with `settings`' options."""
    return System(model.label, settings.with_mix(Mix(name=model.label, layers=(), aggregator=model)), role)


class CallBudget:
    """A first-come-first-served weighted semaphore: at most `size` calls in flight."""

    def __init__(self, size: int):
        self.size = self.free = size
        self._waiters: deque[tuple[int, asyncio.Future]] = deque()

    async def __call__(self, weight: int):
        weight = min(weight, self.size)  # a system wider than the budget still runs, alone
        if self._waiters or self.free < weight:
            future = asyncio.get_running_loop().create_future()
            self._waiters.append((weight, future))
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self.release(weight)  # admitted just as it was cancelled: give it back
                elif (weight, future) in self._waiters:
                    self._waiters.remove((weight, future))
                raise
        else:
            self.free -= weight
        return weight

    def release(self, weight: int) -> None:
        self.free += weight
        while self._waiters and self._waiters[0][0] <= self.free:
            weight, future = self._waiters.popleft()
            if future.done():  # its task was cancelled while it waited
                continue
            self.free -= weight
            future.set_result(None)


class Progress(Protocol):
    def answered(self, system: str, record: dict) -> None: ...
    def judged(self, baseline: str, record: dict) -> None: ...


class Runner:
    def __init__(self, suite: Suite, items: list[Item], systems: list[System], files: RunFiles, pool: ProviderPool,
                 *, concurrency: int, progress: Progress, judge: System | None = None,
                 notice: Callable[[str], None] = lambda text: None):
        self.suite, self.items, self.systems, self.files = suite, items, systems, files
        self.pool, self.progress, self.judge, self.notice = pool, progress, judge, notice
        self.budget = CallBudget(concurrency)
        self.problems = {item.id: item.problem for item in items}  # what grading an answer needs
        _register_secrets(systems[0].settings)
        self.sandboxes = asyncio.Semaphore(SANDBOXES)  # programs in flight (see grading())
        self.isolation = None  # sandbox.Isolation, once probed
        self._group: asyncio.TaskGroup | None = None

    def pending(self) -> list[tuple[System, Item]]:
        """What is left: items in suite order, systems interleaved, so every bar moves."""
        return [(system, item) for item in self.items for system in self.systems
                if (system.name, item.id) not in self.files.predictions]

    async def run(self) -> None:
        """Answer every pending item, grade every answer not yet graded, then judge. One task
        group holds it all: a failure or a cancellation stops every part at once."""
        async with self.grading():
            async with asyncio.TaskGroup() as group:
                self._group = group
                for record in list(self.files.predictions.values()):  # saved before a crash, never graded
                    self._grade_later(record)
                for system, item in self.pending():
                    group.create_task(self._answer(system, item))
            self._group = None
        if self.judge is not None:
            await self.judge_all()

    @contextlib.asynccontextmanager
    async def grading(self):
        """For a graded suite: probe the sandbox (a notice when it falls back to the guard), and
        keep warm sandboxes for the block's gradings."""
        if not self.suite.graded:
            yield
            return
        from .sandbox import guard_notice, isolation, sandboxes

        self.isolation = await isolation()
        if self.isolation.kind != "bwrap":
            self.notice(guard_notice(self.isolation))
            # The guard starts a process per program, time spent mostly waiting on the start:
            # two per core keep the cores busy (benchmarks/bench_grading.py).
            self.sandboxes = asyncio.Semaphore(2 * SANDBOXES)
        # Under bubblewrap each program runs in a warm sandbox: a grading is then CPU work, not
        # start-up, and one per core is enough.
        async with sandboxes(SANDBOXES):
            yield

    async def _answer(self, system: System, item: Item) -> None:
        outcome = await self._turn(system, item.instruction)
        record = prediction_record(self.suite, system, item, outcome)
        await self.files.predictions.save(record)
        self.progress.answered(system.name, record)
        self._grade_later(record)

    def _grade_later(self, record: dict) -> None:
        if not self.suite.graded or (record["generator"], record["item"]) in self.files.grades:
            return
        if record["item"] in self.problems:
            self._group.create_task(self._grade(record))

    async def _grade(self, record: dict) -> None:
        from .sandbox import grade

        async with self.sandboxes:
            try:
                run = await grade(self.problems[record["item"]], record["output"] or "")
                grade_record = {"passed": run.passed, "status": run.status, "detail": run.detail,
                                "isolation": run.isolation}
            except OSError as error:  # the sandbox could not start: a failed grade, with why
                grade_record = {"passed": False, "status": "error", "isolation": self.isolation.kind,
                                "detail": f"the test could not run: {error.strerror or error}"}
        await self.files.grades.save({"generator": record["generator"], "item": record["item"], **grade_record})

    async def judge_all(self) -> None:
        """Judge the mix against every baseline on every item, both orders per pair."""
        mix = self.systems[0]
        predictions = self.files.predictions.records
        async with asyncio.TaskGroup() as group:
            for item in self.items:
                for baseline in self.systems[1:]:
                    if (baseline.name, item.id) not in self.files.judgements:
                        group.create_task(self._judge(item, predictions[(mix.name, item.id)],
                                                      predictions[(baseline.name, item.id)]))

    async def _judge(self, item: Item, mix_record: dict, base_record: dict) -> None:
        result = judging.without_judge(mix_record["status"] == "ok", base_record["status"] == "ok")
        verdicts, replies, failed = [None, None], ["", ""], [False, False]
        if result is None:
            orders = [(mix_record["output"], base_record["output"]), (base_record["output"], mix_record["output"])]
            outcomes = await asyncio.gather(*(self._turn(self.judge, judging.judge_question(item.instruction, a, b))
                                              for a, b in orders))
            replies = [o.turn.final if o.ok else f"(judge failed: {o.error})" for o in outcomes]
            failed = [not o.ok for o in outcomes]
            verdicts = [judging.read_verdict(r) if o.ok else None for r, o in zip(replies, outcomes)]
            result = judging.combine(*verdicts)
        record = {"baseline": base_record["generator"], "item": item.id, "result": result,
                  "mix_first": verdicts[0], "mix_second": verdicts[1],
                  "consistent": judging.consistent(*verdicts) if any(replies) else None,
                  "judge_failed": failed, "judge": self.judge.settings.mix.aggregator.label, "replies": replies}
        await self.files.judgements.save(record)
        self.progress.judged(record["baseline"], record)

    answers = None  # an AnswerLedger (`--answers FILE`): answers shared with searches and other runs

    async def _turn(self, system: System, question: str) -> TurnOutcome:
        """One turn of `system`, started once the calls it runs side by side fit in the budget."""
        weight = await self.budget(system.width)
        try:
            if self.answers is not None:
                from .answer_ledger import ledger_turn

                return await ledger_turn(self.answers, system.settings, self.pool, question)
            return await TurnService(system.settings, pool=self.pool).run(question, history=[])
        finally:
            self.budget.release(weight)


def _register_secrets(settings: Settings) -> None:
    """Every key this process could leak (those of providers outside the systems too) joins the
    process-wide registry, so every `redact` call hides them."""
    from ..config import keystore, secret_values

    register_secrets(*secret_values(settings.providers, settings.provider_env, keystore.load_keys()))


def prediction_record(suite: Suite, system: System, item: Item, outcome: TurnOutcome) -> dict:
    """One answer in AlpacaEval's fields (instruction, output, generator, dataset) plus ours."""
    turn = outcome.turn
    dollars, unpriced = turn_cost(turn, system.settings.prices)
    usage = turn.total_usage()
    record = {
        "instruction": item.instruction,
        "output": turn.final,
        "generator": system.name,
        "dataset": suite.name,
        "item": item.id,
        "status": outcome.status,
        "error": redact(str(outcome.error)) if outcome.error else None,
        # The calls' failures that decided a failed turn, as values: report and scripts count kinds.
        "failures": [{"model": f.label, "kind": f.kind.value, "status": f.status} for f in outcome.failures],
        # The error's exit code (3: a rejected key), so the run's exit code never reads error text.
        "error_code": getattr(outcome.error, "exit_code", None) if outcome.error else None,
        "latency": round(turn.elapsed, 4),
        "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens},
        "cost": None if unpriced else round(dollars, 8),
    }
    if system.is_mix:
        record["fallback"] = turn.fallback
        # Every round the strategy ran; `role` tells answers from reviews (peer review).
        record["references"] = [{"model": r.call.label, "round": r.call.round, "role": str(r.call.role),
                                 "status": r.status, "output": r.text,
                                 "failure_kind": r.failure.kind.value if r.failure else None}
                                for layer in turn.rounds for r in layer]
    return record


class _Both:
    """Two limits held together: the run's and a provider's own."""

    def __init__(self, first, second):
        self.first, self.second = first, second

    async def __aenter__(self):
        await self.first.acquire()
        try:
            await self.second.acquire()
        except BaseException:
            self.first.release()
            raise

    async def __aexit__(self, *exc):
        self.second.release()
        self.first.release()
        return False


class BenchPool(ProviderPool):
    """A pool where at most `calls` model calls run at once, over every provider together (on
    top of any provider's own cap): `--concurrency 1` means one call in flight."""

    def __init__(self, factory, per_provider: int | None, calls: int):
        super().__init__(factory, per_provider)
        self.calls = asyncio.Semaphore(calls)

    def limit(self, name: str):
        own = super().limit(name)
        return self.calls if own is None else _Both(self.calls, own)


def open_shared_pool(systems: list[System], extra: list[System] = (), concurrency: int | None = None) -> ProviderPool:
    """One pool for every system, every provider opened now: a missing key fails before any call."""
    from ..config import keystore
    from ..providers import build_provider

    settings = systems[0].settings
    stored = keystore.load_keys()

    def factory(name: str):
        return build_provider(settings.providers[name], settings.provider_env, stored, settings.local_models,
                              many_calls=True)

    pool = BenchPool(factory, settings.options.concurrency, concurrency or 1 << 20)
    for system in [*systems, *extra]:
        for name in sorted(system.settings.mix.providers()):
            pool.get(name)
    return pool

