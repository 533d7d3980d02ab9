"""MT-Bench-style multi-turn suites: the built-in suite's shape, rating parsing, the judge's
prompts, and `moa bench FILE.jsonl --judge` end to end with a real two-turn conversation."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from moa_cli.bench import mtbench

CONFIG = """
[mixes.trio]
layers = [["openai:r1", "openai:r2"]]
aggregator = "openai:agg"
"""
QUESTIONS = [
    {"question_id": 1, "category": "writing", "turns": ["Write a haiku about tea.", "Now make it about coffee."]},
    {"question_id": 2, "category": "math", "turns": ["What is 6 times 7?", "And 6 times 8?"],
     "reference": ["42", "48"]},
    {"question_id": 3, "category": "coding", "turns": ["Reverse a list in Python.", "QUIRKY second turn: in place?"],
     "reference": ["xs[::-1]", "xs.reverse()"]},
]


def test_builtin_suite_covers_mt_benchs_eight_categories_in_two_turns():
    name, questions = mtbench.load_questions("mtbench")
    assert name == "mtbench" and len(questions) == 20
    counts = Counter(q.category for q in questions)
    assert set(counts) == set(mtbench.CATEGORIES) and min(counts.values()) >= 2
    assert all(len(q.turns) == 2 for q in questions)
    assert all(len(q.reference) == 2 for q in questions if q.category in mtbench.REFERENCE_CATEGORIES)
    assert mtbench.is_mtbench("mtbench")


def test_ratings_are_read_in_mt_benchs_format_and_anything_else_is_no_verdict():
    assert mtbench.read_rating("Good answer. Rating: [[7]]") == 7.0
    assert mtbench.read_rating("[[8.5]]") == 8.5
    assert mtbench.read_rating("Rating: [6]") == 6.0  # MT-Bench's fallback
    for reply in ("I cannot decide.", "Rating: 7/10", "[[11]]", "[[0]]", ""):
        assert mtbench.read_rating(reply) is None


def test_second_turn_prompt_shows_the_conversation_and_the_reference_for_math():
    question = mtbench.Question("2", "math", ("What is 6 times 7?", "And 6 times 8?"), ("42", "48"))
    prompt = mtbench.judge_prompt(question, ["It is 42.", "It is 49."], 2)
    for text in ("What is 6 times 7?", "It is 42.", "And 6 times 8?", "It is 49.", "48", "[[rating]]"):
        assert text in prompt
    general = mtbench.Question("1", "writing", ("Write.",), ("ignored",))
    assert "ignored" not in mtbench.judge_prompt(general, ["A poem."], 1)


def test_two_turn_suite_runs_real_conversations_and_reports_per_turn_and_category(moa, server, moa_env, tmp_path):
    home = Path(moa_env["MOA_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(CONFIG)
    suite = tmp_path / "question.jsonl"
    suite.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    for model in ("r1", "r2", "agg"):
        server.script(model, replies={turn: f"{model} says: reply to {turn}" for q in QUESTIONS for turn in q["turns"]})
    # Turn 1 rates 8, turn 2 rates 6; one turn-2 reply gives no rating at all.
    server.script("judge", replies={"QUIRKY second turn": "Hard to say.", "second user message": "Rating: [[6]]",
                                    "[Question]": "Fine. Rating: [[8]]"})
    out = tmp_path / "run"
    result = moa("bench", str(suite), "--mix", "trio", "--judge", "openai:judge", "--out", str(out), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads((out / "mtbench.json").read_text())
    rows = {row["name"]: row for row in report["systems"]}
    assert set(rows) == {"trio", "openai:r1", "openai:r2"}
    for row in rows.values():
        assert row["per_turn"] == {"1": 8.0, "2": 6.0}
        assert row["rated"] == 5 and row["no_verdict"] == 1 and row["no_answer"] == 0
        assert row["per_category"] == {"writing": 7.0, "math": 7.0, "coding": 8.0}
        assert row["score"] == round((8 * 3 + 6 * 2) / 5, 3)
    # Turn 2 is sent after turn 1's final answer: r1 alone after its own, r1 inside the mix after
    # the mix's final answer (the aggregator's).
    second = "And 6 times 8?"
    seen = [tuple(m["content"] for m in r["body"]["messages"] if m["role"] == "assistant")
            for r in server.requests("r1") if r["body"]["messages"][-1]["content"] == second]
    assert sorted(seen) == [("agg says: reply to What is 6 times 7?",), ("r1 says: reply to What is 6 times 7?",)]
    # The judge saw the reference for math, and the whole conversation for turn 2.
    judged = [r["body"]["messages"][-1]["content"] for r in server.requests("judge")]
    math_turn_2 = [p for p in judged if "And 6 times 8?" in p and "second user message" in p]
    assert len(math_turn_2) == 3 and all("48" in p and "What is 6 times 7?" in p for p in math_turn_2)
    assert len(judged) == 3 * 3 * 2
    assert "turn 2" in (out / "mtbench.md").read_text()
    conversations = [json.loads(line) for line in (out / "conversations.jsonl").read_text().splitlines()]
    assert len(conversations) == 9 and all(len(c["turns"]) == 2 for c in conversations)
    # Resuming a finished run asks nothing again.
    before = len(server.requests())
    again = moa("bench", str(suite), "--mix", "trio", "--judge", "openai:judge", "--out", str(out), "--resume")
    assert again.returncode == 0, again.stderr
    assert len(server.requests()) == before


def test_mtbench_needs_a_judge(moa, server, moa_env, tmp_path):
    result = moa("bench", "mtbench", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "--judge" in result.stderr
    assert server.requests() == []


def test_a_broken_question_file_is_one_line(moa, server, moa_env, tmp_path):
    for text in ('{"question_id": 1, "turns": "not a list"}\n', '{"question_id": 1, "turns": ["a"]}\n{"turns": [1]}\n',
                 '{"question_id": 1, "turns": ["a"]}\n{"question_id": 1, "turns": ["b"]}\n'):
        suite = tmp_path / "question.jsonl"
        suite.write_text(text)
        result = moa("bench", str(suite), "--judge", "openai:judge", "--out", str(tmp_path / "x"))
        assert result.returncode == 2, (text, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert server.requests() == []
