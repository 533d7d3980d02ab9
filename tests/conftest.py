"""Shared fixtures: the fake OpenAI-compatible server and a runner for the real `moa` command."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakeserver import FakeServer  # noqa: E402
from spawning import MOA, Result, moa_command, run_moa, spawn_moa  # noqa: E402,F401 - shared with test files

# Variables that must never leak from the developer's machine into a test run.
SCRUBBED = [k for k in os.environ if k.endswith(("_API_KEY", "_BASE_URL")) or k.startswith("MOA_")]


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
        return run_moa(*args, env={**moa_env, **(env or {})}, cwd=tmp_path, input=input, timeout=timeout)

    return run


@pytest.fixture
def moa_inprocess(moa_env, tmp_path, monkeypatch, capfd):
    """`moa(...)` without a process: moa's own entry (cli.run) in this interpreter, with moa_env
    as the environment and tmp_path as the working directory. For checking what the command line
    refuses (option parsing, bad config), where a process adds nothing but start-up time; turns,
    terminals and signals keep the real process (`moa`, `spawn_moa`)."""

    def run(*args: str, env: dict | None = None) -> Result:
        from moa_cli import cli

        full_env = {**moa_env, **(env or {})}
        for name in list(os.environ):
            if full_env.get(name) is None:
                monkeypatch.delenv(name)
        for name, value in full_env.items():
            if value is not None:
                monkeypatch.setenv(name, value)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(sys, "stdin", open(os.devnull))  # as `moa` with stdin from /dev/null
        capfd.readouterr()
        try:
            code = cli.run(list(args))
        finally:
            sys.stdin.close()
        out, err = capfd.readouterr()
        return Result(code, out, err)

    return run


# ---------------------------------------------------------------- measuring the test pyramid

# MOA_TEST_SPAWN_LOG=DIR: one line per test case, "node id<TAB>processes and ptys it started", in
# DIR/<pid>.tsv (one file per xdist worker), to count the cases that spawn something (issue 16).
# Off by default; the variable starts with MOA_, so no `moa` child ever sees it.
_SPAWN_LOG = os.environ.get("MOA_TEST_SPAWN_LOG")
_spawned = [0]

if _SPAWN_LOG:
    import subprocess

    import ptyprocess

    def _counting(original):
        def start(*args, **kwargs):
            _spawned[0] += 1
            return original(*args, **kwargs)

        return start

    subprocess.Popen._execute_child = _counting(subprocess.Popen._execute_child)
    ptyprocess.PtyProcess.spawn = classmethod(_counting(ptyprocess.PtyProcess.spawn.__func__))
    os.fork = _counting(os.fork)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(item, nextitem):
        before = _spawned[0]
        yield
        with open(Path(_SPAWN_LOG) / f"{os.getpid()}.tsv", "a", encoding="utf-8") as log:
            log.write(f"{item.nodeid}\t{_spawned[0] - before}\n")


@pytest.fixture
def home(moa_env, request):
    """MOA_HOME holding the test module's CONFIG as its config.toml."""
    path = Path(moa_env["MOA_HOME"])
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.toml").write_text(request.module.CONFIG)
    return path


@pytest.fixture(scope="session")
def bwrap():
    """bench's sandbox probe: bubblewrap's Isolation, or the test is skipped where it cannot run."""
    import asyncio

    from moa_cli.bench.sandbox import isolation

    chosen = asyncio.run(isolation())
    if chosen.kind != "bwrap":
        pytest.skip(f"bubblewrap cannot run here: {chosen.reason}")
    return chosen
