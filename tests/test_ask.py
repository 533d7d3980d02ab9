"""`moa ask` end to end: the real command against the fake OpenAI-compatible server. (Turn policy,
rounds and the together SDK path run in-process: test_policy_inprocess.py.)"""

from __future__ import annotations

import json

OPENAI_MIX = ["-r", "openai:m1,openai:m2", "-r", "openai:m3", "-a", "openai:agg"]


def test_openai_path_answers_with_the_aggregator_and_sends_every_reference_answer(moa, server):
    out = moa("ask", *OPENAI_MIX, "what is MoA?")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "agg answer 1: what is MoA?"
    assert "\x1b[" not in out.stdout  # no ANSI codes when stdout is a pipe
    refs = [r for r in server.requests() if r["model"] != "agg"]
    assert sorted(r["model"] for r in refs) == ["m1", "m2", "m3"]
    for r in refs:
        assert r["body"]["messages"] == [{"role": "user", "content": "what is MoA?"}]
        assert r["body"]["stream"] is True
        assert r["authorized"]
    agg = server.requests("agg")[0]["body"]["messages"]
    assert agg[0]["role"] == "system"
    for model in ("m1", "m2", "m3"):
        assert f"{model} answer 1: what is MoA?" in agg[0]["content"]
    assert agg[1:] == [{"role": "user", "content": "what is MoA?"}]


def test_flags_reach_every_call(moa, server):
    out = moa("ask", *OPENAI_MIX, "-t", "0.25", "--max-tokens", "77", "-s", "Be terse.", "q")
    assert out.returncode == 0, out.stderr
    for r in server.requests():
        assert r["body"]["temperature"] == 0.25
        assert r["body"]["max_tokens"] == 77
        assert r["body"]["messages"][0]["content"].startswith("Be terse.")


def test_piped_stdin_then_blank_line_then_argument(moa, server):
    out = moa("ask", *OPENAI_MIX, "summarize", input="notes line one\nline two\n")
    assert out.returncode == 0, out.stderr
    assert server.requests("m1")[0]["body"]["messages"][-1]["content"] == "notes line one\nline two\n\nsummarize"


def test_stdin_alone_and_dash(moa, server):
    assert moa("ask", *OPENAI_MIX, input="just stdin\n").returncode == 0
    assert moa("ask", *OPENAI_MIX, "-", input="dash stdin\n").returncode == 0
    contents = [r["body"]["messages"][-1]["content"] for r in server.requests("m1")]
    assert contents == ["just stdin", "dash stdin"]


def test_empty_and_binary_stdin_are_clear_errors(moa, server):
    empty = moa("ask", *OPENAI_MIX, input="")
    assert empty.returncode == 2
    assert "empty prompt" in empty.stderr and "Traceback" not in empty.stderr
    binary = moa("ask", *OPENAI_MIX, input=b"\x89PNG\x00\x01\xff")
    assert binary.returncode == 2
    assert "binary" in binary.stderr and "Traceback" not in binary.stderr
    assert server.requests() == []


def test_json_output_has_every_answer_usage_and_timings(moa, server):
    out = moa("ask", *OPENAI_MIX, "--json", "q")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["final"] == "agg answer 1: q"
    assert [a["model"] for a in data["rounds"][0]] == ["openai:m1", "openai:m2", "openai:m3"]
    for answer in data["rounds"][0]:
        assert answer["status"] == "ok" and answer["text"]
        assert answer["usage"]["completion_tokens"] > 0
        assert answer["usage"]["estimated"] is False  # the server reported it
        assert answer["timings"]["finished"] >= answer["timings"]["started"]
    assert data["aggregator"]["usage"]["prompt_tokens"] > 0
    assert data["usage"]["completion_tokens"] == sum(
        a["usage"]["completion_tokens"] for a in data["rounds"][0] + [data["aggregator"]]
    )


def test_all_references_failing_exits_1_with_one_line(moa, server):
    for m in ("m1", "m2", "m3"):
        server.script(m, status=400)
    out = moa("ask", *OPENAI_MIX, "q")
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "round 1" in errors[0]
    assert "Traceback" not in out.stderr
    assert server.requests("agg") == []


def test_unknown_model_names_model_and_provider(moa, server):
    server.known_models = {"m1"}
    out = moa("ask", "-r", "openai:m1", "-a", "openai:nope", "--no-fallback", "q")
    assert out.returncode == 1
    assert "unknown model 'nope' on provider 'openai'" in out.stderr


def test_missing_key_names_the_variable(moa_inprocess):
    out = moa_inprocess("ask", "-r", "openai:m1", "-a", "openai:agg", "q", env={"OPENAI_API_KEY": None})
    assert out.returncode == 3
    assert "OPENAI_API_KEY" in out.stderr and "Traceback" not in out.stderr


def test_rejected_key_is_exit_3_and_never_printed(moa, server):
    server.api_key = "the-right-key"
    out = moa("ask", *OPENAI_MIX, "--no-fallback", "q")
    assert out.returncode == 3
    assert "sk-test-openai-0123456789" not in out.stdout + out.stderr
    assert "401" in out.stderr


def test_bad_flag_values_are_one_line_usage_errors(moa_inprocess, server):
    for args in (["--rounds", "abc"], ["--temperature", "-1"], ["--rounds", "99"], ["--max-tokens", "0"]):
        out = moa_inprocess("ask", *OPENAI_MIX, *args, "q")
        assert out.returncode == 2, args
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "Traceback" not in out.stderr
    assert server.requests() == []


def test_unknown_provider_prefix_is_a_model_on_the_default_provider(moa, server):
    out = moa("ask", "-r", "ollama:llama3.2:1b", "-a", "openai:agg", "--json", "q",
              env={"OLLAMA_BASE_URL": server.v1})
    assert out.returncode == 0, out.stderr
    assert server.requests("llama3.2:1b"), "the ollama preset keeps the colon in the model id"


def test_provider_outage_is_a_clear_error(moa):
    out = moa("ask", "-r", "openai:m1", "-a", "openai:agg", "--retries", "0", "q",
              env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert out.returncode == 1
    assert "cannot connect" in out.stderr and "Traceback" not in out.stderr


def test_dotenv_file_supplies_keys_but_the_environment_wins(moa, server, tmp_path):
    (tmp_path / ".env").write_text("OPENAI_API_KEY=from-dotenv\nOPENAI_BASE_URL=http://127.0.0.1:9/v1\n")
    out = moa("ask", "-r", "openai:m1", "-a", "openai:agg", "q", env={"OPENAI_API_KEY": None})
    assert out.returncode == 0, out.stderr  # key from .env, base URL from the real environment
    server.api_key = "from-dotenv"
    assert moa("ask", "-r", "openai:m1", "-a", "openai:agg", "q", env={"OPENAI_API_KEY": None}).returncode == 0


def test_json_on_a_failed_turn_still_prints_every_answer_that_arrived(moa, server):
    server.script("agg", status=400)
    out = moa("ask", *OPENAI_MIX, "--no-fallback", "--json", "q")
    assert out.returncode == 1
    data = json.loads(out.stdout)
    assert data["error"].startswith("aggregator openai:agg failed")
    assert data["final"] == ""
    assert [a["status"] for a in data["rounds"][0]] == ["ok", "ok", "ok"]
    assert data["aggregator"]["status"] == "failed"
    assert (data["aggregator"]["failure"]["kind"], data["aggregator"]["failure"]["status"]) == ("http", 400)


def test_ask_continue_keeps_a_failed_turns_answers_in_the_session(moa, server):
    server.script("agg", status=400)
    assert moa("ask", *OPENAI_MIX, "--no-fallback", "--continue", "q").returncode == 1
    shown = moa("history", "show", "1", "--proposals")
    assert shown.returncode == 0, shown.stderr
    assert "m1 answer 1: q" in shown.stdout
