"""Runs a HumanEval problem's tests against an answer, in a separate, limited process.

Each run gets a fresh temporary directory (its working directory, HOME and TMPDIR), a wall-clock
time limit (the whole process group is killed when it passes), an address-space limit, a
file-size limit, a process limit, and on Linux an empty network namespace where the kernel
allows one. Inside, destructive `os`, `shutil` and `subprocess` functions are disabled and
opening a file for writing outside the directory is refused (see sandbox_child.py).

This is NOT a security sandbox: it contains the accidents of wrong code, not an attacker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHILD = Path(__file__).with_name("sandbox_child.py")
TIME_LIMIT = 10.0  # seconds per program; HumanEval's tests take milliseconds when the code is right
MEMORY_LIMIT = 1 << 30  # bytes of address space
DETAIL_BYTES = 600  # how much of the end of stderr a failure keeps


@dataclass
class TestRun:
    status: str  # passed | failed | timeout | killed
    detail: str = ""  # why it failed: the exception, or the limit that stopped it
    network_isolated: bool = False

    @property
    def passed(self) -> bool:
        return self.status == "passed"


async def run_program(program: str, *, time_limit: float = TIME_LIMIT, memory_limit: int = MEMORY_LIMIT) -> TestRun:
    """Run `program` in the sandbox and say how it ended."""
    with tempfile.TemporaryDirectory(prefix="moa-sandbox-", ignore_cleanup_errors=True) as directory:
        # Output goes to files, bounded by the file-size limit, so a print loop cannot fill memory.
        with open(os.path.join(directory, ".stdout"), "wb") as out, open(os.path.join(directory, ".stderr"), "wb") as err:
            env = {"PATH": os.defpath, "HOME": directory, "TMPDIR": directory, "LANG": "C.UTF-8",
                   "PYTHONDONTWRITEBYTECODE": "1"}
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-I", str(CHILD), str(memory_limit), cwd=directory, env=env,
                stdin=asyncio.subprocess.PIPE, stdout=out, stderr=err, start_new_session=True,
            )
            timed_out = False
            try:
                await asyncio.wait_for(process.communicate(program.encode()), time_limit)
            except asyncio.TimeoutError:
                timed_out = True
            finally:
                _kill_group(process.pid)  # the child and anything it managed to start
                await process.wait()
        log = Path(directory, ".stderr").read_bytes().decode("utf-8", "replace")
    isolated = log.startswith("moa-sandbox: network isolated")
    last = log.strip().splitlines()[-1] if log.strip() else ""
    if timed_out:
        return TestRun("timeout", f"killed after {time_limit:g}s", isolated)
    if process.returncode == 0:
        return TestRun("passed", "", isolated)
    if process.returncode > 0:
        return TestRun("failed", last.removeprefix("moa-sandbox: failed: ")[-DETAIL_BYTES:], isolated)
    name = signal.Signals(-process.returncode).name if -process.returncode in signal.valid_signals() else "a signal"
    return TestRun("killed", f"killed by {name} (a memory, file-size or CPU limit)", isolated)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def grade(problem: dict, answer: str, **limits) -> TestRun:
    """Run the problem's tests (`check(entry_point)`) against the code in `answer`."""
    from .extract import program_for

    return await run_program(program_for(problem, answer), **limits)
