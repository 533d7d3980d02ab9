"""The one way tests start the real `moa`: as a subprocess, or in a pseudo-terminal.

    moa_command()                          the command that runs moa, resolved here and only here
    run_moa(*args, env=, cwd=, input=)     run to the end: a Result (exit code, stdout, stderr)
    spawn_moa(*args, env=, cwd=)           a subprocess.Popen, for signals and partial reads
    spawn_moa(*args, env=, cwd=, pty=True) a pexpect child in a pseudo-terminal (rows x cols)

Fixtures built on these: `moa` (conftest.py), `moa_serve` (serving.py), `TerminalRun`
(terminal_screen.py, a pty read back through pyte), `chat` (test_chat.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# The installed `moa` script when there is one (what users run); else this interpreter's module.
MOA = shutil.which("moa") or ""


def moa_command() -> list[str]:
    return [MOA] if MOA else [sys.executable, "-m", "moa_cli"]


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def _clean(env: dict) -> dict:
    """The environment without the variables a caller set to None (to unset them)."""
    return {k: v for k, v in env.items() if v is not None}


def run_moa(*args: str, env: dict, cwd: str | Path, input: str | bytes | None = None,
            timeout: float = 60) -> Result:
    proc = subprocess.run(
        moa_command() + list(args),
        input=input.encode() if isinstance(input, str) else input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True, env=_clean(env), cwd=cwd, timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))


def spawn_moa(*args: str, env: dict, cwd: str | Path | None = None, pty: bool = False, rows: int = 24,
              cols: int = 80, timeout: float = 60, encoding: str | None = None, term: str = "xterm",
              **popen_options):
    """Start moa and return at once. With `pty`, a pexpect child on a rows x cols terminal (TERM,
    COLUMNS and LINES set to match); else a subprocess.Popen given `popen_options`."""
    command = moa_command() + list(args)
    if not pty:
        popen_options.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(command, env=_clean(env), cwd=cwd, **popen_options)
    import pexpect

    env = {**_clean(env), "TERM": term, "COLUMNS": str(cols), "LINES": str(rows)}
    return pexpect.spawn(command[0], command[1:], env=env, cwd=None if cwd is None else str(cwd),
                         dimensions=(rows, cols), timeout=timeout, encoding=encoding)
