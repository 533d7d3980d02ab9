"""The `moa` executable's first code: it runs before anything heavy is imported.

Importing the CLI (typer, rich, click) takes a noticeable moment; a Ctrl-C during it would
otherwise print a Python traceback. Until the CLI is ready, Ctrl-C ends moa with the same one
line and exit code as any other interruption.
"""

import os
import signal
import sys


def _interrupted_while_starting(signum, frame):  # noqa: ARG001 - a signal handler's signature
    os.write(2, b"moa: error: interrupted\n")
    os._exit(130)


def _closed_stdin_reads_as_empty() -> None:
    """`moa chat <&-` starts with no fd 0, so Python's sys.stdin is None and every frontend's
    isatty()/read() would fail; a closed stdin means the same as an empty one (/dev/null). The
    lowest free descriptor is 0, so os.open puts /dev/null there, where child processes see it too."""
    if sys.stdin is None:
        fd = os.open(os.devnull, os.O_RDONLY)
        sys.stdin = open(fd, encoding="utf-8", closefd=False)


def main():
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    _closed_stdin_reads_as_empty()
    from .cli import main as run_cli

    run_cli()
