"""The report's pieces, in-process: the judge's verdict parsing and the chart."""

from __future__ import annotations

import pytest

from moa_cli.bench import judge
from moa_cli.bench.report import figure_for


@pytest.mark.parametrize("reply, verdict", [
    ("[[A]]", "A"),
    ("A is shorter, but B is more accurate and complete. [[B]]", "B"),
    ("The format is [[A]], [[B]] or [[C]]. Having read both: [[C]]", "C"),
    ("[[ B ]]", "B"),
    ("A", None),  # a lone letter is not a verdict
    ("Answer B is better.", None),
    ("", None),
])
def test_the_verdict_is_the_last_marker(reply, verdict):
    assert judge.read_verdict(reply) == verdict


def test_a_missing_verdict_is_no_verdict_never_a_tie():
    assert judge.combine("A", None) == judge.combine(None, "B") == judge.NO_VERDICT
    assert (judge.combine("A", "B"), judge.combine("B", "A"), judge.combine("A", "A"), judge.combine("C", "B")) == \
        ("win", "loss", "tie", "tie")
    assert (judge.consistent("A", "B"), judge.consistent("A", "A"), judge.consistent("A", None)) == (True, False, None)


def test_the_chart_starts_at_zero_and_its_labels_do_not_overlap():
    rows = [{"name": name, "role": "mix" if i == 0 else "reference", "quality": q, "cost": None,
             "prompt_tokens": 1000 + i, "completion_tokens": 0}
            for i, (name, q) in enumerate([("a-long-mix-name", 0.62), ("provider:model-one", 0.61),
                                           ("provider:model-two", 0.615), ("provider:model-three", 0.6)])]
    figure, axes, labels = figure_for({"suite": "humaneval", "quality": "pass@1", "systems": rows})
    assert axes.get_ylim()[0] == 0
    from matplotlib.text import Text

    renderer = figure.canvas.get_renderer()
    boxes = [Text.get_window_extent(label, renderer) for label in labels]
    assert len(boxes) == 4
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
