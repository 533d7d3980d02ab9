"""`moa bench SUITE --mix NAME`: run the suite, show progress, write and print the report."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ..errors import EXIT_INTERRUPTED, EXIT_OK, UsageError
from ..output import print_error
from ..output import warn
from ..sanitize import one_line_safe


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


DEFAULT_CONCURRENCY = 4


def run(suite_name: str, *, mix: str | None, baselines: list[str], concurrency: int | None, out: str | None,
        resume: bool, limit: int | None, sample: int | None, sample_seed: int | None, judge: str | None) -> int:
    from rich.console import Console

    from ..config import Overrides, load_source
    from . import report as reporting
    from .predictions import RunFiles
    from .runner import Runner, judge_system, open_shared_pool, systems_for
    from .suites import load_suite, select

    for name, value in (("--concurrency", concurrency), ("--limit", limit), ("--sample", sample)):
        if value is not None and value < 1:
            raise UsageError(f"{name}: expected a whole number of at least 1")
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
        concurrency = 1 if _all_local(settings, [*systems, *([judge_as] if judge_as else [])]) else DEFAULT_CONCURRENCY
    directory = Path(out) if out else Path("moa-bench") / f"{suite.name}-{settings.mix.name}"
    plan = {"suite": suite_name, "mix": settings.mix.name, "systems": [s.name for s in systems],
            "judge": judge_as.name if judge_as else None, "items": [item.id for item in items]}
    pool = open_shared_pool(systems, [judge_as] if judge_as else [])  # a missing key stops us here
    try:
        files = RunFiles(directory).open(plan, resume)
    except BaseException:
        asyncio.run(pool.aclose())
        raise
    console = Console(stderr=True, emoji=False, highlight=False)
    done: dict[str, list[dict]] = {}
    for record in files.predictions.values():
        done.setdefault(record["generator"], []).append(record)
    bars = ProgressBars(console, systems, len(items), done, judge_as.name if judge_as else None,
                        (len(files.judgements.records), len(items) * (len(systems) - 1)))
    runner = Runner(suite, items, systems, files, pool, concurrency=concurrency, progress=bars, judge=judge_as)

    async def main():
        try:
            await runner.run()
        finally:
            await pool.aclose()

    try:
        with bars:
            _run_loop(main)
    except KeyboardInterrupt:
        print_error(f"interrupted: {len(files.predictions.records)} answers are saved in {directory}; "
                    f"continue with --resume")
        return EXIT_INTERRUPTED
    finally:
        files.close()
    report = reporting.build(suite.name, suite.graded, [item.id for item in items], systems, files,
                             judge_as.name if judge_as else None)
    written = reporting.write_files(report, directory)
    reporting.print_table(report, Console(emoji=False, highlight=False))
    failed = sum(r["errors"] for r in report["systems"])
    if failed:
        warn(f"{failed} answers failed; their errors are in {directory / 'predictions.jsonl'}")
    warn("wrote " + ", ".join(one_line_safe(str(p)) for p in written))
    return EXIT_OK


def _all_local(settings, systems) -> bool:
    """Local models answer one call at a time: running items side by side would only make each
    wait for the others, and its latency would count the wait."""
    return all(settings.providers[name].kind == "local" for s in systems for name in s.settings.mix.providers())


def _run_loop(main) -> None:
    """Run the event loop; a file that cannot be written (a full disk) is one clear error."""
    try:
        asyncio.run(main())
    except* OSError as group:
        error = group.exceptions[0]
        raise UsageError(f"cannot save the results: {getattr(error, 'strerror', None) or error}") from None
