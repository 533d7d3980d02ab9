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


def _system(name: str, role: str, kind: str):
    """Just what report.build reads of a System: its name, role and which providers it calls."""
    from types import SimpleNamespace

    mix = SimpleNamespace(providers=lambda: {"p"})
    return SimpleNamespace(name=name, role=role, settings=SimpleNamespace(mix=mix, providers={"p": SimpleNamespace(kind=kind)}))


def _graded_files(tmp_path, grades: dict):
    from moa_cli.bench.predictions import RunFiles

    files = RunFiles(tmp_path)
    for (system, item), passed in grades.items():
        files.predictions.records[(system, item)] = {"generator": system, "item": item, "status": "ok", "cost": None,
                                                     "latency": 0.1, "output": "x", "usage": {"prompt_tokens": 1,
                                                                                             "completion_tokens": 1}}
        if passed is not None:
            files.grades.records[(system, item)] = {"passed": passed, "isolation": "bwrap"}
    return files


@pytest.mark.parametrize("kind, noted", [("local", True), ("openai", False)])
def test_the_near_zero_note_is_only_for_the_local_mix(tmp_path, kind, noted):
    from moa_cli.bench.report import NEAR_ZERO, build

    systems = [_system("mix", "mix", kind), _system("one", "reference", kind)]
    files = _graded_files(tmp_path, {(s.name, "t1"): False for s in systems})
    report = build("humaneval", True, ["t1"], systems, files, None)
    assert (NEAR_ZERO in report["notes"]) is noted


def test_a_missing_grade_is_a_failure_and_pass_at_1_is_over_every_item(tmp_path):
    from moa_cli.bench.report import build

    systems = [_system("mix", "mix", "openai"), _system("one", "reference", "openai")]
    # mix: t1 passed, t2 has no grade, t3 has no answer at all; one: t1 and t2 passed.
    files = _graded_files(tmp_path, {("mix", "t1"): True, ("mix", "t2"): None, ("one", "t1"): True, ("one", "t2"): True})
    report = build("humaneval", True, ["t1", "t2", "t3"], systems, files, None)
    rows = {row["name"]: row for row in report["systems"]}
    assert (rows["mix"]["items"], rows["mix"]["passed"], rows["mix"]["quality"], rows["mix"]["ungraded"]) == (3, 1, 0.3333, 2)
    assert (rows["one"]["items"], rows["one"]["quality"]) == (3, 0.6667)
    assert report["isolation"] == "bwrap"
