"""The `moa` executable's first code: it runs before anything heavy is imported.

Importing the CLI (typer, rich, click) takes a noticeable moment; a Ctrl-C during it would
otherwise print a Python traceback. Until the CLI is ready, Ctrl-C ends moa with the same one
line and exit code as any other interruption.
"""

import os
import signal


def _interrupted_while_starting(signum, frame):  # noqa: ARG001 - a signal handler's signature
    os.write(2, b"moa: error: interrupted\n")
    os._exit(130)


def main():
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    from .cli import main as run_cli

    run_cli()
