"""LocalProvider against the real SmolLM2-135M model (needs the `local` extra; never skipped)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest

from moa_cli.errors import ModelNotFound, UsageError
from moa_cli.providers import local
from moa_cli.providers.base import ChatRequest, Usage
from moa_cli.providers.local import LocalProvider


def ask(content: str = "Name three colours.", max_tokens: int = 16, seed: int = 1, temperature: float = 0.0) -> ChatRequest:
    return ChatRequest("smollm2", ({"role": "user", "content": content},), temperature=temperature,
                       max_tokens=max_tokens, seed=seed)


async def collect(provider: LocalProvider, request: ChatRequest) -> tuple[str, Usage | None]:
    text, usage = [], None
    async for chunk in provider.stream(request):
        text.append(chunk.text)
        usage = chunk.usage or usage
    return "".join(text), usage


@pytest.fixture(scope="module")
def provider() -> LocalProvider:
    return LocalProvider("local")


def model():
    return local._MODELS[local._builtin_path()]


def test_stream_yields_text_then_exact_usage(provider):
    text, usage = asyncio.run(collect(provider, ask()))
    assert text.strip()
    assert usage is not None and usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 16 + 1
    # The same greedy call, non-streamed: llama-cpp-python's own usage must agree with ours.
    llm = model()
    with llm.lock:
        reference = llm.create_chat_completion(messages=list(ask().messages), max_tokens=16, temperature=0.0, seed=1,
                                               **local.SAMPLING)
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        reference["usage"]["prompt_tokens"], reference["usage"]["completion_tokens"])
    assert text == reference["choices"][0]["message"]["content"]


def test_concurrent_streams_on_one_model_take_turns(provider):
    async def three():
        return await asyncio.gather(*(collect(provider, ask(seed=s, temperature=0.8)) for s in (1, 2, 3)))

    results = asyncio.run(three())
    assert len(results) == 3
    for text, usage in results:
        assert text.strip() and usage is not None and usage.completion_tokens > 0


def test_cancelling_a_stream_stops_generation_and_frees_the_model(provider):
    async def scenario():
        # Close the generator after the first piece of text (what `break` in a consumer does).
        stream = provider.stream(ask("Write a very long story about a dragon.", max_tokens=400))
        async for chunk in stream:
            if chunk.text:
                break
        await stream.aclose()
        while model().lock.locked():  # synchronisation: wait for the worker to let go
            await asyncio.sleep(0.01)
        # It stopped within a few tokens of the close, not after the 400 it was allowed.
        stopped_after = model().tally[1]
        # Cancel a task that is consuming another stream (what Ctrl-C or a timeout does).
        task = asyncio.create_task(collect(provider, ask("Write a very long poem.", max_tokens=400)))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        after = await asyncio.wait_for(collect(provider, ask()), timeout=30)
        return stopped_after, after

    stopped_after, (text, usage) = asyncio.run(scenario())
    assert 0 < stopped_after < 40
    assert text.strip() and usage.completion_tokens > 0
    deadline = time.monotonic() + 2
    while any(t.name.startswith("moa-local-") for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(t.name.startswith("moa-local-") for t in threading.enumerate())
    assert not model().lock.locked()


def test_model_is_loaded_once_and_reused(provider):
    asyncio.run(collect(provider, ask(max_tokens=4)))
    first = model()
    asyncio.run(collect(LocalProvider("local"), ask(max_tokens=4)))  # another provider, another loop
    assert model() is first
    assert list(local._MODELS).count(local._builtin_path()) == 1


def test_unknown_model_and_missing_file_are_model_not_found(provider, tmp_path):
    with pytest.raises(ModelNotFound, match="unknown model 'nope' on provider 'local'"):
        asyncio.run(collect(provider, ChatRequest("nope", ({"role": "user", "content": "hi"},))))
    missing = tmp_path / "absent.gguf"
    with pytest.raises(ModelNotFound, match="absent.gguf"):
        asyncio.run(collect(provider, ChatRequest(str(missing), ({"role": "user", "content": "hi"},))))
    aliased = LocalProvider("local", aliases={"tiny": str(missing)})
    with pytest.raises(ModelNotFound, match="model 'tiny' on provider 'local'"):
        asyncio.run(collect(aliased, ChatRequest("tiny", ({"role": "user", "content": "hi"},))))
    assert asyncio.run(aliased.list_models()) == ["smollm2", "tiny"]


def test_overlong_prompt_is_trimmed_with_a_warning(tmp_path):
    # A second link to the model file is a separate cache entry, so it loads with a small context
    # (prompt evaluation on a CPU is slow; 512 tokens keeps this test quick).
    small = tmp_path / "smol.gguf"
    try:
        os.link(local._builtin_path(), small)
    except OSError:
        shutil.copyfile(local._builtin_path(), small)
    provider = LocalProvider("local", aliases={"small": str(small)}, n_ctx=512)
    notices = []
    provider.on_notice = notices.append
    history = ({"role": "system", "content": "Be brief."},
               {"role": "user", "content": "tell me about cats " * 100},
               {"role": "assistant", "content": "Cats are small mammals."},
               {"role": "user", "content": "Summarise this: " + "the quick brown fox jumps " * 200})
    try:
        text, usage = asyncio.run(collect(provider, ChatRequest("small", history, temperature=0.0, max_tokens=8)))
    finally:
        local._MODELS.pop(str(small.resolve()), None)
    assert 0 < usage.completion_tokens <= 8
    assert usage.prompt_tokens + 8 <= 512
    assert provider.last_warning and "dropped 2 earlier message(s)" in provider.last_warning
    assert "shortened 1 message(s)" in provider.last_warning
    assert notices == [provider.last_warning]


def test_missing_extra_is_a_usage_error(provider, monkeypatch):
    assert isinstance(provider._translate(ImportError("No module named 'llama_cpp'"), "smollm2"), UsageError)

    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    with pytest.raises(UsageError, match=r"pip install 'moa-cli\[local\]'"):
        asyncio.run(collect(provider, ask()))


def test_loading_and_generating_print_nothing():
    script = (
        "import asyncio\n"
        "from moa_cli.providers.local import LocalProvider\n"
        "from moa_cli.providers.base import ChatRequest\n"
        "async def main():\n"
        "    async for c in LocalProvider('local').stream(ChatRequest('smollm2', ({'role': 'user', 'content': 'hi'},), max_tokens=4)):\n"
        "        pass\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""


def test_llama_threads_leave_out_the_cores_other_work_keeps_busy():
    from moa_cli.providers.local import default_threads

    assert default_threads(available=2, load=0.1, cpus=2) == 2  # a quiet machine: every core
    assert default_threads(available=2, load=1.0, cpus=2) == 1  # one core busy elsewhere
    assert default_threads(available=2, load=9.0, cpus=2) == 1  # never none
    assert default_threads(available=16, load=0.0, cpus=16) == 8  # capped
    assert default_threads(available=2, load=40.0, cpus=64) == 1  # a busy host's load, scaled to our 2 CPUs
    assert default_threads(available=4, load=4.0, cpus=64) == 4  # the host's load is not all on our CPUs
