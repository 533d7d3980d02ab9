"""`moa bench` runs you can trust: one run per directory, resume only the same definition,
--retry-failed without duplicates, no foreign file overwritten; honest judges; exit codes."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import moa_command, wait_for

CONFIG = """
[defaults]
retries = 0

[mixes.trio]
layers = [["openai:r1", "openai:r2"]]
aggregator = "openai:agg"
"""
RIGHT_0 = ("```python\ndef has_close_elements(numbers, threshold):\n    return any(abs(a - b) < threshold "
           "for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```")


def command(*args: str) -> list[str]:
    return [*moa_command(), "bench", *args]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def keys_of(path: Path) -> list[tuple]:
    return [(r.get("generator") or r.get("baseline"), r["item"]) for r in read_jsonl(path)]


# ------------------------------------------------------------------------------------ resume


def test_two_concurrent_resumes_one_is_refused_at_once_and_nothing_is_duplicated(moa_env, server, home, tmp_path):
    for model in ("r1", "r2", "agg"):
        server.script(model, reply="```python\nreturn 1\n```", delay=0.3)
    out = tmp_path / "run"
    args = command("humaneval", "--mix", "trio", "--limit", "3", "--concurrency", "2", "--out", str(out))
    first = subprocess.Popen(args, env=moa_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    predictions = out / "predictions.jsonl"
    try:
        wait_for(lambda: predictions.exists() and len(predictions.read_bytes().splitlines()) >= 3, "some answers", 60)
    finally:
        first.kill()
        first.wait(timeout=30)
    before = len(read_jsonl(predictions))
    both = [subprocess.Popen([*args, "--resume"], env=moa_env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for process in both:
        _, stderr = process.communicate(timeout=120)
        results.append((process.returncode, stderr))
    assert sorted(code for code, _ in results) == [0, 2], results
    refused = next(stderr for code, stderr in results if code == 2)
    assert refused.startswith("moa: error:") and refused.count("\n") == 1
    keys = keys_of(predictions)
    assert len(keys) == len(set(keys)) == 9 and before < 9
    grades = keys_of(out / "grades.jsonl")
    assert len(grades) == len(set(grades)) == 9


def test_a_run_on_a_locked_directory_is_refused_while_the_first_runs(moa_env, server, home, tmp_path):
    server.script("*", reply="```python\nreturn 1\n```", delay=60)  # the first run is still answering
    out = tmp_path / "run"
    args = command("humaneval", "--mix", "trio", "--limit", "1", "--out", str(out))
    first = subprocess.Popen(args, env=moa_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (out / "run.json").exists(), "the first run to start", 60)
        second = subprocess.run([*args, "--resume"], env=moa_env, cwd=tmp_path, capture_output=True, text=True,
                                timeout=60)
        assert first.poll() is None  # the first still held the directory
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    finally:
        first.kill()
        first.wait()
    assert not (out / "predictions.jsonl").exists() or keys_of(out / "predictions.jsonl") == []


def test_a_changed_definition_is_refused_saying_what_changed(moa, server, home, tmp_path):
    out = tmp_path / "run"
    assert moa("bench", "chat", "--mix", "trio", "--limit", "1", "--out", str(out)).returncode == 0
    saved = (out / "predictions.jsonl").read_bytes()
    (home / "config.toml").write_text(CONFIG.replace('aggregator = "openai:agg"',
                                                     'aggregator = "openai:agg"\nstrategy = "rank"'))
    result = moa("bench", "chat", "--mix", "trio", "--limit", "1", "--out", str(out), "--resume")
    assert result.returncode == 2 and "strategy" in result.stderr and result.stderr.count("\n") == 1, result.stderr
    (home / "config.toml").write_text(CONFIG.replace("openai:agg", "openai:agg2"))
    result = moa("bench", "chat", "--mix", "trio", "--limit", "1", "--out", str(out), "--resume")
    assert result.returncode == 2 and "aggregator" in result.stderr, result.stderr
    assert (out / "predictions.jsonl").read_bytes() == saved


def test_retry_failed_asks_again_without_duplicating(moa, server, home, tmp_path):
    server.script("*", reply=RIGHT_0)
    server.script("r2", status=500)
    out = tmp_path / "run"
    first = moa("bench", "humaneval", "--mix", "trio", "--limit", "2", "--out", str(out))
    assert first.returncode == 1, first.stderr  # every call of openai:r2 failed
    assert sum(r["status"] != "ok" for r in read_jsonl(out / "predictions.jsonl")) == 2
    server.script("r2", reply=RIGHT_0)
    asked = len(server.requests("r2"))
    again = moa("bench", "humaneval", "--mix", "trio", "--limit", "2", "--out", str(out), "--resume", "--retry-failed")
    assert again.returncode == 0, again.stderr
    records = read_jsonl(out / "predictions.jsonl")
    assert len(records) == len({(r["generator"], r["item"]) for r in records}) == 6
    assert all(r["status"] == "ok" for r in records)
    assert len(server.requests("r2")) - asked == 2  # only r2's two failed answers were asked again
    grades = keys_of(out / "grades.jsonl")
    assert len(grades) == len(set(grades)) == 6
    report = json.loads((out / "report.json").read_text())
    assert {row["name"]: row["quality"] for row in report["systems"]}["openai:r2"] == 0.5


def test_out_never_overwrites_a_file_the_run_did_not_create(moa, server, home, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "report.md").write_text("my own notes")
    result = moa("bench", "chat", "--mix", "trio", "--limit", "1", "--out", str(out))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert (out / "report.md").read_text() == "my own notes"
    assert sorted(p.name for p in out.iterdir()) == ["report.md"] and server.requests() == []


def test_a_jsonl_suite_with_a_byte_order_mark_is_read(moa, server, home, tmp_path):
    suite = tmp_path / "bom.jsonl"
    suite.write_bytes("\ufeff".encode() + b'{"instruction": "first"}\n{"instruction": "second"}\n')
    out = tmp_path / "run"
    result = moa("bench", str(suite), "--mix", "trio", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert {r["instruction"] for r in read_jsonl(out / "predictions.jsonl")} == {"first", "second"}


def test_concurrency_1_means_one_call_in_flight(moa, server, home, tmp_path):
    server.script("*", reply="answer", delay=0.1)
    out = tmp_path / "run"
    result = moa("bench", "chat", "--mix", "trio", "--limit", "2", "--concurrency", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    spans = sorted((r["received"], r["first_chunk"]) for r in server.requests())
    assert len(spans) == 2 * 5
    # Never two at once: each call reaches the server only after the one before it has started
    # answering (0.1 s after it arrived). Two in flight would both arrive before either answers.
    # (Not its "finished": the server stamps that after its last byte has left, by which time a
    # fast client may be on its next call.)
    assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:]))


# ------------------------------------------------------------------------------------ judges


def _judged(moa, server, tmp_path, judge: dict, *extra):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"instruction": f"question {i}"}) + "\n" for i in range(3)))
    server.script("agg", reply="MIXANSWER")
    server.script("r1", reply="ONEANSWER")
    server.script("r2", reply="TWOANSWER")
    server.script("judge", **judge)
    out = tmp_path / "run"
    result = moa("bench", str(prompts), "--mix", "trio", "--judge", "openai:judge", "--out", str(out), *extra)
    report = json.loads((out / "report.json").read_text())
    return result, {j["baseline"]: j for j in report["judged"]}, out


@pytest.mark.parametrize("judge", [{"reply": "Both answers have merit; I cannot choose."}, {"reply": ""},
                                   {"status": 500}], ids=["garbage", "empty", "failing"])
def test_a_judge_without_verdicts_is_an_error_not_a_tie(moa, server, home, tmp_path, judge):
    result, judged, out = _judged(moa, server, tmp_path, judge)
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("moa: error:") == 1
    for row in judged.values():
        assert (row["won"], row["lost"], row["tied"], row["no_verdict"], row["win_rate"]) == (0, 0, 0, 3, None)
    assert {j["result"] for j in read_jsonl(out / "judgements.jsonl")} == {"none"}
    assert "50.0%" not in result.stdout + (out / "report.md").read_text()


def test_a_verbose_judge_is_read_from_its_verdict(moa, server, home, tmp_path):
    # It reasons about both answers first, naming A before deciding for B (the baseline), and
    # the other way round in the swapped order: the baseline wins every item.
    judge = {"replies": {
        "[Answer A]\nMIXANSWER": "A is shorter, but B is more accurate and complete. My verdict: [[B]]",
        "[Answer B]\nMIXANSWER": "B is shorter; A is more accurate, so [[A]] it is.",
    }}
    result, judged, _ = _judged(moa, server, tmp_path, judge)
    assert result.returncode == 0, result.stderr
    for row in judged.values():
        assert (row["won"], row["lost"], row["no_verdict"], row["win_rate"], row["consistency"]) == (0, 3, 0, 0.0, 1.0)


def test_no_verdict_is_counted_per_system_and_position_bias_is_measured(moa, server, home, tmp_path):
    # Against r1 the judge always answers [[A]] (pure position bias); against r2 it writes no verdict
    # when the mix comes second.
    judge = {"replies": {"ONEANSWER": "[[A]]", "[Answer A]\nMIXANSWER\n\n[Answer B]\nTWOANSWER": "[[A]]",
                         "[Answer A]\nTWOANSWER": "hmm"}}
    result, judged, _ = _judged(moa, server, tmp_path, judge)
    assert result.returncode == 0, result.stderr
    one, two = judged["openai:r1"], judged["openai:r2"]
    assert (one["tied"], one["no_verdict"], one["win_rate"], one["consistency"]) == (3, 0, 0.5, 0.0)
    assert (two["items"], two["no_verdict"], two["win_rate"], two["consistency"]) == (0, 3, None, None)


# ------------------------------------------------------------------------------- exit codes


def test_a_rejected_key_exits_3(moa, server, home, tmp_path):
    server.script("*", status=401, message="Invalid API key")
    result = moa("bench", "chat", "--mix", "trio", "--limit", "1", "--out", str(tmp_path / "run"))
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr


def test_every_call_of_a_system_failing_exits_1_with_one_line(moa, server, home, tmp_path):
    server.script("*", reply="fine")
    server.script("r1", status=500)
    result = moa("bench", "chat", "--mix", "trio", "--limit", "2", "--out", str(tmp_path / "run"))
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("moa: error:") == 1 and "openai:r1" in result.stderr


def _full_disk(limit: int):
    """A child whose files cannot grow past `limit` bytes: writes then fail as on a full disk."""
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill, as ENOSPC would be
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_a_full_disk_exits_5_with_one_line_never_a_hang(moa_env, server, home, tmp_path):
    server.script("*", reply=RIGHT_0 + " " + "x" * 3000)
    out = tmp_path / "run"
    started = subprocess.run(command("humaneval", "--mix", "trio", "--limit", "3", "--out", str(out)),
                             env=moa_env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                             preexec_fn=_full_disk(6000))
    assert started.returncode == 5, started.stderr
    said = [line for line in started.stderr.splitlines() if line.startswith("moa:")]
    assert len(said) == 1 and said[0].startswith("moa: error:"), started.stderr
    assert "Traceback" not in started.stderr and "internal error" not in started.stderr
