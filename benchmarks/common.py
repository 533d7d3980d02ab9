"""Shared pieces of the benchmark scripts: the fake server in its own process, running the real
`moa` command, timing it, and writing results into BENCHMARKS.md.

The fake server runs as a separate process (`tests/fakeserver.py --script ... --log ...`) so that
it never competes with `moa` for one interpreter's GIL. Its request log, with server-side
`received`, `first_chunk` and `finished` times, is written when it stops.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAKESERVER = ROOT / "tests" / "fakeserver.py"
RESULTS = ROOT / "BENCHMARKS.md"
MOA = shutil.which("moa", path=str(Path(sys.executable).parent)) or shutil.which("moa")


class Server:
    """`with Server({"m1": {"delay": 1.0}}) as s:` ... then `s.log` after the block.

    Streams are chunked on kept-alive connections, as real APIs send them, so a later call can
    reuse a connection; `keep_alive=False` closes the connection after every stream instead.
    """

    def __init__(self, script: dict, keep_alive: bool = True):
        self.script = script
        self.keep_alive = keep_alive
        self.log: list[dict] = []
        self._dir = tempfile.TemporaryDirectory(prefix="moa-bench-")

    def __enter__(self) -> "Server":
        d = Path(self._dir.name)
        (d / "script.json").write_text(json.dumps(self.script))
        self._log_path = d / "log.jsonl"
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKESERVER), "--port", "0", "--script", str(d / "script.json"),
             "--log", str(self._log_path), *(["--keep-alive"] if self.keep_alive else [])],
            stdout=subprocess.PIPE, text=True,
        )
        self.url = self.proc.stdout.readline().strip()
        return self

    def __exit__(self, *exc) -> None:
        self.proc.send_signal(signal.SIGINT)  # the server writes its log on the way out
        self.proc.wait(timeout=30)
        if self._log_path.exists():
            self.log = [json.loads(line) for line in self._log_path.read_text().splitlines() if line]
        self._dir.cleanup()

    def chat_requests(self) -> list[dict]:
        return [r for r in self.log if r.get("path", "").endswith("/chat/completions")]


def moa_env(server_url: str | None, home: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not (k.endswith(("_API_KEY", "_BASE_URL")) or k.startswith("MOA_"))}
    env.update(MOA_HOME=home, NO_COLOR="1", PYTHONUNBUFFERED="1", OPENAI_API_KEY="sk-bench-0123456789")
    if server_url:
        env["OPENAI_BASE_URL"] = server_url + "/v1"
    return env


def run_moa(args: list[str], env: dict, input: str | None = None) -> tuple[float, float, float, subprocess.CompletedProcess]:
    """(start epoch, end epoch, wall seconds, completed process) of one `moa` run."""
    start = time.time()
    t0 = time.perf_counter()
    proc = subprocess.run([MOA, *args], env=env, capture_output=True, text=True, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"moa {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return start, time.time(), wall, proc


def in_window(log: list[dict], start: float, end: float) -> list[dict]:
    return [r for r in log if start <= r["received"] <= end]


def refs(n: int, prefix: str = "r") -> list[str]:
    return [f"{prefix}{i}" for i in range(1, n + 1)]


def mix_args(ref_models: list[str], aggregator: str = "agg", rounds: int = 1) -> list[str]:
    return ["-r", ",".join(f"openai:{m}" for m in ref_models), "-a", f"openai:{aggregator}",
            "--rounds", str(rounds)]


def median(values):
    return statistics.median(values)


def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table; also fine to read on a terminal."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda row: "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "| " + " | ".join("-" * w for w in widths) + " |", *map(line, cells)])


def machine() -> str:
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, {datetime.date.today().isoformat()}")


def ok(value: float, goal: float) -> str:
    return "met" if value <= goal else "MISSED"


HEADER = """# Benchmarks

Measured with the scripts in `benchmarks/` (`python benchmarks/<name>.py`, no arguments, a few
minutes each). Every script drives the real `moa` command against `tests/fakeserver.py` running
in a separate process with fixed latencies, and rewrites its own section below. The machine is
noisy, so goals are ratios measured within one run, and each number is a median of several runs.
"""


def update_section(name: str, body: str) -> None:
    """Replace (or append) the section between this script's markers in BENCHMARKS.md."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    block = f"{begin}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)
    print(f"\nwrote the '{name}' section of {RESULTS.relative_to(ROOT)}")
