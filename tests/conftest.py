"""Shared fixtures: the fake OpenAI-compatible server and a runner for the real `moa` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakeserver import FakeServer  # noqa: E402

# Variables that must never leak from the developer's machine into a test run.
SCRUBBED = [k for k in os.environ if k.endswith(("_API_KEY", "_BASE_URL")) or k.startswith("MOA_")]

MOA = shutil.which("moa") or ""


def wait_for(predicate, what: str = "condition", timeout: float = 20.0):
    """Poll until `predicate()` is true and return its value: a bounded wait for the servers'
    logs to catch up (synchronisation), never an assertion about speed."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def server():
    with FakeServer() as fake:
        yield fake


@pytest.fixture
def moa_env(tmp_path, server):
    """An environment where `moa` keeps its state in tmp_path and talks to the fake server."""
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env.update(
        MOA_HOME=str(tmp_path / "home"),
        OPENAI_API_KEY="sk-test-openai-0123456789",
        OPENAI_BASE_URL=server.v1,
        TOGETHER_API_KEY="tgp-test-together-0123456789",
        TOGETHER_BASE_URL=server.url,
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def moa(moa_env, tmp_path):
    """Run the real `moa` command as a subprocess: moa("ask", "q", input="...", env={...})."""

    def run(*args: str, input: str | bytes | None = None, env: dict | None = None, timeout: float = 60) -> Result:
        full_env = {**moa_env, **(env or {})}
        for k, v in list(full_env.items()):
            if v is None:
                del full_env[k]
        command = [MOA] if MOA else [sys.executable, "-m", "moa_cli"]
        proc = subprocess.run(
            command + list(args),
            input=input.encode() if isinstance(input, str) else input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            env=full_env,
            cwd=tmp_path,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))

    return run
