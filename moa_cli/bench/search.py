"""`moa bench SUITE --search POOL`: which mix of these models is best for this suite and budget?

The configurations (`enumerate_configurations`):
    every pool model alone;
    every proposer set of the sizes asked for (`--proposers 2,3`; default 2 up to the pool size),
    with every pool model as aggregator, for each `--rounds` count and `--strategies` name.

Shared answers (answer_ledger.py): a round-1 answer depends only on (model, its settings, item),
so it is asked once and replayed in every configuration that has that model and in its solo row;
a later round's call is shared by every configuration that sends the same inputs; only the
aggregations are per configuration. Each configuration still runs as a real turn through the
turn service, so its answer, tokens and cost are its own; its latency is modelled from the
recorded call times (slowest reference per round, plus the aggregator), never from a replay.

Scheduling: for each item the solo rows run first (they are every model's round-1 answer); the
item's configurations follow. One call budget (`--concurrency`) covers the whole search; a
configuration is admitted only when the calls it will make side by side fit, so its calls never
wait behind another configuration's.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import Overrides, Settings
from ..config.schema import Mix, ModelSettings
from ..errors import UsageError
from ..prompts import estimate_tokens
from .answer_ledger import AnswerLedger, ledger_turn
from .runner import Runner, System, _model_named  # noqa: F401 (used by search_command)
from .suites import Item

# Strategies whose one-round turn is the references' answers then one aggregation; others (peer
# review, self-moa) may plan more calls per turn, so they are budgeted at their full width.
AGGREGATE_ONLY = frozenset({"synthesize", "rank", "coding"})
EXIT_OVER_BUDGET = 6  # --max-cost: the estimate or the spend passed the budget
OUTPUT_TOKENS_GUESS = 400  # per answer, for the estimate, when a model has no max_tokens


def strategy_names() -> list[str]:
    """The aggregation strategies a search may try: the strategy registry's (moa_cli/strategies/)."""
    from .. import strategies

    return list(strategies.names())


# ------------------------------------------------------------------------- what to run


@dataclass(frozen=True)
class Configuration:
    name: str
    mix: Mix
    solo: bool

    @property
    def proposers(self) -> tuple[str, ...]:
        return tuple(m.label for m in self.mix.layers[0]) if self.mix.layers else ()

    @property
    def calls_alone(self) -> int:
        """Calls one item costs when this configuration runs on its own."""
        return sum(len(layer) for layer in self.mix.layers) + 1


def parse_sizes(text: str | None, flag: str, lowest: int, highest: int, default: list[int]) -> list[int]:
    if text is None:
        return default
    values = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            low, _, high = part.partition("-")
            bounds = (low, high)
        else:
            bounds = (part, part)
        try:
            low, high = (int(b) for b in bounds)
        except ValueError:
            raise UsageError(f"{flag}: expected whole numbers like 2,3 or 2-4, got {part!r}") from None
        if low > high or low < lowest or high > highest:
            raise UsageError(f"{flag}: {part} is outside {lowest}..{highest}")
        values.extend(range(low, high + 1))
    if not values:
        raise UsageError(f"{flag}: expected at least one number")
    return sorted(set(values))


def resolve_pool(source, settings: Settings, pool: str) -> list[ModelSettings]:
    """POOL: a mix name (its distinct models, with their settings in that mix) or a comma list
    of PROVIDER:MODEL specs (with the config's defaults and per-model settings)."""
    if pool in source.mix_names():
        models = source.settings(Overrides(mix=pool)).mix.models()
    else:
        specs = [part.strip() for part in pool.split(",") if part.strip()]
        models = [_model_named(source, settings, spec) for spec in specs]
    chosen: dict[str, ModelSettings] = {}
    for model in models:
        chosen.setdefault(model.label, model)
    if len(chosen) < 2:
        raise UsageError("--search: expected a pool of at least two models: a mix name or PROVIDER:MODEL,PROVIDER:MODEL,...")
    return list(chosen.values())


def enumerate_configurations(pool: list[ModelSettings], sizes: list[int], rounds: list[int],
                             strategies: list[str]) -> list[Configuration]:
    """Every model alone, then every proposer set x aggregator x rounds x strategy, in pool order
    (the order of a set's answers is the pool's, so identical sets send identical requests)."""
    configs = [Configuration(m.label, Mix(name=m.label, layers=(), aggregator=m), solo=True) for m in pool]
    many_strategies = len(strategies) > 1
    for size in sizes:
        for proposers in itertools.combinations(pool, size):
            for aggregator in pool:
                for count in rounds:
                    for strategy in strategies:
                        name = (",".join(m.label for m in proposers) + " → " + aggregator.label
                                + (f" ×{count}" if count > 1 else "")
                                + (f" [{strategy}]" if many_strategies or strategy != "synthesize" else ""))
                        mix = Mix(name=name, layers=(tuple(proposers),) * count, aggregator=aggregator,
                                  strategy=strategy)
                        configs.append(Configuration(name, mix, solo=False))
    return configs


@dataclass(frozen=True)
class Estimate:
    configurations: int
    calls_alone: int  # every configuration run separately
    calls_shared: int  # with shared answers, from scratch
    cost: float | None  # dollars, from a token guess; None when a model has no known price
    unpriced: tuple[str, ...]


def estimate(configs: list[Configuration], items: list[Item], prices, judge: System | None = None) -> Estimate:
    """Calls and dollars before starting. Tokens are guessed: the instruction's length in, the
    model's max_tokens (or OUTPUT_TOKENS_GUESS) out; an aggregator also reads every answer."""
    from ..config.model_facts import cost as call_cost
    from ..providers.base import Usage

    n = len(items)
    prompt = sum(estimate_tokens([{"content": item.instruction}]) for item in items) / max(n, 1)
    calls_alone = n * sum(c.calls_alone for c in configs)
    shared_refs: set[tuple] = set()  # (round, proposer set, model): one call per item
    aggregations = 0
    dollars, unpriced = 0.0, set()

    def add(model: ModelSettings, answers_read: int) -> None:
        nonlocal dollars
        out = model.max_tokens or OUTPUT_TOKENS_GUESS
        usage = Usage(int(prompt + answers_read * OUTPUT_TOKENS_GUESS), out)
        price = call_cost(model.label, usage, prices)
        if price is None:
            unpriced.add(model.label)
        else:
            dollars += price * n

    for config in configs:
        mix = config.mix
        for number, layer in enumerate(mix.layers, 1):
            for model in layer:
                key = (1, (), model.label) if number == 1 else (number, config.proposers, model.label)
                if key not in shared_refs:
                    shared_refs.add(key)
                    add(model, 0 if number == 1 else len(layer))
        if config.solo:
            key = (1, (), mix.aggregator.label)
            if key not in shared_refs:
                shared_refs.add(key)
                add(mix.aggregator, 0)
        else:
            aggregations += 1
            add(mix.aggregator, len(mix.layers[-1]))
    judge_calls = 0
    if judge is not None:  # two orders per configuration and item, against the baseline
        judge_calls = 2 * n * (len(configs) - 1)
        for _ in range(2 * (len(configs) - 1)):
            model = judge.settings.mix.aggregator
            price = call_cost(model.label, Usage(int(prompt + 2 * OUTPUT_TOKENS_GUESS), 8), prices)
            if price is None:
                unpriced.add(model.label)
            else:
                dollars += price * n
    return Estimate(len(configs), calls_alone + judge_calls, n * (len(shared_refs) + aggregations) + judge_calls,
                    None if unpriced else dollars, tuple(sorted(unpriced)))


# ------------------------------------------------------------------------------ running


class SearchRunner(Runner):
    """The bench runner with shared answers: every turn goes through the answer ledger."""

    def __init__(self, *args, answers: AnswerLedger, configs: list[Configuration], max_cost: float | None = None,
                 verdicts=None, baseline: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.answers, self.max_cost = answers, max_cost
        self.configs = {c.name: c for c in configs}
        # A judged search: every configuration against `baseline`, one record per (generator, item).
        self.verdicts, self.baseline = verdicts, baseline
        self._graded: dict[tuple, tuple[str, asyncio.Future]] = {}  # (item, answer hash) -> its first grading
        # --max-cost: once the money spent passes the budget no new turn starts; the turns and
        # gradings under way finish (nothing is cancelled), so the stop is clean and resumable.
        self.over_budget = False

    async def run(self) -> None:
        import hashlib

        predictions = self.files.predictions.records
        for (generator, item) in list(self.files.grades.records):  # graded before a resume
            answer = predictions.get((generator, item))
            if answer is not None:
                done = asyncio.get_running_loop().create_future()
                done.set_result(None)
                digest = hashlib.sha256(answer["output"].encode("utf-8", "surrogatepass")).hexdigest()
                self._graded.setdefault((item, digest), (generator, done))
        async with self.grading():
            async with asyncio.TaskGroup() as group:  # grading tasks join it (Runner._grade_later)
                self._group = group
                for record in list(self.files.predictions.values()):  # saved before a crash, never graded
                    self._grade_later(record)
                for item in self.items:
                    group.create_task(self._item(item))
            self._group = None

    async def _grade(self, record: dict) -> None:
        """Grade each distinct answer to an item once: many configurations give the very same
        final answer (an aggregator that picks one proposal, a solo row and a mix that agrees),
        and the same code against the same tests is the same result."""
        import hashlib

        key = (record["item"], hashlib.sha256(record["output"].encode("utf-8", "surrogatepass")).hexdigest())
        first = self._graded.get(key)
        if first is None:  # the first of its kind: graded here, in this task (never an orphan task)
            done = asyncio.get_running_loop().create_future()
            self._graded[key] = (record["generator"], done)
            try:
                await super()._grade(record)
            finally:
                done.set_result(None)
            return
        generator, done = first
        await done
        result = self.files.grades.records.get((generator, record["item"]))
        if result is not None:  # else the first grading was stopped: graded on --resume
            await self.files.grades.save({**result, "generator": record["generator"], "shared_with": generator})

    async def _item(self, item: Item) -> None:
        done = self.files.predictions
        solos = [s for s in self.systems if self.configs[s.name].solo and (s.name, item.id) not in done]
        mixes = [s for s in self.systems if not self.configs[s.name].solo and (s.name, item.id) not in done]
        async with asyncio.TaskGroup() as group:  # every model's round-1 answer, as its solo row
            for system in solos:
                group.create_task(self._answer(system, item))
        async with asyncio.TaskGroup() as group:
            for system in mixes:
                group.create_task(self._answer(system, item, self._width(system, item)))
        if self.judge is not None:
            async with asyncio.TaskGroup() as group:
                for system in self.systems:
                    if system.name != self.baseline and (system.name, item.id) not in self.verdicts:
                        group.create_task(self._judge_against_baseline(system, item))

    async def _judge_against_baseline(self, system: System, item: Item) -> None:
        """The configuration's answer against the baseline's, both orders (judge.py). The judge's
        calls go through the ledger too: the same pair of answers is judged once."""
        from . import judge as judging

        records = self.files.predictions.records
        mine, base = records.get((system.name, item.id)), records.get((self.baseline, item.id))
        if mine is None or base is None:
            return
        result = judging.without_judge(mine["status"] == "ok", base["status"] == "ok")
        verdicts, served, judge_calls = [None, None], [], 0
        if result is None:
            judge_calls = 2
            orders = [(mine["output"], base["output"]), (base["output"], mine["output"])]
            outcomes = await asyncio.gather(*(self._turn(self.judge, judging.judge_question(item.instruction, a, b),
                                                         1, served) for a, b in orders))
            if any(o is None for o in outcomes):
                return  # over the budget: judged on --resume
            verdicts = [judging.read_verdict(o.turn.final) if o.ok else None for o in outcomes]
            result = judging.combine(*verdicts)
        await self.verdicts.save({"generator": system.name, "baseline": self.baseline, "item": item.id, "result": result,
                           "first": verdicts[0], "second": verdicts[1],
                           "answers": sorted({s.key for s in served}), "calls": judge_calls})

    def _width(self, system: System, item: Item) -> int:
        """Calls this configuration will have in flight at once, its shared answers aside: one
        aggregation, plus any round-1 answer the solo rows could not supply; a later round's
        calls are its own until another configuration has made them."""
        mix = system.settings.mix
        if len(mix.layers) > 1 or mix.strategy not in AGGREGATE_ONLY:
            return system.width
        records = self.files.predictions.records
        missing = sum(1 for m in mix.layers[0] if records.get((m.label, item.id), {}).get("status") != "ok")
        return 1 + missing

    async def _answer(self, system: System, item: Item, width: int = 1) -> None:
        from .runner import prediction_record

        served = []
        outcome = await self._turn(system, item.instruction, width, served)
        if outcome is None:
            return  # over the budget: not started
        record = prediction_record(self.suite, system, item, outcome)
        record["calls"] = len(outcome.turn.calls())  # what this configuration alone would have asked
        record["answers"] = sorted({s.key for s in served})  # the ledger entries this turn used
        await self.files.predictions.save(record)
        self.progress.answered(system.name, record)
        self._grade_later(record)

    def _spent_all(self) -> bool:
        if self.max_cost is not None and self.answers.spent > self.max_cost:
            self.over_budget = True
        return self.over_budget

    async def _turn(self, system: System, question: str, width: int = 1, served: list | None = None):
        """One turn through the ledger once its calls fit in the budget; None when the money
        spent has passed --max-cost (then nothing is asked)."""
        if self._spent_all():
            return None
        weight = await self.budget(width)
        try:
            if self._spent_all():
                return None
            # The latency this mix would have had alone: replayed answers at their recorded time.
            return await ledger_turn(self.answers, system.settings, self.pool, question, trace=served)
        finally:
            self.budget.release(weight)


# ------------------------------------------------------------------------------ results


def judged_quality(configs: list[Configuration], items: list[str], files, verdicts, baseline: str) -> dict:
    """Per configuration: its raw and length-controlled win rates against the baseline, the LC
    rate's CI, fitted jointly over every configuration (length_controlled.py)."""
    from . import length_controlled

    predictions = files.predictions.records
    wanted = set(items)
    rows = []
    for record in verdicts.values():
        points = length_controlled.POINTS.get(record.get("result"))
        mine = predictions.get((record["generator"], record["item"]))
        base = predictions.get((baseline, record["item"]))
        if points is None or mine is None or base is None or record["item"] not in wanted:
            continue
        rows.append(length_controlled.Judged(record["generator"], record["item"], points, len(mine["output"]),
                                             len(base["output"])))
    fitted = length_controlled.with_ci(rows, samples=100) if rows else {}
    fitted[baseline] = {"lc_win_rate": 0.5, "win_rate": 0.5, "lc_ci95": [0.5, 0.5]}  # itself, by definition
    return fitted


def figures(configs: list[Configuration], items: list[str], files, graded: bool, judged: dict | None = None) -> list[dict]:
    """Each configuration's own figures, as if it had run alone."""
    from . import stats

    predictions, grades = files.predictions.records, files.grades.records
    rows = []
    for config in configs:
        records = [predictions[(config.name, item)] for item in items if (config.name, item) in predictions]
        ok = [r for r in records if r["status"] == "ok"]
        latencies = [r["latency"] for r in ok]
        costs = [r["cost"] for r in records]
        tokens = [r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"] for r in records]
        row = {
            "name": config.name, "solo": config.solo, "proposers": list(config.proposers),
            "aggregator": config.mix.aggregator.label, "rounds": config.mix.rounds, "strategy": config.mix.strategy,
            "items": len(records), "errors": len(records) - len(ok),
            "quality": None, "ci95": None,
            "latency_mean": _round(stats.mean(latencies)), "latency_p95": _round(stats.percentile(latencies, 95)),
            "tokens_per_item": _round(stats.mean(tokens), 1),
            "cost_per_item": None if not records or any(c is None for c in costs) else round(sum(costs) / len(records), 8),
        }
        if graded:
            scores = [1.0 if grades[(config.name, i)]["passed"] else 0.0 for i in items if (config.name, i) in grades]
            row["quality"] = _round(stats.mean(scores))
            ci = bootstrap_ci(scores)
            row["ci95"] = [_round(x) for x in ci] if ci else None
            row["passed"] = int(sum(scores))
        elif judged is not None and config.name in judged:
            entry = judged[config.name]
            row["quality"] = _round(entry["lc_win_rate"])
            row["ci95"] = [_round(x) for x in entry["lc_ci95"]] if entry["lc_ci95"] else None
            row["win_rate"] = _round(entry["win_rate"])
        rows.append(row)
    return rows


_CI_CACHE: dict[tuple, tuple[float, float] | None] = {}


def bootstrap_ci(scores: list[float], samples: int = 10_000, seed: int = 13) -> tuple[float, float] | None:
    """stats.bootstrap_ci's percentile bootstrap, vectorised: a search computes one per
    configuration (hundreds, over every item), and many share the same scores."""
    key = tuple(scores)
    if key not in _CI_CACHE:
        if not scores:
            _CI_CACHE[key] = None
        else:
            import numpy as np

            values = np.asarray(scores, dtype=float)
            draws = np.random.default_rng(seed).integers(0, len(values), size=(samples, len(values)))
            means = values[draws].mean(axis=1)
            _CI_CACHE[key] = (float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5)))
    return _CI_CACHE[key]


def cost_axis(rows: list[dict]) -> str:
    """Dollars when every row has a known price, else tokens (and the report says so)."""
    priced = [r for r in rows if r["quality"] is not None]
    return "cost_per_item" if priced and all(r["cost_per_item"] is not None for r in priced) else "tokens_per_item"


def pareto_front(rows: list[dict], axis: str) -> set[str]:
    """Names of the rows no other row beats on both quality (higher) and `axis` (lower)."""
    points = [r for r in rows if r["quality"] is not None and r[axis] is not None]
    front = set()
    for r in points:
        dominated = any(q["quality"] >= r["quality"] and q[axis] <= r[axis]
                        and (q["quality"] > r["quality"] or q[axis] < r[axis]) for q in points)
        if not dominated:
            front.add(r["name"])
    return front


def leaderboard(rows: list[dict], axis: str) -> list[dict]:
    """Best quality first; cheaper, then faster, then the name break ties."""
    big = math.inf
    return sorted(rows, key=lambda r: (-(r["quality"] if r["quality"] is not None else -1.0),
                                       r[axis] if r[axis] is not None else big,
                                       r["latency_mean"] if r["latency_mean"] is not None else big, r["name"]))


def recommend(board: list[dict], axis: str) -> dict | None:
    """The best configuration, and the cheapest whose quality is within the best one's 95% CI."""
    scored = [r for r in board if r["quality"] is not None]
    if not scored:
        return None
    best = scored[0]
    floor = best["ci95"][0] if best["ci95"] else best["quality"]
    within = [r for r in scored if r["quality"] >= floor and r[axis] is not None]
    cheapest = min(within, key=lambda r: (r[axis], -r["quality"], r["latency_mean"] or 0.0, r["name"])) if within else best
    return {"best": best["name"], "cheapest_within_ci": cheapest["name"], "ci_floor": floor}


def build_report(suite: str, graded: bool, configs: list[Configuration], items: list[str], files,
                 answers: AnswerLedger, plan_estimate: Estimate, stopped: str | None = None,
                 verdicts=None, baseline: str | None = None, judge: str | None = None) -> dict:
    judged = judged_quality(configs, items, files, verdicts, baseline) if verdicts is not None else None
    rows = figures(configs, items, files, graded, judged)
    axis = cost_axis(rows)
    fronts = {"cost": pareto_front(rows, axis), "latency": pareto_front(rows, "latency_mean")}
    for row in rows:
        row["pareto_cost"] = row["name"] in fronts["cost"]
        row["pareto_latency"] = row["name"] in fronts["latency"]
    board = leaderboard(rows, axis)
    for rank, row in enumerate(board, 1):
        row["rank"] = rank
    # The distinct answers this search's turns used: what it had to ask, once each (a shared
    # --answers file may hold others).
    wanted = set(items)
    used = {key for r in files.predictions.values() if r.get("item") in wanted for key in r.get("answers", ())}
    if verdicts is not None:
        used |= {key for r in verdicts.values() if r.get("item") in wanted for key in r.get("answers", ())}
    needed = len(used)
    # Calls without sharing: every turn's own calls (whatever its strategy planned), and two
    # judge calls per judged pair.
    names = {c.name for c in configs}
    alone = sum(r.get("calls", 0) for r in files.predictions.values()
                if r.get("item") in wanted and r.get("generator") in names)
    if verdicts is not None:
        alone += sum(r.get("calls", 0) for r in verdicts.values() if r.get("item") in wanted)
    return {
        "suite": suite, "items": len(items), "configurations": len(configs),
        "quality": "pass@1" if graded else (f"length-controlled win rate against {baseline}" if judged else None),
        "judge": judge, "baseline": baseline if judged is not None else None, "cost_axis": axis,
        "calls": {"made": needed, "without_sharing": alone, "ratio": _round(needed / alone) if alone else None,
                  "asked_this_run": answers.asked, "replayed_this_run": answers.replayed},
        "spent_this_run": round(answers.spent, 6),
        "leaderboard": board, "recommendation": recommend(board, axis), "stopped": stopped,
        "notes": [] if graded else [f"Quality is AlpacaEval 2.0's length-controlled win rate against {baseline}, "
                                    f"judged by {judge} in both orders (ties count half); the raw rate is in "
                                    "search.json (win_rate)."],
    }


def _round(value, digits: int = 4):
    return None if value is None else round(value, digits)


# ------------------------------------------------------------------------------ saving


def save_mix(config_path: Path | None, config: Configuration, name: str, source: str) -> Path:
    """Append the configuration as `[mixes.NAME]` to the config file, atomically, with a `source`
    line naming the run. An existing mix of that name is never replaced."""
    import tomllib

    from ..config import paths
    from ..config.toml_write import mix_to_toml
    from ..files import read_small_file, write_atomic

    import re

    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
        raise UsageError("--save: expected a mix name of letters, digits, - and _ (at most 64)")
    path = config_path or paths.config_file()
    text = read_small_file(path, "config file").decode("utf-8") if path.exists() else ""
    try:
        existing = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"--save: cannot add to {path}: it is not valid TOML ({error})") from None
    if name in existing.get("mixes", {}):
        raise UsageError(f"--save: a mix named {name!r} is already in {path}; choose another name")
    mix = replace(config.mix, name=name, description=f"found by moa bench --search: {config.name}")
    addition = mix_to_toml(mix, source=source)
    new_text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + addition
    tomllib.loads(new_text)  # what is written must read back
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, new_text, mode=0o600)
    return path
