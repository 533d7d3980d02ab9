"""The numbers of a report: pass@1, paired comparisons, bootstrap confidence intervals.

Everything is plain Python over small lists; the bootstrap uses its own seeded RNG, so a report
computed twice from the same files is the same report.
"""

from __future__ import annotations

import math
import random
from typing import Sequence

BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SEED = 13


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100), linearly interpolated between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def bootstrap_ci(scores: Sequence[float], *, level: float = 0.95, samples: int = BOOTSTRAP_SAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """A percentile-bootstrap confidence interval of the mean of `scores` (items resampled)."""
    if not scores:
        return None
    rng = random.Random(seed)
    n = len(scores)
    means = sorted(sum(rng.choices(scores, k=n)) / n for _ in range(samples))
    tail = (1 - level) / 2
    return percentile(means, 100 * tail), percentile(means, 100 * (1 - tail))


def paired(mix: dict[str, float], baseline: dict[str, float]) -> dict:
    """The mix against one baseline on the items both have a score for (1 pass, 0 fail):
    items won, lost and tied, the difference of the mean scores and its 95% bootstrap CI."""
    common = sorted(mix.keys() & baseline.keys())
    differences = [mix[item] - baseline[item] for item in common]
    ci = bootstrap_ci(differences)
    return {
        "items": len(common),
        "won": sum(1 for d in differences if d > 0),
        "lost": sum(1 for d in differences if d < 0),
        "tied": sum(1 for d in differences if d == 0),
        "difference": mean(differences),
        "ci95": list(ci) if ci else None,
    }


def win_rate(results: Sequence[str]) -> dict:
    """Judge results of the mix against one baseline ("win", "loss", "tie"): ties count half,
    as AlpacaEval counts them, with a 95% bootstrap CI."""
    points = [{"win": 1.0, "tie": 0.5, "loss": 0.0}[r] for r in results]
    ci = bootstrap_ci(points)
    return {
        "items": len(points),
        "won": results.count("win"),
        "lost": results.count("loss"),
        "tied": results.count("tie"),
        "win_rate": mean(points),
        "ci95": list(ci) if ci else None,
    }
