"""Resilient turns against the fake server with injected faults.

Policy (retries, cut-offs, dropped streams, fallback, concurrency) runs in-process: the turn
`moa ask -r m1,m2,m3 -a agg --json` runs, through TurnService and the real SDK provider, and each
test checks its JSON (`Failure.kind`, status), its outcome and what the server received (how
many requests, their bodies, whether the client hung up on a cut call). The real `moa ask` runs
where the frontend is the point: exit codes, the one error line, plain output, Ctrl-C, sessions.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess

import pytest

from conftest import spawn_moa, wait_for
from inprocess import run_turn
from moa_cli import engine as engine_module
from moa_cli.config import Overrides
from moa_cli.engine import Engine
from moa_cli.events import CallFinished, Notice
from moa_cli.service import TurnOutcome
from moa_cli.providers.pool import ProviderPool
from moa_cli.config.schema import Mix, ModelSettings, RunOptions
from moa_cli.providers.openai_compat import OpenAICompatProvider

MIX = ["-r", "openai:m1,openai:m2,openai:m3", "-a", "openai:agg"]
# Warnings that would mean a cancelled call leaked a task, a socket or a client.
LEAKS = ("Traceback", "Task was destroyed", "Unclosed", "ResourceWarning", "never awaited", "Task exception")
WARNINGS_ON = {"PYTHONWARNINGS": "always::ResourceWarning"}


def ask_turn(server, config: dict | None = None, events: list | None = None, **options) -> tuple[TurnOutcome, dict]:
    """The turn `moa ask *MIX --json q` runs, in-process with `options` as its flags (retries=0,
    ...) and `config` as its config file: the outcome and the turn's JSON. `events`, when given,
    collects what the listeners heard."""
    overrides = Overrides(references=("openai:m1", "openai:m2", "openai:m3"), aggregator="openai:agg", **options)
    outcome = run_turn(server, overrides, config, listeners=() if events is None else (events.append,))
    return outcome, outcome.turn.to_dict()


def by_model(data) -> dict:
    return {a["model"]: a for a in data["rounds"][0]}


def outcomes(server, model):
    return [r.get("outcome") for r in server.requests(model)]


def agg_system(server) -> str:
    return server.requests("agg")[0]["body"]["messages"][0]["content"]


# ------------------------------------------------------------------ retries


def test_429_with_retry_after_is_retried_after_that_long_then_succeeds(server):
    server.script("m1", errors=[{"status": 429, "retry_after": 0.3}])
    out, data = ask_turn(server)
    assert out.ok
    assert outcomes(server, "m1") == [429, 200]
    first, second = server.requests("m1")
    assert second["received"] > first["received"]
    assert second["body"] == first["body"]
    assert by_model(data)["openai:m1"]["status"] == "ok"
    assert "m1 answer 2: q" in agg_system(server)


def test_500_then_success(server):
    server.script("m2", errors=[{"status": 500}])
    out, data = ask_turn(server)
    assert out.ok
    assert outcomes(server, "m2") == [500, 200]
    assert by_model(data)["openai:m2"]["text"] == "m2 answer 2: q"


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_permanent_500_fails_after_exactly_the_configured_tries_and_names_the_call(server, retries):
    server.script("m1", status=500)
    out, data = ask_turn(server, retries=retries)
    assert out.ok  # one reference down: the turn goes on without it
    assert outcomes(server, "m1") == [500] * (retries + 1)
    m1 = by_model(data)["openai:m1"]
    assert m1["status"] == "failed"
    assert m1["failure"] == {"kind": "http", "status": 500, "retryable": True}
    assert m1["error"].count("openai:m1") == 1  # the call is named once
    assert "m1 answer" not in agg_system(server)


def test_retries_from_the_config_file_are_honoured(server):
    server.script("m1", status=503)
    out, data = ask_turn(server, config={"defaults": {"retries": 0}})
    assert out.ok
    assert outcomes(server, "m1") == [503]
    assert by_model(data)["openai:m1"]["failure"] == {"kind": "http", "status": 503, "retryable": True}


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_never_retried(server, status):
    server.script("m1", status=status)
    out, data = ask_turn(server, retries=3)
    assert out.ok
    assert outcomes(server, "m1") == [status]
    m1 = by_model(data)["openai:m1"]
    assert m1["status"] == "failed"
    assert m1["failure"] == {"kind": "http", "status": status, "retryable": False}


def test_401_everywhere_fails_the_turn_with_the_key_exit_code(moa, server):
    for model in ("m1", "m2", "m3"):
        server.script(model, status=401)
    out = moa("ask", *MIX, "q")
    assert out.returncode == 3
    assert [len(server.requests(m)) for m in ("m1", "m2", "m3", "agg")] == [1, 1, 1, 0]
    errors = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "openai:m1: HTTP 401" in errors[0]
    assert "openai:m1: openai:m1" not in errors[0]  # each call named once


# ------------------------------------------------------------------ stragglers and cancellation


def test_a_hung_model_is_cut_by_the_deadline_and_its_stream_closed(server):
    server.script("m3", hang=True)
    events = []
    out, data = ask_turn(server, events=events, min_proposers=2, proposer_deadline=1.0)
    assert out.ok
    refs = by_model(data)
    assert [refs[f"openai:m{i}"]["status"] for i in (1, 2, 3)] == ["ok", "ok", "cut"]
    assert data["final"] == "agg answer 1: q"
    assert "m3" not in agg_system(server)
    assert refs["openai:m3"]["failure"]["kind"] == "cut"
    # The cut reaches the listeners once (issue 11): one result says cut, and no notice repeats it.
    assert [e.call.label for e in events if isinstance(e, CallFinished) and e.result.status == "cut"] == ["openai:m3"]
    assert not [e for e in events if isinstance(e, Notice) and "openai:m3" in e.message]
    assert wait_for(lambda: "client_closed" in server.requests("m3")[0])
    assert server.requests("m3")[0]["client_closed"] is True
    # The aggregator was asked only after the cut call was gone.
    assert server.requests("agg")[0]["received"] >= server.requests("m3")[0]["received"]


def test_by_default_a_silent_model_is_cut_but_a_slow_streaming_one_is_not(server, monkeypatch):
    """No fixed deadline: once half the round has answered, a call silent for the stall window is
    cut. Run in-process so the window can be made short; the provider is the real SDK one."""
    monkeypatch.setattr(engine_module, "STALL_MIN", 0.6)
    server.script("hung", hang=True)
    server.script("slow", chunk_delay=0.25, reply="one two three four five six seven eight nine ten eleven twelve")
    # Half the round (fast1, fast2) answers at once, so the window is STALL_MIN: "slow" streams for
    # longer than that, with gaps shorter than it; "hung" sends nothing at all.
    layer = tuple(ModelSettings("fake", m) for m in ("fast1", "fast2", "slow", "hung"))
    mix = Mix("t", (layer,), ModelSettings("fake", "agg"))

    async def main():
        pool = ProviderPool(lambda name: OpenAICompatProvider(name, "sk-test", server.v1, {}))
        try:
            return await Engine(pool, RunOptions()).run_turn(mix, [{"role": "user", "content": "q"}])
        finally:
            await pool.aclose()

    turn = asyncio.run(main())
    assert RunOptions().proposer_deadline is None  # the default is this rule, not a fixed deadline
    assert [r.status for r in turn.rounds[0]] == ["ok", "ok", "ok", "cut"]
    slow = turn.rounds[0][2]
    assert slow.text == "one two three four five six seven eight nine ten eleven twelve"
    assert slow.finished > turn.rounds[0][3].finished  # it outlived the cut: streaming saved it
    assert wait_for(lambda: "client_closed" in server.requests("hung")[0])
    assert server.requests("hung")[0]["client_closed"] is True
    assert "one two three four five six seven eight nine ten eleven twelve" in agg_system(server)
    assert "hung" not in agg_system(server)


def test_ctrl_c_closes_every_stream_and_leaks_nothing(moa_env, server, tmp_path):
    server.script("m1", hang=True)
    server.script("m2", delay=30)
    server.script("m3", chunk_delay=5, reply="a b c d")
    proc = spawn_moa("ask", *MIX, "q", env={**moa_env, **WARNINGS_ON}, cwd=tmp_path, stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: len(server.requests()) == 3, timeout=30)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    stderr = stderr.decode()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "moa: error: interrupted"
    assert not any(leak in stderr for leak in LEAKS), stderr
    assert wait_for(lambda: all("client_closed" in r for r in server.requests()))
    assert [r["client_closed"] for r in server.requests()] == [True, True, True]
    assert server.requests("agg") == []


# ------------------------------------------------------------------ dropped streams


def test_a_stream_dropped_mid_answer_is_retried_from_scratch(server):
    reply = "alpha beta gamma delta epsilon"
    server.script("m2", reply=reply, errors=[{"drop_after": 2}])
    server.script("agg", reply="final words here", errors=[{"drop_after": 1}])
    out, data = ask_turn(server)
    assert out.ok
    assert outcomes(server, "m2") == ["dropped", 200]
    assert outcomes(server, "agg") == ["dropped", 200]
    assert by_model(data)["openai:m2"]["text"] == reply  # not "alpha beta" + the whole reply
    assert data["final"] == "final words here"
    assert "alpha beta gamma delta epsilon" in agg_system(server)


def test_a_stream_that_always_drops_fails_its_reference(server):
    server.script("m3", reply="one two three four", drop_after=2)
    out, data = ask_turn(server, retries=1)
    assert out.ok
    assert outcomes(server, "m3") == ["dropped", "dropped"]
    m3 = by_model(data)["openai:m3"]
    assert m3["status"] == "failed"
    assert m3["failure"] == {"kind": "connection", "status": None, "retryable": True}
    assert "one two" not in agg_system(server)  # a fragment never reaches the aggregator


def test_a_dropped_aggregator_stream_in_plain_mode_prints_the_whole_answer(moa, server):
    server.script("agg", reply="the final answer", errors=[{"drop_after": 1}])
    out = moa("ask", *MIX, "q")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "the final answer"
    assert outcomes(server, "agg") == ["dropped", 200]


# ------------------------------------------------------------------ aggregator failure


def test_aggregator_failure_falls_back_to_a_reference_answer(server):
    server.script("agg", status=500)
    out, data = ask_turn(server, retries=1)
    assert out.ok
    assert outcomes(server, "agg") == [500, 500]
    assert data["fallback"] in ("openai:m1", "openai:m2", "openai:m3")
    assert data["final"] == by_model(data)[data["fallback"]]["text"]
    assert data["aggregator"]["status"] == "failed"
    assert data["aggregator"]["failure"] == {"kind": "http", "status": 500, "retryable": True}


def test_plain_ask_prints_the_fallback_answer(moa, server):
    server.script("agg", status=500)
    plain = moa("ask", *MIX, "--retries", "0", "q")
    assert plain.returncode == 0 and plain.stdout.strip().startswith("m")  # a reference's answer
    assert not any(leak in plain.stderr for leak in LEAKS), plain.stderr


def test_aggregator_failure_without_fallback_exits_1_and_names_the_call(moa, server):
    server.script("agg", status=502)
    out = moa("ask", *MIX, "--no-fallback", "--retries", "1", "q", env=WARNINGS_ON)
    assert out.returncode == 1
    assert out.stdout == ""
    errors = [line for line in out.stderr.splitlines() if "error:" in line]
    assert errors == ["moa: error: aggregator openai:agg failed: HTTP 502 (injected 502)"]
    assert outcomes(server, "agg") == [502, 502]
    assert [len(server.requests(m)) for m in ("m1", "m2", "m3")] == [1, 1, 1]


# ------------------------------------------------------------------ context window


def write_config(moa_env, text):
    home = moa_env["MOA_HOME"]
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, "config.toml"), "w") as handle:
        handle.write(text)


TINY = """
[mixes.tiny]
layers = [["openai:m1", "openai:m2"]]
aggregator = "openai:agg"
context_window = 1024
"""


def test_an_oversize_history_loses_its_oldest_turns_with_one_warning(moa, server, moa_env):
    write_config(moa_env, TINY)
    long_answer = " ".join(["word"] * 300)  # ~500 tokens by moa's estimate; the budget is ~736
    server.script("agg", reply=long_answer)
    for question in ("first question", "second question"):
        out = moa("ask", "-m", "tiny", "--session", "trim", question)
        assert out.returncode == 0, out.stderr
        assert "too long" not in out.stderr
    out = moa("ask", "-m", "tiny", "--session", "trim", "third question", env=WARNINGS_ON)
    assert out.returncode == 0, out.stderr
    assert sum("too long" in line for line in out.stderr.splitlines()) == 1  # once, not once per call
    sent = server.requests("m1")[2]["body"]["messages"]
    assert sent == [
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": long_answer},
        {"role": "user", "content": "third question"},
    ]
    # The turn before it still fitted and went out whole.
    assert [m["content"] for m in server.requests("m1")[1]["body"]["messages"]] == [
        "first question", long_answer, "second question"]
    assert server.requests("agg")[2]["body"]["messages"][1:] == sent


def test_an_oversize_prompt_is_shortened_in_the_middle(moa, server, moa_env):
    write_config(moa_env, TINY)
    paste = "BEGIN " + "filler text " * 1500 + "END"
    out = moa("ask", "-m", "tiny", "--json", "summarize", input=paste, env=WARNINGS_ON)
    assert out.returncode == 0, out.stderr
    assert sum("too long" in line for line in out.stderr.splitlines()) == 1
    for request in server.requests():
        content = request["body"]["messages"][-1]["content"]
        assert len(content) < len(paste) // 2
        assert content.startswith("BEGIN ") and content.endswith("summarize") and "[…trimmed…]" in content


# ------------------------------------------------------------------ concurrency


def test_concurrency_one_sends_one_request_at_a_time(server):
    out, data = ask_turn(server, concurrency=1)
    assert out.ok
    log = sorted(server.requests(), key=lambda r: r["received"])
    assert [r["model"] for r in log][-1] == "agg" and len(log) == 4
    for earlier, later in zip(log, log[1:]):
        assert later["received"] >= earlier["finished"], (earlier["model"], later["model"])
    assert data["final"] == "agg answer 1: q"


def test_without_a_limit_the_references_overlap(server):
    for model in ("m1", "m2", "m3"):
        server.script(model, delay=0.5)
    out, _ = ask_turn(server)
    assert out.ok
    refs = [server.requests(m)[0] for m in ("m1", "m2", "m3")]
    assert max(r["received"] for r in refs) < min(r["finished"] for r in refs)
