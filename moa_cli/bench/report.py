"""The report of a run: numbers from the run's files, then a terminal table, report.md,
report.json and quality_cost.png.

Everything is computed from the files the run wrote (predictions, grades, judgements), so a
resumed run reports exactly as one that never stopped. matplotlib is imported only to draw.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..sanitize import json_dumps, one_line_safe
from . import judge as judging
from . import stats
from ..secrets import redact
from .predictions import RunFiles, redacted
from .runner import System

LENGTH_CAVEAT = ("Raw judged win rates are not length-controlled: a mix's answers run longer than a single "
                 "model's, and LLM judges favour longer answers; the length-controlled rate (AlpacaEval 2.0's "
                 "GLM with the length difference set to zero) is the one to compare.")
GUARD_NOTE = ("Isolation: the Python guard, NOT a security sandbox (bubblewrap was missing or refused); "
              "graded programs could reach this machine.")
NEAR_ZERO = ("Scores are near zero: the models are too small for this suite (the offline `local` mix runs "
             "SmolLM2-135M). This run shows that every part of the pipeline works, not what a mix is worth.")


def build(suite_name: str, graded: bool, items: list[str], systems: list[System], files: RunFiles,
          judge: str | None) -> dict:
    """The report's numbers. Every selected item counts for every system: an item with no answer
    or no grade is a failure (with the reason), so pass@1's denominator is always `items`."""
    predictions = files.predictions.records
    grades = files.grades.records
    rows = []
    for system in systems:
        records = [predictions[(system.name, item)] for item in items if (system.name, item) in predictions]
        ok = [r for r in records if r["status"] == "ok"]
        costs = [r["cost"] for r in records]
        row = {
            "name": system.name, "role": system.role, "items": len(items), "answered": len(records),
            "errors": len(records) - len(ok), "quality": None,
            "latency_mean": _round(stats.mean([r["latency"] for r in ok])),
            "latency_p95": _round(stats.percentile([r["latency"] for r in ok], 95)),
            "prompt_tokens": sum(r["usage"]["prompt_tokens"] for r in records),
            "completion_tokens": sum(r["usage"]["completion_tokens"] for r in records),
            "cost": None if any(c is None for c in costs) else round(sum(costs), 6),
            "mean_length": _round(stats.mean([len(r["output"]) for r in ok]), 1),
        }
        if graded:
            scores = _scores(system.name, items, grades)
            row["quality"] = _round(stats.mean(list(scores.values())))
            row["passed"] = int(sum(scores.values()))
            row["ungraded"] = sum(1 for item in items if (system.name, item) not in grades)
        rows.append(row)
    report = {"suite": suite_name, "mix": systems[0].name, "items": len(items), "judge": judge,
              "quality": "pass@1" if graded else ("win rate against the mix (ties count half)" if judge else None),
              "systems": rows, "notes": []}
    if graded:
        _compare_graded(report, items, systems, grades)
    elif judge:
        _compare_judged(report, systems, files)
    else:
        report["notes"].append("No quality measure: pass --judge MODEL to compare the answers.")
    qualities = [r["quality"] for r in rows if r["quality"] is not None]
    if graded and qualities and max(qualities) < 0.05 and _is_local(systems[0]):
        report["notes"].append(NEAR_ZERO)
    if graded:
        kinds = {g.get("isolation", "guard") for g in grades.values()}
        report["isolation"] = "guard" if "guard" in kinds or not kinds else "bwrap"
        if report["isolation"] == "guard":
            report["notes"].append(GUARD_NOTE)
        missing = sum(r["ungraded"] for r in rows)
        if missing:
            report["notes"].append(f"{missing} answers have no grade (see grades.jsonl); they count as failed.")
    return report


def _is_local(mix: System) -> bool:
    """The offline `local` mix: every model it calls runs in-process."""
    settings = mix.settings
    return all(settings.providers[name].kind == "local" for name in settings.mix.providers())


def _scores(name: str, items: list[str], grades: dict) -> dict[str, float]:
    """1.0 or 0.0 for every item: no answer, a failed answer or a missing grade scores 0."""
    return {item: 1.0 if grades.get((name, item), {}).get("passed") is True else 0.0 for item in items}


def _compare_graded(report: dict, items: list[str], systems: list[System], grades: dict) -> None:
    rows = report["systems"]
    if len(rows) < 2:
        return
    best = max(rows[1:], key=lambda r: (r["quality"] or 0.0))
    comparison = stats.paired(_scores(rows[0]["name"], items, grades), _scores(best["name"], items, grades))
    report["comparison"] = {"baseline": best["name"], **_rounded(comparison)}


def _compare_judged(report: dict, systems: list[System], files: RunFiles) -> None:
    """Win rates over the items with a verdict; the items without one are counted apart, per
    baseline, and never as ties. Position consistency: how often both orders agreed."""
    rows = {r["name"]: r for r in report["systems"]}
    judged = []
    for system in systems[1:]:
        records = [j for j in files.judgements.values() if j["baseline"] == system.name]
        results = [j["result"] for j in records if j["result"] != judging.NO_VERDICT]
        rate = stats.win_rate(results)
        both = [j["consistent"] for j in records if j.get("consistent") is not None]
        judged.append({"baseline": system.name, **_rounded(rate),
                       "no_verdict": len(records) - len(results),
                       "consistency": _round(stats.mean([1.0 if c else 0.0 for c in both])),
                       "consistency_pairs": len(both),
                       "mix_mean_length": rows[systems[0].name]["mean_length"],
                       "baseline_mean_length": rows[system.name]["mean_length"]})
        if rate["win_rate"] is not None:
            rows[system.name]["quality"] = _round(1 - rate["win_rate"])
    report["judged"] = judged
    report["verdicts"] = sum(j["items"] for j in judged)
    if report["verdicts"]:
        rows[systems[0].name]["quality"] = 0.5  # the mix against itself, by definition
    _length_controlled(judged, files, systems[0].name)
    report["notes"].append(LENGTH_CAVEAT)


def _length_controlled(judged: list[dict], files: RunFiles, mix: str) -> None:
    """AlpacaEval 2.0's length-controlled win rate beside each raw one (length_controlled.py)."""
    from . import length_controlled

    rows = length_controlled.rows_from_bench(files.judgements.values(), files.predictions.records, mix)
    fitted = length_controlled.with_ci(rows) if rows else {}
    for entry in judged:
        lc = fitted.get(entry["baseline"])
        entry["lc_win_rate"] = _round(lc["lc_win_rate"]) if lc else None
        entry["lc_ci95"] = [_round(x) for x in lc["lc_ci95"]] if lc and lc["lc_ci95"] else None


def _round(value, digits: int = 4):
    return None if value is None else round(value, digits)


def _rounded(data: dict) -> dict:
    return {k: (_round(v) if isinstance(v, float) else [_round(x) for x in v] if isinstance(v, list) else v)
            for k, v in data.items()}


# ------------------------------------------------------------------------------- writing it


def _fmt(value, kind: str) -> str:
    if value is None:
        return "—"
    return {"pct": f"{value * 100:.1f}%", "s": f"{value:.2f}s", "$": f"${value:.4f}", "n": f"{value:,}",
            "len": f"{value:,.0f}"}[kind]


COLUMNS = [("system", None), ("role", None), ("quality", "pct"), ("items", "n"), ("errors", "n"),
           ("latency_mean", "s"), ("latency_p95", "s"), ("tokens", "n"), ("cost", "$"), ("mean_length", "len")]
HEADERS = ["system", "role", "quality", "items", "errors", "mean latency", "p95 latency", "tokens", "cost",
           "mean length"]


def table_rows(report: dict) -> list[list[str]]:
    rows = []
    for row in report["systems"]:
        values = {**row, "system": row["name"], "tokens": row["prompt_tokens"] + row["completion_tokens"]}
        rows.append([str(values[key]) if kind is None else _fmt(values[key], kind) for key, kind in COLUMNS])
    return rows


def summary_lines(report: dict) -> list[str]:
    lines = []
    if (c := report.get("comparison")) and c["difference"] is not None:
        lo, hi = c["ci95"]
        lines.append(f"Mix vs best baseline {c['baseline']} on {c['items']} items: won {c['won']}, lost "
                     f"{c['lost']}, tied {c['tied']}; pass@1 difference {c['difference'] * 100:+.1f} points "
                     f"(95% CI {lo * 100:+.1f} to {hi * 100:+.1f}).")
    for j in report.get("judged", []):
        verdictless = f"; no verdict on {j['no_verdict']}" if j["no_verdict"] else ""
        consistency = (f"; the two orders agreed on {j['consistency'] * 100:.0f}% of {j['consistency_pairs']} pairs"
                       if j["consistency"] is not None else "")
        if j["win_rate"] is not None:
            lo, hi = j["ci95"]
            lines.append(f"Mix vs {j['baseline']} ({j['items']} items with a verdict, judge {report['judge']}): "
                         f"won {j['won']}, lost {j['lost']}, tied {j['tied']}{verdictless}; win rate "
                         f"{j['win_rate'] * 100:.1f}% (95% CI {lo * 100:.1f}–{hi * 100:.1f}%){consistency}; mean "
                         f"length {_fmt(j['mix_mean_length'], 'len')} vs {_fmt(j['baseline_mean_length'], 'len')} "
                         f"characters.")
            if j.get("lc_win_rate") is not None:
                lo, hi = j["lc_ci95"] or (j["lc_win_rate"], j["lc_win_rate"])
                lines.append(f"Length-controlled (AlpacaEval 2.0) win rate against {j['baseline']}: "
                             f"{j['lc_win_rate'] * 100:.1f}% (95% CI {lo * 100:.1f}–{hi * 100:.1f}%).")
        else:
            lines.append(f"Mix vs {j['baseline']}: no verdict from the judge on any of {j['no_verdict']} items.")
    if "isolation" in report:
        lines.append(f"Isolation of the graded programs: {report['isolation']}.")
    return lines + report["notes"]


def markdown(report: dict) -> str:
    title = f"# moa bench: {report['suite']}, mix {report['mix']}\n\n"
    quality = f"Quality: {report['quality']}. " if report["quality"] else ""
    head = f"{report['items']} items. {quality}Cost: — when a model has no known price.\n\n"
    widths = [len(h) for h in HEADERS]
    rows = [[_md(cell) for cell in row] for row in table_rows(report)]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    table = "\n".join([line(HEADERS), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, rows)])
    notes = "".join(f"- {_md(text)}\n" for text in summary_lines(report))
    chart = "\n![quality against cost](quality_cost.png)\n" if report.get("chart") else ""
    return title + head + table + "\n\n" + notes + chart


def _md(text: str) -> str:
    """Outside text (model names) in a Markdown table: one line, no pipes, no control characters."""
    return one_line_safe(text).replace("|", "\\|")


def write_files(report: dict, directory: Path) -> list[Path]:
    """report.json, quality_cost.png (when there is a quality to plot) and report.md."""
    written = []
    if chart(report, directory / "quality_cost.png"):
        report["chart"] = "quality_cost.png"
        written.append(directory / "quality_cost.png")
    (directory / "report.json").write_text(json_dumps(redacted(report), indent=2) + "\n", encoding="utf-8")
    (directory / "report.md").write_text(redact(markdown(report)), encoding="utf-8")
    return [directory / "report.md", directory / "report.json", *written]


def load_chart_library_meanwhile() -> None:
    """Start importing matplotlib (about 0.35 s) in a thread, while the run's calls are made, so
    that drawing the chart at the end does not wait for it. A failure here is no failure: the
    chart's own import says whatever there is to say."""
    import threading

    def load():
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot  # noqa: F401
        except Exception:  # noqa: BLE001 - see above
            pass

    # Not a daemon: a thread killed in the middle of an import at exit can crash the interpreter.
    threading.Thread(target=load, name="moa-chart-import").start()


def chart(report: dict, path: Path) -> bool:
    """Quality against cost per system, like the MoA paper's cost-quality figure. Systems with no
    known price are placed by tokens instead, and the axis says so."""
    drawn = figure_for(report)
    if drawn is None:
        return False
    import matplotlib.pyplot as plt

    figure, _, _ = drawn
    figure.savefig(path)
    plt.close(figure)
    return True


def figure_for(report: dict):
    """(figure, axes, labels) of the chart, or None when no system has a quality."""
    points = [r for r in report["systems"] if r["quality"] is not None]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, never a display
    import matplotlib.pyplot as plt

    priced = all(r["cost"] is not None for r in points) and any(r["cost"] for r in points)
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    placed = []
    for row in points:
        x = row["cost"] if priced else row["prompt_tokens"] + row["completion_tokens"]
        y = row["quality"] * 100
        axes.scatter([x], [y], s=60, marker="*" if row["role"] == "mix" else "o",
                     color="tab:red" if row["role"] == "mix" else "tab:blue")
        placed.append((x, y, one_line_safe(row["name"])[:40]))
    axes.set_ylim(0, 105)  # quality from 0 to 100%: a small difference is never zoomed into a large one
    axes.set_xlim(0, (max(x for x, _, _ in placed) or 1) * 1.3)
    axes.set_xlabel("total cost ($)" if priced else "total tokens (no prices known for every model)")
    axes.set_ylabel(f"{report['quality'].split(' (')[0]} (%)")
    axes.set_title(f"moa bench {one_line_safe(report['suite'])}: quality against cost")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure, axes, _label_without_overlap(figure, axes, placed)


def _label_without_overlap(figure, axes, placed) -> list:
    """Each point's name beside it, moved down in steps until its box overlaps no other label."""
    from matplotlib.text import Text

    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    boxes, labels = [], []
    for x, y, name in sorted(placed, key=lambda p: -p[1]):
        for step in range(40):
            text = axes.annotate(name, (x, y), textcoords="offset points", xytext=(6, 4 - 11 * step), fontsize=8,
                                 arrowprops={"arrowstyle": "-", "alpha": 0.4} if step else None)
            box = Text.get_window_extent(text, renderer).expanded(1.02, 1.1)  # the words, not the leader line
            if step == 39 or not any(box.overlaps(other) for other in boxes):
                break
            text.remove()
        boxes.append(box)
        labels.append(text)
    return labels


def print_table(report: dict, console) -> None:
    """The report on the terminal, narrow enough for 80 columns: outside text as rich Text,
    never as markup."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(f"moa bench {one_line_safe(report['suite'])} · {report['items']} items"))
    table.add_column("system", overflow="fold", ratio=1)
    for header in ("quality", "errors", "latency mean/p95", "tokens", "cost", "length"):
        table.add_column(header, justify="right", no_wrap=True)
    for row, cells in zip(report["systems"], table_rows(report)):
        cell = dict(zip(HEADERS, cells))
        name = cell["system"] + (" (mix)" if row["role"] == "mix" else "")
        latency = f"{cell['mean latency'].rstrip('s')}/{cell['p95 latency']}"
        table.add_row(*(Text(one_line_safe(text)) for text in (
            name, cell["quality"], cell["errors"], latency, cell["tokens"], cell["cost"], cell["mean length"])))
    console.print(table)
    for line in summary_lines(report):
        console.print(Text(one_line_safe(line)))
