"""AlpacaEval 2.0's length-controlled win rate: a longer but worse system wins on the raw rate
and loses once length is controlled, in-process and through `moa bench --judge` with a scripted
length-biased judge."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from moa_cli.bench.length_controlled import Judged, fit, with_ci

ITEMS = [f"topic-{letter}" for letter in "ABCDEFGHIJ"]


def scripted_rows() -> list[Judged]:
    """L answers at length on six items and the judge, biased, prefers it there; at equal
    length it loses all four. G is never longer and wins seven of ten on merit."""
    rows = []
    for n, item in enumerate(ITEMS):
        long = n < 6
        rows.append(Judged("L", item, 1.0 if long else 0.0, 900 + 7 * n if long else 300 + n, 300))
        rows.append(Judged("G", item, 1.0 if n < 7 else 0.0, 300 + 3 * (n % 3), 300))
    return rows


def published_lc(fitted, rows: list[Judged], system: str) -> float:
    """AlpacaEval's formula written out on its own: mean over the system's instructions of
    logistic(theta + instruction difficulty), the tanh(std_delta_len) term zeroed."""
    items = [r.item for r in rows if r.system == system]
    return sum(1 / (1 + math.exp(-(fitted.theta[system] + fitted.difficulty[i]))) for i in items) / len(items)


def published_prediction(fitted, rows: list[Judged], system: str) -> list[float]:
    """The full GLM prediction, length term included: tanh(delta / sample std of delta)."""
    mine = [r for r in rows if r.system == system]
    deltas = [r.system_length - r.baseline_length for r in mine]
    mean = sum(deltas) / len(deltas)
    std = math.sqrt(sum((d - mean) ** 2 for d in deltas) / (len(deltas) - 1)) or 1.0
    return [1 / (1 + math.exp(-(fitted.theta[system] + fitted.phi[system] * math.tanh(d / std)
                                + fitted.difficulty[r.item]))) for r, d in zip(mine, deltas)]


def test_longer_but_worse_wins_raw_and_loses_length_controlled():
    rows = scripted_rows()
    fitted = fit(rows)
    assert fitted.raw_win_rate == {"L": 0.6, "G": 0.7}
    assert fitted.lc_win_rate["L"] < 0.5 < fitted.raw_win_rate["L"]
    assert fitted.lc_win_rate["G"] > fitted.lc_win_rate["L"]
    assert abs(fitted.lc_win_rate["G"] - fitted.raw_win_rate["G"]) < 0.05  # no length gap, no correction
    assert fitted.phi["L"] > 1.0  # the length term took the judge's bias
    for system in ("L", "G"):
        assert fitted.lc_win_rate[system] == pytest.approx(published_lc(fitted, rows, system), abs=1e-12)
        # With the length term the GLM explains the raw preferences (it was fitted to them).
        predicted = published_prediction(fitted, rows, system)
        preferences = [r.preference for r in rows if r.system == system]
        assert sum(predicted) / len(predicted) == pytest.approx(sum(preferences) / len(preferences), abs=0.06)


def test_bootstrap_ci_brackets_the_estimate_and_is_reproducible():
    rows = scripted_rows()
    first, second = with_ci(rows, samples=60), with_ci(rows, samples=60)
    assert first == second
    for system, entry in first.items():
        low, high = entry["lc_ci95"]
        assert 0.0 <= low <= entry["lc_win_rate"] <= high <= 1.0
    assert first["L"]["lc_ci95"][0] < first["L"]["lc_win_rate"] < first["L"]["win_rate"]


def test_one_sided_results_need_no_fit():
    rows = [Judged("S", item, 1.0, 100, 100) for item in ITEMS]
    assert fit(rows).lc_win_rate == {"S": 1.0}
    assert fit([]) is None


CONFIG = """
[mixes.trio]
layers = [["openai:r1", "openai:r2"]]
aggregator = "openai:agg"
"""
LONG = "LONG answer. " + "More detail that the judge mistakes for quality. " * 20


def test_bench_judge_reports_lc_beside_raw_with_a_length_biased_judge(moa, server, moa_env, tmp_path):
    home = Path(moa_env["MOA_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(CONFIG)
    suite = tmp_path / "topics.jsonl"
    suite.write_text("".join(json.dumps({"id": item, "instruction": f"Tell me about {item}."}) + "\n"
                             for item in ITEMS))
    # The mix writes at length on six topics, briefly (like the references) on four.
    server.script("agg", replies={item: (LONG if n < 6 else f"short agg answer on {item}")
                                  for n, item in enumerate(ITEMS)})
    for model in ("r1", "r2"):
        server.script(model, replies={item: f"{model} brief answer on {item}" for item in ITEMS})
    # The judge prefers the long answer wherever it is, and otherwise the reference's.
    server.script("judge", replies={"[Answer A]\nLONG": "[[A]]", "[Answer B]\nLONG": "[[B]]",
                                    "[Answer A]\nshort agg": "[[B]]", "[Answer B]\nshort agg": "[[A]]"})
    out = tmp_path / "run"
    result = moa("bench", str(suite), "--mix", "trio", "--judge", "openai:judge", "--out", str(out), timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    judged = {j["baseline"]: j for j in report["judged"]}
    assert set(judged) == {"openai:r1", "openai:r2"}
    for entry in judged.values():
        assert entry["win_rate"] == 0.6
        assert entry["lc_win_rate"] < 0.5
        low, high = entry["lc_ci95"]
        assert low <= entry["lc_win_rate"] <= high
    assert "Length-controlled" in (out / "report.md").read_text()
