"""`moa bench SUITE --mix NAME`: run the suite, show progress, write and print the report."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from ..errors import EXIT_INTERRUPTED, EXIT_OK, UsageError
from ..output import print_error
from ..output import warn
from ..sanitize import json_dumps, one_line_safe
from .running import DEFAULT_CONCURRENCY, all_local, run_loop


class ProgressBars:
    """A rich progress bar per system: items done, errors, elapsed time, running cost."""

    def __init__(self, console, systems, items: int, done: dict[str, list[dict]], judge: str | None = None,
                 judged: tuple[int, int] = (0, 0)):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.fields[label]}", markup=False), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[errors]} errors", markup=False), TimeElapsedColumn(),
            TextColumn("{task.fields[cost]}", markup=False), console=console, transient=False,
        )
        self.tasks, self.errors, self.cost = {}, {}, {}
        for system in systems:
            records = done.get(system.name, [])
            self.errors[system.name] = sum(1 for r in records if r["status"] != "ok")
            costs = [r["cost"] for r in records]
            self.cost[system.name] = None if any(c is None for c in costs) else sum(costs)
            self.tasks[system.name] = self.progress.add_task(
                "", total=items, completed=len(records), label=one_line_safe(system.name),
                errors=self.errors[system.name], cost=self._cost(system.name))
        if judge:
            self.tasks["judge"] = self.progress.add_task("", total=judged[1], completed=judged[0], errors=0,
                                                         label=one_line_safe(f"judge {judge}"), cost="")

    def _cost(self, name: str) -> str:
        return "cost unknown" if self.cost[name] is None else f"${self.cost[name]:.4f}"

    def answered(self, system: str, record: dict) -> None:
        if record["status"] != "ok":
            self.errors[system] += 1
        if self.cost[system] is not None:
            self.cost[system] = None if record["cost"] is None else self.cost[system] + record["cost"]
        self.progress.update(self.tasks[system], advance=1, errors=self.errors[system], cost=self._cost(system))

    def judged(self, baseline: str, record: dict) -> None:
        self.progress.update(self.tasks["judge"], advance=1)

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()




def run(suite_name: str, *, mix: str | None, baselines: list[str], concurrency: int | None, out: str | None,
        resume: bool, limit: int | None, sample: int | None, sample_seed: int | None, judge: str | None,
        retry_failed: bool = False, answers_file: str | None = None) -> int:
    """The whole command; its exit code: 0, 1 (every call of a system failed, or the judge gave no
    verdict at all), 2 (bad input), 3 (a rejected or missing key), 5 (results could not be saved),
    130 (Ctrl-C), 143 (SIGTERM)."""
    try:
        return _run(suite_name, mix=mix, baselines=baselines, concurrency=concurrency, out=out,
                    resume=resume or retry_failed, limit=limit, sample=sample, sample_seed=sample_seed, judge=judge,
                    retry_failed=retry_failed, answers_file=answers_file)
    except KeyboardInterrupt:  # Ctrl-C outside the event loop (loading, the report): the same one line
        print_error("interrupted")
        return EXIT_INTERRUPTED


def _run(suite_name: str, *, mix, baselines, concurrency, out, resume, limit, sample, sample_seed, judge,
         retry_failed, answers_file=None) -> int:
    from rich.console import Console
    from rich.text import Text

    from ..config import Overrides, load_source
    from . import report as reporting
    from .predictions import OutputError, RunFiles
    from .runner import Runner, definition, judge_system, open_shared_pool, systems_for
    from .suites import check_counts, load_suite, select, suite_hash

    from . import mtbench

    if mtbench.is_mtbench(suite_name):  # multi-turn, rated 1-10: its own runner and report
        return mtbench.run(suite_name, mix=mix, baselines=baselines, concurrency=concurrency, out=out, resume=resume,
                           limit=limit, sample=sample, sample_seed=sample_seed, judge=judge)
    check_counts(concurrency=concurrency, limit=limit, sample=sample)
    source = load_source()
    settings = source.settings(Overrides(mix=mix))
    for notice in settings.all_notices():
        warn(notice)
    suite = load_suite(suite_name)
    if judge and suite.graded:
        raise UsageError(f"--judge: the {suite.name} suite is graded by its tests; a judge is for instruction sets")
    items = select(suite.items, limit=limit, sample=sample, seed=sample_seed)
    systems = systems_for(source, settings, baselines)
    judge_as = judge_system(source, settings, judge) if judge else None
    if concurrency is None:
        concurrency = 1 if all_local(settings, [*systems, *([judge_as] if judge_as else [])]) else DEFAULT_CONCURRENCY
    directory = Path(out) if out else Path("moa-bench") / f"{suite.name}-{settings.mix.name}"
    # The run's fingerprint: a --resume with any other definition is refused, saying what changed.
    plan = {"version": 2, "suite": suite_name, "suite_hash": suite_hash(suite), "mix": settings.mix.name,
            "systems": {s.name: definition(s) for s in systems},
            "judge": definition(judge_as) if judge_as else None, "items": [item.id for item in items]}
    plan = json.loads(json_dumps(plan, default=str))  # as run.json will hold it: lists, plain values
    pool = open_shared_pool(systems, [judge_as] if judge_as else [], concurrency)  # a missing key stops us here
    try:
        files = RunFiles(directory).open(plan, resume, retry_failed)
    except BaseException:
        asyncio.run(pool.aclose())
        raise
    console = Console(stderr=True, emoji=False, highlight=False)
    answers = None  # --answers: a ledger shared with searches (answer_ledger.py)
    try:
        done: dict[str, list[dict]] = {}
        for record in files.predictions.values():
            done.setdefault(record["generator"], []).append(record)
        bars = ProgressBars(console, systems, len(items), done, judge_as.name if judge_as else None,
                            (len(files.judgements.records), len(items) * (len(systems) - 1)))
        notices: list[str] = []
        runner = Runner(suite, items, systems, files, pool, concurrency=concurrency, progress=bars, judge=judge_as,
                        notice=lambda text: (notices.append(text), console.print(Text(f"moa: {one_line_safe(text)}"))))
        if answers_file:
            from .answer_ledger import AnswerLedger

            runner.answers = answers = AnswerLedger(Path(answers_file), prices=dict(settings.prices)).load()

        reporting.load_chart_library_meanwhile()

        async def main():
            from ..signals import cancel_on_sigterm

            cancel_on_sigterm(asyncio.current_task())
            try:
                await runner.run()
            finally:
                await _bounded(pool.aclose())

        try:
            with bars:
                run_loop(main)
        except (KeyboardInterrupt, asyncio.CancelledError):
            from ..signals import EXIT_TERMINATED, terminating

            print_error(f"interrupted: {len(files.predictions.records)} answers are saved in {directory}; "
                        f"continue with --resume")
            return EXIT_TERMINATED if terminating() else EXIT_INTERRUPTED
        report = reporting.build(suite.name, suite.graded, [item.id for item in items], systems, files,
                                 judge_as.name if judge_as else None)
    finally:
        files.close()
        if answers is not None:
            answers.close()
    try:
        written = reporting.write_files(report, directory)
    except OSError as error:
        raise OutputError(f"cannot save the report in {directory}: {error.strerror or error}") from None
    reporting.print_table(report, Console(emoji=False, highlight=False))
    failed = sum(r["errors"] for r in report["systems"])
    if failed:
        warn(f"{failed} answers failed; their errors are in {directory / 'predictions.jsonl'}")
    warn("wrote " + ", ".join(one_line_safe(str(p)) for p in written))
    return _exit_code(report, files, systems)


def _exit_code(report: dict, files, systems) -> int:
    """1 when every call of some system failed (3 when every one of those failures was a
    rejected key), or when a judge was asked and gave no verdict at all; else 0."""
    from ..errors import EXIT_AUTH, EXIT_TURN_FAILED

    records = list(files.predictions.values())
    dead = [s.name for s in systems
            if (mine := [r for r in records if r["generator"] == s.name]) and all(r["status"] != "ok" for r in mine)]
    if dead:
        codes = [r.get("error_code") for r in records if r["generator"] in dead]
        first = next((r["error"] for r in records if r["generator"] in dead and r.get("error")), "no answer")
        print_error(f"every call of {', '.join(dead)} failed: {first}")
        return EXIT_AUTH if all(code == EXIT_AUTH for code in codes) else EXIT_TURN_FAILED
    if report.get("judged") is not None and report.get("verdicts") == 0 and any(
            j["no_verdict"] for j in report["judged"]):
        print_error(f"the judge {report['judge']} gave no readable verdict ([[A]], [[B]] or [[C]]) on any item; "
                    f"its replies are in judgements.jsonl")
        return EXIT_TURN_FAILED
    return EXIT_OK


async def _bounded(closing, seconds: float = 1.0) -> None:
    """Closing connections must not hold up an interruption."""
    try:
        await asyncio.wait_for(closing, seconds)
    except (asyncio.TimeoutError, OSError):
        pass
