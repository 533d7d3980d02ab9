"""Running the real `moa serve` for tests: a subprocess on 127.0.0.1 (a free port it picks and
announces), backed by the tests' fake server, with its own MOA_HOME and config."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from conftest import wait_for
from spawning import spawn_moa

MIX_CONFIG = """
[defaults]
mix = "t"
retries = 0

[mixes.t]
references = ["openai:r1", "openai:r2"]
aggregator = "openai:agg"
"""


class Running:
    def __init__(self, proc: subprocess.Popen, log_path: Path):
        self.proc, self.log_path = proc, log_path
        line = wait_for(lambda: re.search(r"listening on (http://\S+)/v1", self.log()) or self.proc.poll() is not None,
                        what="moa serve to start")
        if self.proc.poll() is not None:
            raise AssertionError(f"moa serve exited {self.proc.returncode}: {self.log()}")
        self.url = line.group(1)
        self.v1 = self.url + "/v1"
        # With --workers the port is bound by uvicorn's supervisor after the line is printed.
        wait_for(self._healthy, what="moa serve to answer /health")

    def _healthy(self) -> bool:
        try:
            return httpx.get(self.url + "/health", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


@pytest.fixture
def moa_serve(moa_env, tmp_path):
    """`moa_serve("--api-key", "...", config=..., env={...})` starts `moa serve` and waits until it listens."""
    started: list[Running] = []

    def start(*args: str, config: str = MIX_CONFIG, env: dict | None = None) -> Running:
        home = Path(moa_env["MOA_HOME"])
        home.mkdir(parents=True, exist_ok=True)
        (home / "config.toml").write_text(config)
        full_env = {**moa_env, **(env or {})}
        log_path = tmp_path / f"serve-{len(started)}.log"
        with log_path.open("wb") as log:
            proc = spawn_moa("serve", "--port", "0", *args, env=full_env, cwd=tmp_path, stdout=log,
                             stderr=subprocess.STDOUT)
        running = Running(proc, log_path)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait(timeout=10)
