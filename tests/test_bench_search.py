"""`moa bench humaneval --search POOL` end to end against the fake server.

A pool of three models whose right and wrong answers per HumanEval item are known: a is right on
items 0 and 1, b on item 2, c on none alone; but c, aggregating, copies any right answer it is
shown. So every configuration's pass@1 is known exactly, and so are the leaderboard, the
Pareto front and the recommendation.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import tomllib

from conftest import MOA
from test_bench import RIGHT, WRONG

KEYS = list(RIGHT)  # HumanEval/0..3, in order
# A piece found only in each right answer: what c looks for among the proposals.
MARKS = dict(zip(KEYS, ["enumerate(numbers)", "It tracks the depth.", "number % 1.0", "balance += op"]))
CONFIG = """
[pricing."openai:a"]
input = 2.0
output = 2.0

[pricing."openai:b"]
input = 1.0
output = 1.0

[pricing."openai:c"]
input = 3.0
output = 3.0
"""
POOL = "openai:a,openai:b,openai:c"
AB_C = "openai:a,openai:b → openai:c"


def script_pool(server, delay: float = 0.0):
    right = {"a": {KEYS[0], KEYS[1]}, "b": {KEYS[2]}, "c": set()}
    for model, keys in right.items():
        # Wrong answers differ by model, so no two proposal sets read the same by chance.
        wrong = {k: WRONG[k].replace("return None", f"return None  # {model}") for k in KEYS}
        server.script(model, delay=delay, replies={k: (RIGHT if k in keys else wrong)[k] for k in KEYS})
    server.behaviours["c"].system_replies = {MARKS[k]: RIGHT[k] for k in KEYS}


def expected_quality() -> dict[str, float]:
    quality = {"openai:a": 0.5, "openai:b": 0.25, "openai:c": 0.0}
    sets = {("a", "b"): 0.75, ("a", "c"): 0.5, ("b", "c"): 0.25, ("a", "b", "c"): 0.75}
    for members, with_c in sets.items():
        names = ",".join(f"openai:{m}" for m in members)
        quality[f"{names} → openai:a"] = 0.5
        quality[f"{names} → openai:b"] = 0.25
        quality[f"{names} → openai:c"] = with_c
    return quality


def round_one(requests) -> list[dict]:
    return [r for r in requests if not any(m["role"] == "system" for m in r["body"]["messages"])]


def run_search(moa, out, *extra):
    return moa("bench", "humaneval", "--search", POOL, "--limit", "4", "--out", str(out), *extra, timeout=120)


def test_search_ranks_every_configuration_and_shares_round_one_answers(moa, server, home, tmp_path):
    script_pool(server)
    out = tmp_path / "search"
    result = run_search(moa, out, "--concurrency", "4")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads((out / "search.json").read_text())
    board = report["leaderboard"]
    assert report["configurations"] == 15 and len(board) == 15
    assert {row["name"]: row["quality"] for row in board} == expected_quality()
    # Ranked by quality, then cost per item (every model is priced).
    assert report["cost_axis"] == "cost_per_item"
    keys = [(-row["quality"], row["cost_per_item"]) for row in board]
    assert keys == sorted(keys)
    assert board[0]["name"] == AB_C  # cheaper than a,b,c → c, which reads one answer more
    assert [row["rank"] for row in board] == list(range(1, 16))
    assert all(row["items"] == 4 and row["errors"] == 0 for row in board)
    # A configuration's cost is its own, as if it ran alone: all its calls, shared ones too.
    by_name = {row["name"]: row for row in board}
    assert by_name[AB_C]["cost_per_item"] > by_name["openai:a"]["cost_per_item"] + by_name["openai:b"]["cost_per_item"]
    low, high = by_name[AB_C]["ci95"]
    assert low == 0.25 and high == 1.0
    # The recommendation: the best, and the cheapest whose quality is within its CI.
    assert report["recommendation"] == {"best": AB_C, "cheapest_within_ci": "openai:b", "ci_floor": 0.25}
    front = {row["name"] for row in board if row["pareto_cost"]}
    cheapest = min(board, key=lambda r: r["cost_per_item"])
    assert {AB_C, "openai:a", "openai:b"} <= front
    assert cheapest["name"] in front
    for row in board:  # nothing on the front is beaten on both axes; everything off it is
        beaten = any(o["quality"] >= row["quality"] and o["cost_per_item"] <= row["cost_per_item"]
                     and (o["quality"], o["cost_per_item"]) != (row["quality"], row["cost_per_item"]) for o in board)
        assert beaten == (row["name"] not in front)
    assert any(row["pareto_latency"] for row in board)
    # Shared answers: each (model, item) round-1 answer was asked once, in all 15 configurations.
    for model in "abc":
        asked = [r["body"]["messages"][-1]["content"] for r in round_one(server.requests(model))]
        assert len(asked) == 4 and len(set(asked)) == 4
    assert len(server.requests()) == 3 * 4 + 12 * 4  # round 1 once, then one aggregation per configuration
    calls = report["calls"]
    assert (calls["made"], calls["without_sharing"]) == (60, 4 * (3 + 3 * 3 * 3 + 3 * 4))
    assert calls["asked_this_run"] == 60
    for name in ("search.md", "search_quality_cost.png", "search_quality_latency.png"):
        assert (out / name).exists()
    assert (out / "search_quality_cost.png").read_bytes()[:4] == b"\x89PNG"
    assert "configurations" in result.stderr  # the estimate, printed before starting


def test_save_writes_a_mix_that_ask_runs(moa, server, home, tmp_path):
    script_pool(server)
    out = tmp_path / "search"
    assert run_search(moa, out).returncode == 0
    before = len(server.requests())
    # Saving later, from the finished search: every answer is replayed, nothing is asked.
    saved = run_search(moa, out, "--resume", "--save", "found")
    assert saved.returncode == 0, saved.stderr
    assert len(server.requests()) == before
    config = tomllib.loads((home / "config.toml").read_text())
    mix = config["mixes"]["found"]
    assert "source" in mix and str(out) in mix["source"]
    assert [m["model"] for m in mix["layers"][0]] == ["openai:a", "openai:b"]
    assert mix["aggregator"]["model"] == "openai:c"
    assert config["pricing"]["openai:a"] == {"input": 2.0, "output": 2.0}  # the rest of the file is kept
    again = run_search(moa, out, "--resume", "--save", "found")
    assert again.returncode == 2 and "found" in again.stderr  # never replaces a mix
    asked = moa("ask", "--mix", "found", "--no-log", "Complete the following: def truncate_number")
    assert asked.returncode == 0, asked.stderr
    assert RIGHT[KEYS[2]].strip() in asked.stdout
    assert [r["model"] for r in server.requests()[before:]] in (["a", "b", "c"], ["b", "a", "c"])


def test_resume_after_kill_9_asks_nothing_saved_again(moa_env, moa, server, home, tmp_path):
    script_pool(server, delay=0.15)
    out = tmp_path / "search"
    args = [MOA or sys.executable, *([] if MOA else ["-m", "moa_cli"]), "bench", "humaneval", "--search", POOL,
            "--limit", "4", "--concurrency", "2", "--out", str(out)]
    process = subprocess.Popen(args, env=moa_env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    answers = out / "answers.jsonl"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not answers.exists() or len(answers.read_bytes().splitlines()) < 8):
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    time.sleep(0.3)  # let calls the killed run left in flight reach the server's log
    saved = sum(1 for line in answers.read_bytes().splitlines(keepends=True) if line.endswith(b"\n"))
    assert 8 <= saved < 60
    before = len(server.requests())
    for model in "abc":
        server.behaviours[model].delay = 0.0
    resumed = run_search(moa, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    # Exactly what was not saved was asked: nothing saved was asked again, nothing twice.
    assert len(server.requests()) - before == 60 - saved
    report = json.loads((out / "search.json").read_text())
    assert {row["name"]: row["quality"] for row in report["leaderboard"]} == expected_quality()
    assert report["calls"]["made"] == 60


def test_max_cost_stops_before_starting_or_when_spent(moa, server, home, tmp_path):
    script_pool(server)
    refused = run_search(moa, tmp_path / "one", "--max-cost", "0")
    assert refused.returncode == 6 and "--max-cost" in refused.stderr
    assert server.requests() == []
    # The estimate guesses one output token per answer (max_tokens = 1); each really costs $1 a token.
    (home / "config.toml").write_text(CONFIG.replace("output = 2.0", "output = 1000000.0")
                                      + "\n[defaults]\nmax_tokens = 1\n")
    out = tmp_path / "two"
    stopped = run_search(moa, out, "--max-cost", "40", "--concurrency", "1")
    assert stopped.returncode == 6, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert 0 < len(server.requests()) < 60
    report = json.loads((out / "search.json").read_text())
    assert report["stopped"] and report["spent_this_run"] > 40


def test_bad_search_flags_are_one_line(moa, server, home, tmp_path):
    for args in (["--search", "openai:a"], ["--search", POOL, "--proposers", "5"],
                 ["--search", POOL, "--strategies", "nope"], ["--proposers", "2"],
                 ["--search", POOL, "--rounds", "x"]):
        result = moa("bench", "humaneval", "--limit", "1", "--out", str(tmp_path / "x"), *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert server.requests() == []


def test_judged_search_ranks_by_length_controlled_win_rate_and_judges_each_pair_once(moa, server, home, tmp_path):
    topics = [f"topic-{letter}" for letter in "ABCDEF"]
    suite = tmp_path / "topics.jsonl"
    suite.write_text("".join(json.dumps({"id": t, "instruction": f"Tell me about {t}."}) + "\n" for t in topics))
    server.script("a", replies={t: f"GOOD answer from a on {t}" for t in topics})
    server.script("b", replies={t: f"plain answer from b on {t}" for t in topics})
    server.script("c", replies={t: f"plain answer from c on {t}" for t in topics},
                  system_replies={"GOOD": "GOOD answer from c, improved"})
    # The judge prefers a GOOD answer in either position; otherwise it calls a tie.
    server.script("judge", reply="[[C]]", replies={"[Answer A]\nGOOD": "[[A]]", "[Answer B]\nGOOD": "[[B]]"})
    out = tmp_path / "search"
    result = moa("bench", str(suite), "--search", "openai:b,openai:a,openai:c", "--judge", "openai:judge",
                 "--out", str(out), timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "search.json").read_text())
    assert report["baseline"] == "openai:b"
    board = {row["name"]: row for row in report["leaderboard"]}
    good = {name for name, row in board.items() if row["win_rate"] == 1.0}
    assert good == {"openai:a", *(n for n in board if n.endswith("→ openai:a")),
                    *(n for n in board if n.endswith("→ openai:c") and "openai:a" in n.split(" → ")[0])}
    ranked = [row["name"] for row in report["leaderboard"]]
    assert set(ranked[:len(good)]) == good
    others = [board[n]["quality"] for n in board if n not in good]
    assert min(board[n]["quality"] for n in good) > 0.9 > 0.55 > max(others)
    assert all(abs(q - 0.5) < 0.05 for q in others)  # ties with the baseline: about even
    # Per topic, four distinct answers meet the baseline's: three judged in both orders, and the
    # baseline's own answer (a mix aggregated by b) against itself, whose two orders are one request.
    assert len(server.requests("judge")) == (3 * 2 + 1) * len(topics)


def test_a_plain_bench_run_replays_the_searchs_answers(moa, server, home, tmp_path):
    script_pool(server)
    ledger = tmp_path / "shared-answers.jsonl"
    assert run_search(moa, tmp_path / "search", "--answers", str(ledger)).returncode == 0
    before = len(server.requests())
    (home / "config.toml").write_text(CONFIG + '\n[mixes.abc]\nlayers = [["openai:a", "openai:b"]]\n'
                                      'aggregator = "openai:c"\n')
    out = tmp_path / "plain"
    result = moa("bench", "humaneval", "--mix", "abc", "--limit", "4", "--out", str(out), "--answers", str(ledger))
    assert result.returncode == 0, result.stderr
    assert len(server.requests()) == before  # the mix and both its models alone: all answered already
    report = json.loads((out / "report.json").read_text())
    assert {row["name"]: row["quality"] for row in report["systems"]} == {
        "abc": 0.75, "openai:a": 0.5, "openai:b": 0.25}
    assert all(row["latency_mean"] > 0 for row in report["systems"])  # recorded call times, not the replay's


def test_rounds_and_strategies_share_every_later_round_with_the_same_inputs(moa, server, home, tmp_path):
    # Default replies carry a per-call counter: no two calls answer alike by chance.
    out = tmp_path / "search"
    result = moa("bench", "humaneval", "--search", POOL, "--limit", "1", "--out", str(out), "--proposers", "2",
                 "--rounds", "1,2", "--strategies", "synthesize,coding", timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "search.json").read_text())
    names = [row["name"] for row in report["leaderboard"]]
    assert report["configurations"] == 3 + 3 * 3 * 2 * 2
    assert "openai:a,openai:b → openai:c ×2 [coding]" in names
    # Round 1: one call per model. Round 2: one per model of each pair, whatever the aggregator,
    # strategy or round count after it. Then one aggregation per configuration; but a round-2
    # call IS the one-round synthesize aggregation by the same model over the same answers (the
    # same request), so those six are asked once for both.
    assert len(server.requests()) == 3 + 3 * 2 + 36 - 6 == report["calls"]["made"]
    assert report["calls"]["without_sharing"] == 3 + 3 * 3 * 2 * (3 + 5)
    coding = [r for r in server.requests() if "programmers" in json.dumps(r["body"]["messages"])]
    assert len(coding) == 18  # the coding strategy's aggregator prompt, once per configuration that uses it


def test_an_edited_answer_ledger_is_asked_again_not_trusted(moa, server, home, tmp_path):
    script_pool(server)
    ledger = tmp_path / "answers.jsonl"
    assert run_search(moa, tmp_path / "one", "--answers", str(ledger)).returncode == 0
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    broken = [{**records[0], "usage": "lots"}, {**records[1], "output": 7}, *records[2:]]
    ledger.write_text("".join(json.dumps(r) + "\n" for r in broken))
    before = len(server.requests())
    result = run_search(moa, tmp_path / "two", "--answers", str(ledger))
    assert result.returncode == 0, result.stderr
    assert len(server.requests()) - before == 2  # exactly the two broken answers
    bad_name = run_search(moa, tmp_path / "two", "--resume", "--answers", str(ledger), "--save", "x]y")
    assert bad_name.returncode == 2 and "Traceback" not in bad_name.stderr


def test_the_same_request_twice_in_one_turn_is_two_samples(moa, server, home, tmp_path):
    # Self-MoA: one model sampled twice. Default replies carry a per-call counter.
    (home / "config.toml").write_text(CONFIG + '\n[mixes.self]\nlayers = [["openai:a", "openai:a"]]\n'
                                      'aggregator = "openai:c"\n')
    out = tmp_path / "plain"
    result = moa("bench", "humaneval", "--mix", "self", "--limit", "2", "--out", str(out),
                 "--answers", str(tmp_path / "answers.jsonl"))
    assert result.returncode == 0, result.stderr
    # Per item: two samples of a (its solo row is the first one again), one aggregation.
    assert len(server.requests("a")) == 2 * 2 and len(server.requests("c")) == 2
    for request in server.requests("c"):
        system = request["body"]["messages"][0]["content"]
        first, second = system.split("1. ")[1].split("\n\n2. ")
        assert first.strip() != second.strip()
