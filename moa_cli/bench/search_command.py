"""`moa bench SUITE --search POOL`: plan, estimate, run, report, and optionally `--save` a mix.

A search directory (default moa-bench/SUITE-search) holds bench's files (run.json,
predictions.jsonl with one generator per configuration, grades.jsonl) plus answers.jsonl, the
answer ledger (`--answers FILE` shares another), search.json/search.md and the charts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ..errors import EXIT_INTERRUPTED, EXIT_OK, UsageError
from ..output import print_error, warn
from ..sanitize import json_dumps, one_line_safe
from . import search as searching


class SearchProgress:
    """One bar for the whole search: answers done, errors, calls asked, money spent."""

    def __init__(self, console, total: int, done: int, answers):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.answers = answers
        self.errors = 0
        self.progress = Progress(TextColumn("search", markup=False), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[detail]}", markup=False), TimeElapsedColumn(),
                                 console=console, transient=False)
        self.task = self.progress.add_task("", total=total, completed=done, detail=self._detail())

    def _detail(self) -> str:
        return f"{self.errors} errors · {self.answers.asked} calls asked · ${self.answers.spent:.4f}"

    def answered(self, system: str, record: dict) -> None:
        self.errors += record["status"] != "ok"
        self.progress.update(self.task, advance=1, detail=self._detail())

    def judged(self, baseline: str, record: dict) -> None:
        pass

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()


def run(suite_name: str, *, pool: str, proposers: str | None, rounds: str | None, strategies: str | None,
        max_cost: float | None, save: str | None, pick: str | None, answers_file: str | None,
        concurrency: int | None, out: str | None, resume: bool, limit: int | None, sample: int | None,
        sample_seed: int | None, judge: str | None, baselines: list[str] = ()) -> int:
    from rich.console import Console
    from rich.text import Text

    from ..config import Overrides, load_source
    from .answer_ledger import SYNC_EVERY, AnswerLedger
    from .running import DEFAULT_CONCURRENCY, all_local, run_loop
    from .predictions import RunFiles
    from .predictions import Ledger
    from .runner import System, judge_system, open_shared_pool
    from .suites import load_suite, select

    for name, value in (("--concurrency", concurrency), ("--limit", limit), ("--sample", sample)):
        if value is not None and value < 1:
            raise UsageError(f"{name}: expected a whole number of at least 1")
    if max_cost is not None and not max_cost >= 0:
        raise UsageError("--max-cost: expected a number of dollars of at least 0")
    source = load_source()
    settings = source.settings(Overrides())
    for notice in settings.notices:  # not the default mix's stand-in: a search runs its own pool
        warn(notice)
    models = searching.resolve_pool(source, settings, pool)
    sizes = searching.parse_sizes(proposers, "--proposers", 1, len(models), list(range(2, len(models) + 1)))
    round_counts = searching.parse_sizes(rounds, "--rounds", 1, 10, [1])
    known = searching.strategy_names()
    chosen = [s.strip() for s in (strategies or "synthesize").split(",") if s.strip()]
    for name in chosen:
        if name not in known:
            raise UsageError(f"--strategies: unknown strategy {name!r} (known: {', '.join(known)})")
    suite = load_suite(suite_name)
    if suite.graded and judge:
        raise UsageError(f"--judge: the {suite.name} suite is graded by its tests; a judge is for instruction sets")
    if not suite.graded and not judge:
        raise UsageError(f"--search: the {suite.name} suite has no tests; give --judge MODEL to compare the answers")
    if len(baselines) > 1:
        raise UsageError("--baseline: a search compares every configuration with one baseline")
    items = select(suite.items, limit=limit, sample=sample, seed=sample_seed)
    if baselines:  # the baseline joins the pool as a solo row (and may serve in mixes, as any pool model)
        extra = searching._model_named(source, settings, baselines[0])
        if extra.label not in {m.label for m in models}:
            models = [*models, extra]
    baseline = searching._model_named(source, settings, baselines[0]).label if baselines else models[0].label
    configs = searching.enumerate_configurations(models, sizes, round_counts, chosen)
    judge_as = judge_system(source, settings, judge) if judge else None
    plan_estimate = searching.estimate(configs, items, settings.prices, judge_as)
    console = Console(stderr=True, emoji=False, highlight=False)
    cost_text = (f"about ${plan_estimate.cost:.4f}" if plan_estimate.cost is not None
                 else f"cost unknown (no price for {', '.join(plan_estimate.unpriced)})")
    console.print(Text(one_line_safe(
        f"search: {plan_estimate.configurations} configurations over {len(items)} items; "
        f"{plan_estimate.calls_shared:,} calls with shared answers ({plan_estimate.calls_alone:,} without); {cost_text}")))
    if max_cost is not None and plan_estimate.cost is not None and plan_estimate.cost > max_cost:
        print_error(f"--max-cost: the estimate (${plan_estimate.cost:.4f}) is over the budget (${max_cost:.4f}); "
                    "nothing was run. Use fewer --proposers, --rounds or items, or a larger budget")
        return searching.EXIT_OVER_BUDGET

    systems = [System(c.name, settings.with_mix(c.mix), role="solo" if c.solo else "search") for c in configs]
    directory = Path(out) if out else Path("moa-bench") / f"{suite.name}-search"
    plan = {"suite": suite_name, "search": [m.label for m in models], "proposers": sizes, "rounds": round_counts,
            "strategies": chosen, "systems": [s.name for s in systems], "judge": judge_as.name if judge_as else None,
            "baseline": baseline if judge_as else None,
            "items": [item.id for item in items]}
    if concurrency is None:
        concurrency = 1 if all_local(settings, systems) else DEFAULT_CONCURRENCY
    shared_pool = open_shared_pool(systems, [judge_as] if judge_as else [], concurrency)
    try:
        files = RunFiles(directory).open(plan, resume)
    except BaseException:
        asyncio.run(shared_pool.aclose())
        raise
    verdicts = Ledger(directory / "search_judgements.jsonl", lambda r: (r.get("generator"), r.get("item")),
                      sync_every=SYNC_EVERY).load() if judge_as else None
    for ledger in (files.predictions, files.grades, files.judgements):
        ledger.sync_every = SYNC_EVERY  # thousands of records: fsync in batches (see Ledger)
    answers = AnswerLedger(Path(answers_file) if answers_file else directory / "answers.jsonl",
                           prices=dict(settings.prices)).load()
    total = len(items) * len(systems)
    bars = SearchProgress(console, total, len(files.predictions.records), answers)
    runner = searching.SearchRunner(suite, items, systems, files, shared_pool,
                                    concurrency=concurrency, progress=bars,
                                    notice=lambda text: console.print(Text(f"moa: {one_line_safe(text)}")),
                                    answers=answers, configs=configs, max_cost=max_cost, judge=judge_as,
                                    verdicts=verdicts, baseline=baseline)
    stopped = None

    async def main():
        try:
            await runner.run()
        finally:
            await shared_pool.aclose()

    try:
        with bars:
            run_loop(main)
        if runner.over_budget:
            stopped = f"--max-cost: spent ${answers.spent:.4f}, over the ${max_cost:.4f} budget"
    except KeyboardInterrupt:
        print_error(f"interrupted: {len(files.predictions.records)} results and {len(answers)} answers are saved "
                    f"in {directory}; continue with --resume")
        return EXIT_INTERRUPTED
    finally:
        files.close()
        answers.close()
        if verdicts is not None:
            verdicts.close()
    report = searching.build_report(suite.name, suite.graded, configs, [item.id for item in items], files, answers,
                                    plan_estimate, stopped, verdicts, baseline, judge_as.name if judge_as else None)
    written = write_files(report, directory)
    print_report(report, Console(emoji=False, highlight=False))
    if stopped:
        print_error(f"{stopped}; what is done is saved in {directory}: continue with --resume")
        warn("wrote " + ", ".join(one_line_safe(str(p)) for p in written))
        return searching.EXIT_OVER_BUDGET
    if save:
        chosen_row = pick_row(report, pick)
        config = next(c for c in configs if c.name == chosen_row["name"])
        origin = (f"moa bench {suite.name} --search, run {directory}: rank {chosen_row['rank']} of "
                  f"{len(configs)}, quality {chosen_row['quality']}")
        path = searching.save_mix(source.path, config, save, origin)
        warn(f"saved {one_line_safe(config.name)} as the mix {one_line_safe(save)} in {one_line_safe(str(path))}")
    warn("wrote " + ", ".join(one_line_safe(str(p)) for p in written))
    return EXIT_OK


def pick_row(report: dict, pick: str | None) -> dict:
    """--pick best (default) | cheapest (the cheapest within the best's CI) | a leaderboard rank."""
    board, advice = report["leaderboard"], report["recommendation"]
    if advice is None:
        raise UsageError("--save: no configuration has a quality to choose by")
    choice = (pick or "best").strip()
    if choice in ("best", "cheapest"):
        name = advice["best" if choice == "best" else "cheapest_within_ci"]
        return next(r for r in board if r["name"] == name)
    if choice.isdigit() and 1 <= int(choice) <= len(board):
        return board[int(choice) - 1]
    raise UsageError(f"--pick: expected best, cheapest or a rank from 1 to {len(board)}")


# ------------------------------------------------------------------------------ writing


def _fmt(value, kind: str) -> str:
    if value is None:
        return "—"
    return {"pct": f"{value * 100:.1f}%", "s": f"{value:.2f}s", "$": f"${value:.5f}", "n": f"{value:,.0f}"}[kind]


def table_rows(report: dict) -> list[list[str]]:
    axis = report["cost_axis"]
    rows = []
    for r in report["leaderboard"]:
        ci = f"{r['ci95'][0] * 100:.0f}–{r['ci95'][1] * 100:.0f}%" if r["ci95"] else "—"
        marks = ("C" if r["pareto_cost"] else "") + ("L" if r["pareto_latency"] else "")
        quality = _fmt(r["quality"], "pct")
        if r.get("win_rate") is not None:  # a judged search: the LC rate, then the raw one
            quality += f" (raw {_fmt(r['win_rate'], 'pct')})"
        rows.append([str(r["rank"]), r["name"], quality, ci,
                     f"{_fmt(r['latency_mean'], 's')}/{_fmt(r['latency_p95'], 's')}", _fmt(r["tokens_per_item"], "n"),
                     _fmt(r[axis], "$") if axis == "cost_per_item" else _fmt(r["cost_per_item"], "$"),
                     str(r["errors"]), marks or "·"])
    return rows


HEADERS = ["#", "configuration", "quality", "95% CI", "latency mean/p95", "tokens/item", "cost/item", "errors",
           "front"]
TERMINAL_ROWS = 20  # the terminal shows the top of the leaderboard and the fronts; search.md has it all


def summary_lines(report: dict) -> list[str]:
    calls = report["calls"]
    lines = [f"Calls: {calls['made']:,} distinct answers against {calls['without_sharing']:,} if every configuration "
             f"ran alone (ratio {calls['ratio']}); this run asked {calls['asked_this_run']:,} and replayed "
             f"{calls['replayed_this_run']:,}."]
    if report["cost_axis"] != "cost_per_item":
        lines.append("Not every model has a known price: the cost front is drawn against tokens per item.")
    lines.append("front: C = on the Pareto front of quality against cost, L = of quality against latency.")
    if (advice := report["recommendation"]) is not None:
        lines.append(f"Best: {advice['best']}. Cheapest within the best one's 95% CI (quality ≥ "
                     f"{advice['ci_floor'] * 100:.1f}%): {advice['cheapest_within_ci']}.")
    if report["stopped"]:
        lines.append(f"Stopped early: {report['stopped']}.")
    return lines + report["notes"]


def print_report(report: dict, console) -> None:
    """The leaderboard's top (and every row on a front), narrow enough for 80 columns; outside
    text (model names) as rich Text, never markup."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"moa bench {one_line_safe(report['suite'])} --search · {report['items']} items · "
                             f"{report['configurations']} configurations"), box=box.SIMPLE_HEAD, padding=(0, 1))
    errors = any(r["errors"] for r in report["leaderboard"])
    headers = ["#", "configuration", "quality (CI)", "latency", "tokens", "cost", *(["err"] if errors else []), "front"]
    for header in headers:
        table.add_column(header, overflow="fold", min_width=12 if header == "configuration" else None,
                         ratio=1 if header == "configuration" else None,
                         justify="left" if header == "configuration" else "right",
                         no_wrap=header != "configuration")
    shown = 0
    for row, cells in zip(report["leaderboard"], table_rows(report)):
        if row["rank"] <= TERMINAL_ROWS or row["pareto_cost"] or row["pareto_latency"]:
            rank, name, quality, ci, latency, tokens, cost, errs, front = cells
            if row["quality"] is not None:  # whole percents: the CI is wider than a decimal anyway
                quality = f"{row['quality'] * 100:.0f}%" + (f" {ci.rstrip('%')}" if ci != "—" else "")
            latency = latency.replace("s/", "/")
            table.add_row(*(Text(one_line_safe(cell)) for cell in (
                rank, name, quality, latency, tokens, cost, *([errs] if errors else []), front)))
            shown += 1
    console.print(table)
    if shown < len(report["leaderboard"]):
        console.print(Text(f"{len(report['leaderboard']) - shown} more configurations in search.md"))
    for line in summary_lines(report):
        console.print(Text(one_line_safe(line)))


def markdown(report: dict) -> str:
    def md(text: str) -> str:
        return one_line_safe(text).replace("|", "\\|")

    head = (f"# moa bench {md(report['suite'])} --search\n\n{report['items']} items, {report['configurations']} "
            f"configurations. Quality: {report['quality']} (95% bootstrap CI). Latency is modelled from the recorded "
            "call times: the slowest reference per round plus the aggregator.\n\n")
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in table_rows(report)]
    notes = "".join(f"- {md(line)}\n" for line in summary_lines(report))
    charts = "".join(f"\n![{name}]({name})\n" for name in report.get("charts", []))
    return head + "\n".join(lines) + "\n\n" + notes + charts


def write_files(report: dict, directory: Path) -> list[Path]:
    written = []
    report["charts"] = []
    for axis, name in ((report["cost_axis"], "search_quality_cost.png"), ("latency_mean", "search_quality_latency.png")):
        if chart(report, axis, directory / name):
            report["charts"].append(name)
            written.append(directory / name)
    (directory / "search.json").write_text(json_dumps(report, indent=2) + "\n", encoding="utf-8")
    (directory / "search.md").write_text(markdown(report), encoding="utf-8")
    return [directory / "search.md", directory / "search.json", *written]


def chart(report: dict, axis: str, path: Path) -> bool:
    """Quality against cost (or latency), every configuration a dot, the Pareto front a line."""
    points = [r for r in report["leaderboard"] if r["quality"] is not None and r[axis] is not None]
    if not points:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front_key = "pareto_latency" if axis == "latency_mean" else "pareto_cost"
    figure, axes = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for row in points:
        colour = "tab:green" if row["solo"] else "tab:blue"
        axes.scatter([row[axis]], [row["quality"] * 100], s=28, color=colour, alpha=0.7)
    front = sorted((r for r in points if r[front_key]), key=lambda r: r[axis])
    axes.plot([r[axis] for r in front], [r["quality"] * 100 for r in front], color="tab:red", marker="o",
              label="Pareto front")
    for row in front:
        axes.annotate(one_line_safe(row["name"])[:48], (row[axis], row["quality"] * 100), textcoords="offset points",
                      xytext=(4, 4), fontsize=7)
    label = {"cost_per_item": "cost per item ($)", "tokens_per_item": "tokens per item (no price for every model)",
             "latency_mean": "mean latency (s), modelled from call times"}[axis]
    axes.set_xlabel(label)
    axes.set_ylabel(f"{report['quality']} (%)")
    axes.set_title(f"moa bench {one_line_safe(report['suite'])} --search: solo models green, mixes blue")
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return True
