"""`moa serve` with real clients: the official `openai` SDK (sync and async, streamed and not),
raw HTTP, and the `llm` CLI, against the real command backed by the tests' fake server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time

import httpx
import openai
import pytest

from fakeserver import _count_prompt
from serving import moa_serve, wait_for  # noqa: F401 - a fixture

QUESTION = [{"role": "user", "content": "what is MoA?"}]


def client(running, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=running.v1, api_key=kwargs.pop("api_key", "unused"), max_retries=0, timeout=30, **kwargs)


def test_models_lists_the_default_mix_every_mix_and_their_models(moa_serve):
    running = moa_serve()
    ids = [m.id for m in client(running).models.list()]
    assert ids[0] == "moa"
    assert {"moa:t", "moa:together-moa", "openai:r1", "openai:r2", "openai:agg"} <= set(ids)


def test_sync_sdk_whole_answer_with_usage_summed_over_every_call(moa_serve, server):
    running = moa_serve()
    reply = client(running).chat.completions.create(model="moa", messages=QUESTION)
    assert reply.choices[0].message.content == "agg answer 1: what is MoA?"
    assert reply.choices[0].finish_reason == "stop"
    assert sorted(r["model"] for r in server.requests()) == ["agg", "r1", "r2"]
    # Each reply "<model> answer 1: what is MoA?" is 6 words, streamed one word a chunk.
    prompt = sum(_count_prompt(r["body"]) for r in server.requests())
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (prompt, 3 * 6)
    assert reply.usage.total_tokens == prompt + 18
    assert reply.model == "moa"


def test_sync_sdk_streams_the_aggregator_tokens_as_they_arrive(moa_serve, server):
    server.script("agg", reply="one two three four five", chunk_delay=0.3)
    running = moa_serve()
    stream = client(running).chat.completions.create(
        model="moa:t", messages=QUESTION, stream=True, stream_options={"include_usage": True})
    first_content_at, contents, usage, roles = None, [], None, []
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            if choice.delta.content:
                first_content_at = first_content_at or time.time()
                contents.append(choice.delta.content)
    assert roles == ["assistant"]
    assert "".join(contents) == "one two three four five"
    assert len(contents) == 5  # one chunk per upstream token, not one finished text
    # Real streaming: the first token reached the client before the aggregator had finished.
    assert first_content_at < server.requests("agg")[0]["finished"]
    prompt = sum(_count_prompt(r["body"]) for r in server.requests())
    assert (usage.prompt_tokens, usage.completion_tokens) == (prompt, 6 + 6 + 5)


def test_async_sdk_streamed_and_whole_concurrent_clients_get_their_own_answers(moa_serve, server):
    running = moa_serve()

    async def main():
        async with openai.AsyncOpenAI(base_url=running.v1, api_key="unused", max_retries=0) as sdk:
            async def streamed(i: int) -> str:
                stream = await sdk.chat.completions.create(
                    model="moa", messages=[{"role": "user", "content": f"question {i}"}], stream=True)
                return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

            async def whole(i: int) -> str:
                reply = await sdk.chat.completions.create(model="moa", messages=[{"role": "user", "content": f"question {i}"}])
                return reply.choices[0].message.content

            return await asyncio.gather(*(streamed(i) if i % 2 else whole(i) for i in range(6)))

    answers = asyncio.run(main())
    for i, answer in enumerate(answers):
        assert answer.startswith("agg answer ") and answer.endswith(f": question {i}"), answer


def test_the_request_is_honoured_temperature_max_tokens_and_history(moa_serve, server):
    running = moa_serve()
    history = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "second "}, {"type": "text", "text": "question"}]},
    ]
    reply = client(running).chat.completions.create(
        model="moa", messages=history, temperature=0.3, max_tokens=77,
        extra_body={"top_k": 5, "some_unknown_field": {"x": 1}}, user="someone")
    assert reply.choices[0].message.content == "agg answer 1: second question"
    flat = [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str) else "second question"}
            for m in history]
    for request in server.requests():
        body = request["body"]
        assert body["temperature"] == 0.3 and body["max_tokens"] == 77
        assert "top_k" not in body and "some_unknown_field" not in body
        messages = body["messages"]
        if request["model"] == "agg":
            assert messages[0]["role"] == "system" and "r1 answer 1: second question" in messages[0]["content"]
            messages = messages[1:]
        assert messages == flat


def test_a_provider_model_id_passes_through_to_that_one_model(moa_serve, server):
    running = moa_serve()
    reply = client(running).chat.completions.create(model="openai:r2", messages=QUESTION)
    assert reply.choices[0].message.content == "r2 answer 1: what is MoA?"
    assert [r["model"] for r in server.requests()] == ["r2"]
    assert server.requests()[0]["body"]["messages"] == QUESTION


def test_reference_progress_streams_as_reasoning_content_when_asked(moa_serve, server):
    server.script("r1", reply="alpha beta gamma", chunk_delay=0.05)
    server.script("r2", reply="delta epsilon", chunk_delay=0.05)
    running = moa_serve()
    sdk = client(running)

    def reasoning_of(**kwargs) -> tuple[str, str]:
        reasoning, content = "", ""
        for chunk in sdk.chat.completions.create(model="moa", messages=QUESTION, stream=True, **kwargs):
            for choice in chunk.choices:
                reasoning += (choice.delta.model_extra or {}).get("reasoning_content") or ""
                content += choice.delta.content or ""
        return reasoning, content

    reasoning, content = reasoning_of(extra_body={"moa_reasoning": True})
    assert content == "agg answer 1: what is MoA?"
    # Both references, each whole under its own header, never interleaved.
    assert "[openai:r1, round 1]\nalpha beta gamma\n" in reasoning
    assert "[openai:r2, round 1]\ndelta epsilon\n" in reasoning
    reasoning, _ = reasoning_of(extra_headers={"X-Moa-Reasoning": "1"})
    assert "alpha beta gamma" in reasoning and "delta epsilon" in reasoning
    reasoning, _ = reasoning_of()
    assert reasoning == ""  # opt in only


def test_proposals_come_back_in_the_moa_field_when_asked(moa_serve, server):
    running = moa_serve()
    sdk = client(running)
    reply = sdk.chat.completions.create(model="moa", messages=QUESTION, extra_body={"moa_proposals": True})
    extension = reply.model_extra["moa"]
    texts = {r["model"]: r["text"] for r in extension["rounds"][0]}
    assert texts == {"openai:r1": "r1 answer 1: what is MoA?", "openai:r2": "r2 answer 1: what is MoA?"}
    assert extension["aggregator"]["text"] == reply.choices[0].message.content
    plain = sdk.chat.completions.create(model="moa", messages=QUESTION)
    assert "moa" not in (plain.model_extra or {})
    finals = [c for c in sdk.chat.completions.create(model="moa", messages=QUESTION, stream=True,
                                                     extra_headers={"X-Moa-Proposals": "true"})
              if c.choices and c.choices[0].finish_reason]
    assert finals[0].model_extra["moa"]["rounds"][0][0]["status"] == "ok"


def test_role_chunk_at_once_and_keep_alive_comments_while_the_references_work(moa_serve, server):
    server.script("r1", delay=1.5)
    server.script("r2", delay=1.5)
    running = moa_serve("--keep-alive", "0.2")
    events = []
    with httpx.stream("POST", running.v1 + "/chat/completions", timeout=30,
                      json={"model": "moa", "messages": QUESTION, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line:
                events.append(line)
    first = json.loads(events[0].removeprefix("data: "))
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    first_content = next(i for i, e in enumerate(events) if '"content":"agg' in e)
    assert ": keep-alive" in events[1:first_content]
    assert events[-1] == "data: [DONE]"


def test_llm_cli_configured_as_an_openai_compatible_model_answers(moa_serve, tmp_path):
    llm = shutil.which("llm", path=os.path.dirname(os.path.realpath(shutil.which("moa") or "moa"))) or shutil.which("llm")
    if llm is None:
        pytest.skip("the llm CLI is not installed")
    running = moa_serve()
    user_path = tmp_path / "llm"
    user_path.mkdir()
    (user_path / "extra-openai-models.yaml").write_text(
        f"- model_id: moa-mix\n  model_name: moa\n  api_base: \"{running.v1}\"\n")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(LLM_USER_PATH=str(user_path), OPENAI_API_KEY="unused")
    out = subprocess.run([llm, "-m", "moa-mix", "--no-log", "what is MoA?"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "agg answer 1: what is MoA?"


def test_workers_serve_from_several_processes_and_stop_on_sigterm(moa_serve, server):
    running = moa_serve("--workers", "2")
    sdk = client(running)
    answers = [sdk.chat.completions.create(model="openai:agg", messages=[{"role": "user", "content": f"q{i}"}])
               .choices[0].message.content for i in range(4)]
    assert [a.split(": ")[1] for a in answers] == ["q0", "q1", "q2", "q3"]
    assert running.stop() == 0
