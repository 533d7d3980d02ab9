"""`moa bench` end to end: the real command against the fake server, with scripted answers that
are known right or wrong for given HumanEval problems, so every reported number is exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import moa_command

# HumanEval/0..3: right and wrong answers, in the shapes models use.
RIGHT = {
    "def has_close_elements": "```python\nfrom typing import List\n\ndef has_close_elements(numbers: List[float], "
                              "threshold: float) -> bool:\n    return any(abs(a - b) < threshold for i, a in "
                              "enumerate(numbers) for b in numbers[i + 1:])\n```",
    "def separate_paren_groups": "Here it is:\n\ndef separate_paren_groups(paren_string):\n    groups, depth, cur "
                                 "= [], 0, ''\n    for ch in paren_string:\n        if ch == '(':\n            depth "
                                 "+= 1\n            cur += ch\n        elif ch == ')':\n            depth -= 1\n     "
                                 "       cur += ch\n            if depth == 0:\n                groups.append(cur)\n"
                                 "                cur = ''\n    return groups\n\nIt tracks the depth.",
    "def truncate_number": "    return number % 1.0",
    "def below_zero": "```\nbalance = 0\nfor op in operations:\n    balance += op\n    if balance < 0:\n"
                      "        return True\nreturn False\n```",
}
WRONG = {key: "```python\n" + key + "(*args):\n    return None\n```" for key in RIGHT}
CONFIG = """
[mixes.trio]
layers = [["openai:r1", "openai:r2"]]
aggregator = "openai:agg"
"""


def script_humaneval(server, agg_right, r1_right, r2_right=()):
    """Each model answers HumanEval/0..3 right for the functions named, wrong for the others."""
    for model, right in (("agg", agg_right), ("r1", r1_right), ("r2", r2_right)):
        server.script(model, replies={k: (RIGHT if k in right else WRONG)[k] for k in RIGHT})


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_humaneval_report_numbers_are_exact(moa, server, home, tmp_path):
    script_humaneval(server, agg_right=RIGHT.keys(), r1_right={"def has_close_elements", "def truncate_number"},
                     r2_right={"def below_zero"})
    out = tmp_path / "run"
    result = moa("bench", "humaneval", "--mix", "trio", "--limit", "4", "--out", str(out), "--concurrency", "3")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads((out / "report.json").read_text())
    quality = {row["name"]: row["quality"] for row in report["systems"]}
    assert quality == {"trio": 1.0, "openai:r1": 0.5, "openai:r2": 0.25}
    assert [row["role"] for row in report["systems"]] == ["mix", "reference", "reference"]
    assert all(row["items"] == 4 and row["errors"] == 0 for row in report["systems"])
    comparison = report["comparison"]
    assert (comparison["baseline"], comparison["won"], comparison["lost"], comparison["tied"]) == ("openai:r1", 2, 0, 2)
    assert comparison["difference"] == 0.5
    low, high = comparison["ci95"]
    assert 0 <= low <= 0.5 <= high <= 1.0
    # The predictions: AlpacaEval's fields, every reference answer for the mix, once each.
    records = read_jsonl(out / "predictions.jsonl")
    assert len(records) == 12
    assert len({(r["generator"], r["item"]) for r in records}) == 12
    mix_record = next(r for r in records if r["generator"] == "trio" and r["item"] == "HumanEval/2")
    assert mix_record["output"] == RIGHT["def truncate_number"]
    assert {"instruction", "output", "generator", "latency", "usage", "cost"} <= mix_record.keys()
    assert [ref["model"] for ref in mix_record["references"]] == ["openai:r1", "openai:r2"]
    assert mix_record["references"][0]["output"] == RIGHT["def truncate_number"]
    # Each model alone was asked each item once; the aggregator only as part of the mix.
    assert len(server.requests("r1")) == 8 and len(server.requests("agg")) == 4
    assert "pass@1" in (out / "report.md").read_text()
    assert (out / "quality_cost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "trio" in result.stdout and "100.0%" in result.stdout


def test_extra_baseline_is_run_alone_and_compared(moa, server, home, tmp_path):
    script_humaneval(server, agg_right={"def has_close_elements"}, r1_right=(), r2_right=())
    server.script("solo", replies={k: RIGHT[k] for k in RIGHT})
    out = tmp_path / "run"
    result = moa("bench", "humaneval", "--mix", "trio", "--limit", "4", "--out", str(out), "--baseline", "openai:solo")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert {row["name"]: row["quality"] for row in report["systems"]}["openai:solo"] == 1.0
    assert report["comparison"]["baseline"] == "openai:solo"
    assert (report["comparison"]["won"], report["comparison"]["lost"]) == (0, 3)
    assert all(r["body"]["messages"][-1]["content"].startswith("Complete the following")
               for r in server.requests("solo"))


def test_resume_after_kill_9_neither_redoes_nor_duplicates(moa_env, server, home, tmp_path):
    # Slow answers, so the run is surely mid-way when it is killed.
    for model in ("r1", "r2", "agg"):
        server.script(model, reply="```python\nreturn 1\n```", delay=0.3)
    out = tmp_path / "run"
    args = [*moa_command(), "bench", "humaneval", "--mix", "trio",
            "--limit", "6", "--concurrency", "2", "--out", str(out)]
    process = subprocess.Popen(args, env=moa_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    predictions = out / "predictions.jsonl"
    try:
        deadline = time.monotonic() + 60  # bounded: the run writes its first answers within seconds
        while time.monotonic() < deadline and (not predictions.exists() or len(predictions.read_bytes().splitlines()) < 4):
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    before = read_jsonl(predictions)
    assert 4 <= len(before) < 18, "the kill should land mid-run"
    with predictions.open("a") as handle:
        handle.write('{"instruction": "torn wri')  # what a crash mid-write leaves behind
    asked_before = len(server.requests())
    done = {(r["generator"], r["item"]) for r in before}

    resumed = subprocess.run([*args, "--resume"], env=moa_env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    after = read_jsonl(predictions)
    keys = [(r["generator"], r["item"]) for r in after]
    assert len(keys) == len(set(keys)) == 18
    assert after[: len(before)] == before  # what was saved is kept as it was
    # The resumed run asked only for what was missing: per model, exactly the calls those
    # items need (a reference model answers both alone and inside the mix).
    missing = {key for key in keys if key not in done}
    new_requests = server.requests()[asked_before:]
    mix_items = sum(1 for generator, _ in missing if generator == "trio")
    assert len([r for r in new_requests if r["model"] == "agg"]) == mix_items
    for model in ("r1", "r2"):
        alone = sum(1 for generator, _ in missing if generator == f"openai:{model}")
        assert len([r for r in new_requests if r["model"] == model]) == alone + mix_items
    report = json.loads((out / "report.json").read_text())
    assert all(row["items"] == 6 for row in report["systems"])
    # A run directory is never overwritten.
    again = subprocess.run(args, env=moa_env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr


def test_judge_asks_twice_with_positions_swapped_and_needs_both_to_agree(moa, server, home, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"instruction": f"question {i}"}) + "\n" for i in range(3)))
    server.script("agg", reply="MIXANSWER")
    server.script("r1", reply="ONEANSWER")
    server.script("r2", reply="TWOANSWER")
    # The judge prefers the mix over r1 in either position; against r2 it always says "A".
    server.script("judge", replies={
        "[Answer A]\nMIXANSWER\n\n[Answer B]\nONEANSWER": "A is better. [[A]]",
        "[Answer A]\nONEANSWER\n\n[Answer B]\nMIXANSWER": "[[B]]",
    }, reply="[[A]]")
    out = tmp_path / "run"
    result = moa("bench", str(prompts), "--mix", "trio", "--judge", "openai:judge", "--out", str(out))
    assert result.returncode == 0, result.stderr
    asked = [r["body"]["messages"][-1]["content"] for r in server.requests("judge")]
    assert len(asked) == 3 * 2 * 2  # items x baselines x both orders
    for i in range(3):
        for other in ("ONEANSWER", "TWOANSWER"):
            pair = [q for q in asked if f"question {i}\n" in q and other in q]
            assert len(pair) == 2
            assert {q.index("MIXANSWER") < q.index(other) for q in pair} == {True, False}
    judged = {j["baseline"]: j for j in json.loads((out / "report.json").read_text())["judged"]}
    assert (judged["openai:r1"]["won"], judged["openai:r1"]["tied"], judged["openai:r1"]["win_rate"]) == (3, 0, 1.0)
    assert (judged["openai:r2"]["won"], judged["openai:r2"]["tied"], judged["openai:r2"]["win_rate"]) == (0, 3, 0.5)
    assert "length" in (out / "report.md").read_text()
    for record in read_jsonl(out / "judgements.jsonl"):
        assert record["result"] == ("win" if record["baseline"] == "openai:r1" else "tie")


def test_chat_suite_escapes_answers_on_the_terminal(moa, server, home, tmp_path):
    server.script("*", reply="evil \x1b]52;c;aGk=\x07 answer")
    out = tmp_path / "run"
    result = moa("bench", "chat", "--mix", "trio", "--limit", "2", "--out", str(out), "--baseline", "openai:x")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x1b]52" not in result.stderr
    records = read_jsonl(out / "predictions.jsonl")
    assert len(records) == 2 * 4 and records[0]["output"].startswith("evil \x1b]52")
    report = json.loads((out / "report.json").read_text())
    assert report["systems"][0]["quality"] is None and "--judge" in (out / "report.md").read_text()


def test_bad_input_is_one_line(moa, server, home, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "no instruction field"}\n')
    for args in (["nosuchsuite"], [str(bad)], ["humaneval", "--judge", "openai:j"], ["chat", "--concurrency", "0"],
                 ["chat", "--mix", "nosuchmix"]):
        result = moa("bench", *args, "--mix" if "--mix" not in args else "--limit", "trio" if "--mix" not in args else "1")
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("moa: error:"), result.stderr


def test_sandbox_refuses_a_write_outside_its_directory(moa, server, home, tmp_path):
    outside = tmp_path / "outside.txt"
    writer = (f"```python\ndef has_close_elements(numbers, threshold):\n    open({str(outside)!r}, 'w').write('x')\n"
              f"    return False\n```")
    server.script("*", replies={"def has_close_elements": writer})
    out = tmp_path / "run"
    result = moa("bench", "humaneval", "--mix", "trio", "--limit", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert not outside.exists()
    grades = read_jsonl(out / "grades.jsonl")
    assert len(grades) == 3
    # Under bwrap the host's path does not exist (FileNotFoundError); behind the guard it is refused.
    assert all(g["status"] == "failed" and ("FileNotFoundError" in g["detail"] or "PermissionError" in g["detail"])
               for g in grades)


def test_sandbox_kills_an_infinite_loop_and_contains_destructive_calls(tmp_path):
    import asyncio

    from moa_cli.bench.sandbox import run_program

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    async def run_all():
        return await asyncio.wait_for(asyncio.gather(
            run_program("while True:\n    pass\n", time_limit=1.0),
            run_program(f"import os\nos.remove({str(victim)!r})\n"),
            run_program("import shutil\nshutil.rmtree('/')\n"),
            run_program("import subprocess\nsubprocess.run(['true'])\n"),
            run_program("open('scratch.txt', 'w').write('inside is fine')\nassert open('scratch.txt').read()\n"),
        ), 60)

    runs = asyncio.run(run_all())
    loop, remove, rmtree, spawn, inside = runs
    assert loop.status == "timeout"
    assert victim.read_text() == "keep me"
    for run in (remove, rmtree):
        assert run.status == "failed"
    assert spawn.passed == (spawn.isolation == "bwrap")  # a subprocess is harmless inside bwrap's namespaces
    assert inside.passed


def test_failed_answers_are_counted_and_no_secret_is_written(moa, server, home, tmp_path):
    import secrets

    key = secrets.token_hex(20)  # no known prefix: it must be hidden as a key, not by its shape
    server.script("r2", status=500)
    server.script("agg", replies={"def truncate_number": RIGHT["def truncate_number"]})
    out = tmp_path / "run"
    result = moa("bench", "humaneval", "--mix", "trio", "--limit", "3", "--out", str(out), env={"OPENAI_API_KEY": key})
    assert result.returncode == 1, result.stderr  # every call of openai:r2 failed
    rows = {row["name"]: row for row in json.loads((out / "report.json").read_text())["systems"]}
    assert rows["openai:r2"]["errors"] == 3 and rows["openai:r2"]["quality"] == 0.0
    assert rows["trio"]["errors"] == 0 and rows["trio"]["quality"] == round(1 / 3, 4)
    failed = [r for r in read_jsonl(out / "predictions.jsonl") if r["generator"] == "openai:r2"]
    assert all(r["status"] == "failed" and r["failures"] == [{"model": "openai:r2", "kind": "http", "status": 500}]
               for r in failed)
    assert "3 answers failed" in result.stderr
    for path in out.iterdir():
        assert key not in path.read_bytes().decode(errors="replace"), path
    assert key not in result.stdout + result.stderr


def test_a_missing_key_stops_the_run_before_anything_is_written(moa, server, home, tmp_path):
    out = tmp_path / "run"
    result = moa("bench", "chat", "--mix", "trio", "--baseline", "together:some-model", "--out", str(out),
                 env={"TOGETHER_API_KEY": None})
    assert result.returncode == 3, result.stderr
    assert result.stderr.startswith("moa: error:") and "Traceback" not in result.stderr
    assert not out.exists() and server.requests() == []


def test_every_canonical_humaneval_solution_passes_in_the_sandbox():
    """The grader itself is right: extraction (a bare body) plus the sandbox pass all 164
    reference solutions, including those whose tests import `random`."""
    import asyncio
    import gzip

    from moa_cli.bench.sandbox import grade, sandboxes
    from moa_cli.bench.suites import humaneval_data_file, humaneval_items

    with gzip.open(humaneval_data_file(), "rt") as handle:
        solutions = {p["task_id"]: p["canonical_solution"] for p in map(json.loads, handle)}

    async def grade_all():
        limit = asyncio.Semaphore(os.cpu_count() or 1)

        async def one(item):
            async with limit:
                return item.id, await grade(item.problem, solutions[item.id])

        async with sandboxes(os.cpu_count() or 1):  # warm sandboxes, as moa bench grades
            return await asyncio.wait_for(asyncio.gather(*(one(item) for item in humaneval_items())), 300)

    failed = {task: run.detail for task, run in asyncio.run(grade_all()) if not run.passed}
    assert failed == {}
