"""AlpacaEval 2.0's length-controlled win rate: what would the judge prefer if both answers had
the same length?

AlpacaEval fits a logistic GLM to the judge's preferences (1: the system's answer, 0: the
baseline's, 0.5: a tie) with three terms: a per-system intercept, the tanh of the length
difference divided by its standard deviation, and the instruction's difficulty. The
length-controlled win rate is the GLM's mean prediction with the length term set to zero:

    p(i)   = logistic(theta_s + phi_s * tanh(delta_len(i) / std(delta_len)) + difficulty(i))
    LC_s   = mean over items of logistic(theta_s + difficulty(i))

AlpacaEval takes each instruction's difficulty from its own precomputed table over many
models; moa has no such table, so difficulty is one coefficient per instruction, fitted jointly
over every system judged against the same baseline on it (L2-regularised, so with a single
system it shrinks towards zero instead of absorbing the system's whole effect). Soft labels
are fitted as AlpacaEval does: each row twice, as a win weighted p and a loss weighted 1 - p.
scikit-learn does the fitting; the CI is a bootstrap over instructions, refitting each time.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Sequence

REGULARISATION_C = 10.0  # inverse L2 strength; keeps separable (scripted) data finite
BOOTSTRAP_SAMPLES = 200  # each sample refits the GLM
BOOTSTRAP_SEED = 13
POINTS = {"win": 1.0, "tie": 0.5, "loss": 0.0}


@dataclass(frozen=True)
class Judged:
    system: str  # the side whose win rate is measured
    item: str
    preference: float  # 1 the system's answer was preferred, 0 the baseline's, 0.5 a tie
    system_length: int  # characters
    baseline_length: int


@dataclass(frozen=True)
class Fit:
    lc_win_rate: dict[str, float]  # per system
    raw_win_rate: dict[str, float]
    theta: dict[str, float]  # per-system intercept
    phi: dict[str, float]  # per-system weight of tanh(normalised length difference)
    difficulty: dict[str, float]  # per-instruction term


def _normalised_lengths(rows: Sequence[Judged]) -> list[float]:
    """tanh(delta_len / std(delta_len)), the std taken over each system's own rows."""
    by_system: dict[str, list[float]] = {}
    for r in rows:
        by_system.setdefault(r.system, []).append(float(r.system_length - r.baseline_length))
    std = {}
    for system, deltas in by_system.items():
        mean = sum(deltas) / len(deltas)
        variance = sum((d - mean) ** 2 for d in deltas) / max(len(deltas) - 1, 1)
        std[system] = math.sqrt(variance) or 1.0
    return [math.tanh((r.system_length - r.baseline_length) / std[r.system]) for r in rows]


def fit(rows: Sequence[Judged]) -> Fit | None:
    """The GLM over `rows`, or None when there is nothing to fit."""
    if not rows:
        return None
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    systems = sorted({r.system for r in rows})
    items = sorted({r.item for r in rows})
    s_index = {s: i for i, s in enumerate(systems)}
    i_index = {it: len(systems) * 2 + i for i, it in enumerate(items)}
    width = len(systems) * 2 + len(items)
    lengths = _normalised_lengths(rows)
    features = np.zeros((len(rows), width))
    for n, (row, length) in enumerate(zip(rows, lengths)):
        features[n, s_index[row.system]] = 1.0  # theta_s
        features[n, len(systems) + s_index[row.system]] = length  # phi_s
        features[n, i_index[row.item]] = 1.0  # the instruction's difficulty
    preference = np.array([r.preference for r in rows])
    X = np.vstack([features, features])
    y = np.concatenate([np.ones(len(rows)), np.zeros(len(rows))])
    weight = np.concatenate([preference, 1.0 - preference])
    raw = {s: float(np.mean([r.preference for r in rows if r.system == s])) for s in systems}
    if np.all(weight[: len(rows)] == weight[0]) and weight[0] in (0.0, 1.0):
        # One class only (every item won, or every item lost): the GLM has nothing to separate.
        return Fit(dict(raw), raw, {s: math.inf if weight[0] else -math.inf for s in systems},
                   {s: 0.0 for s in systems}, {it: 0.0 for it in items})
    # liblinear, as AlpacaEval uses: fast on these small designs (a bootstrap refits it often).
    model = LogisticRegression(C=REGULARISATION_C, fit_intercept=False, solver="liblinear", max_iter=1000)
    model.fit(X, y, sample_weight=weight)
    coef = model.coef_[0]
    theta = {s: float(coef[s_index[s]]) for s in systems}
    phi = {s: float(coef[len(systems) + s_index[s]]) for s in systems}
    difficulty = {it: float(coef[i_index[it]]) for it in items}
    lc = {}
    for s in systems:
        judged_items = [r.item for r in rows if r.system == s]
        lc[s] = sum(_logistic(theta[s] + difficulty[it]) for it in judged_items) / len(judged_items)
    return Fit(lc, raw, theta, phi, difficulty)


def _logistic(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def with_ci(rows: Sequence[Judged], *, samples: int = BOOTSTRAP_SAMPLES,
            seed: int = BOOTSTRAP_SEED) -> dict[str, dict]:
    """Per system: the LC win rate, the raw win rate, and a 95% bootstrap CI of the LC rate
    (instructions resampled with replacement, the GLM refitted on each sample)."""
    result = fit(rows)
    if result is None:
        return {}
    items = sorted({r.item for r in rows})
    by_item: dict[str, list[Judged]] = {}
    for r in rows:
        by_item.setdefault(r.item, []).append(r)
    rng = random.Random(seed)
    draws: dict[str, list[float]] = {s: [] for s in result.lc_win_rate}
    for _ in range(samples):
        sample = []
        for n, item in enumerate(rng.choices(items, k=len(items))):
            # A drawn instruction counts as its own instruction each time it is drawn.
            sample.extend(Judged(r.system, f"{item}#{n}", r.preference, r.system_length, r.baseline_length)
                          for r in by_item[item])
        refit = fit(sample)
        for system, value in refit.lc_win_rate.items():
            draws[system].append(value)
    from .stats import percentile

    return {s: {"lc_win_rate": result.lc_win_rate[s], "win_rate": result.raw_win_rate[s],
                "lc_ci95": [percentile(draws[s], 2.5), percentile(draws[s], 97.5)] if draws[s] else None,
                "theta": result.theta[s], "phi": result.phi[s]}
            for s in result.lc_win_rate}


def rows_from_bench(judgements, predictions, mix: str) -> list[Judged]:
    """The mix's judged comparisons from a plain `moa bench --judge` run: one row per (baseline,
    item) with a readable verdict, the mix as the system, each baseline as its own comparison."""
    rows = []
    for record in judgements:
        points = POINTS.get(record.get("result"))
        mix_answer = predictions.get((mix, record["item"]))
        base_answer = predictions.get((record["baseline"], record["item"]))
        if points is None or mix_answer is None or base_answer is None:
            continue  # no verdict: it counts in neither rate
        rows.append(Judged(record["baseline"], record["item"], points, len(mix_answer["output"]),
                           len(base_answer["output"])))
    return rows
