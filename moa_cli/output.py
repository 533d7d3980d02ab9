"""The process's own output streams, and what happens when writing to them fails.

Listeners write the turn; when that fails the turn still completes and is saved (see
service.py), and the frontend turns the failure into an exit code here: a reader that went
away (`moa ask … | head`) is a normal end, exit 0; anything else (a full disk, a closed
stdout) is one `moa: error:` line and exit code 5.
"""

from __future__ import annotations

import errno
import os
import sys

from .errors import EXIT_OK, EXIT_OUTPUT


class _ClosedStream:
    """Stands in for a standard stream whose file descriptor was closed (`moa ask q >&-`):
    every write fails the way writing to a closed descriptor does."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "the output stream is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "the output stream is closed")


def guard_standard_streams() -> None:
    """Run once at start-up. A closed stdin/stdout/stderr would let the next file moa opens (the
    session database) take its descriptor number, and answers would be written into that file.
    So /dev/null holds the number, and writes to a closed stdout or stderr still fail."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
        if name != "stdin":
            setattr(sys, name, _ClosedStream())
        elif sys.stdin is None:
            # `moa chat <&-`: Python left sys.stdin as None; reading it now gives end of input.
            sys.stdin = open(fd, encoding="utf-8", closefd=False)


def is_closed_reader(error: BaseException) -> bool:
    return isinstance(error, BrokenPipeError) or (isinstance(error, OSError) and error.errno == errno.EPIPE)


def silence_stdout() -> None:
    """After the reader of stdout went away: point it at /dev/null, so the final flush at exit
    does not fail (and print a traceback) on the buffered rest."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass


def exit_code_for_output(error: BaseException) -> int:
    """The exit code for a turn whose output could not be written, saying why when it matters."""
    if is_closed_reader(error):
        silence_stdout()
        return EXIT_OK
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        print_error(f"cannot write the output: {reason}")
        return EXIT_OUTPUT
    print_error(f"cannot show the output: {type(error).__name__}: {error}")
    return EXIT_OUTPUT


def warn(message: str) -> None:
    """One `moa: ...` line on stderr (errors too: see print_error). The message may quote
    outside text (a server's error, a model id): secrets are scrubbed and control characters made
    visible. If stderr itself is gone there is nobody to tell: stay quiet."""
    from .secrets import redact
    from .sanitize import one_line_safe

    try:
        sys.stderr.write(f"moa: {one_line_safe(redact(message))}\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def print_error(message: str) -> None:
    """The one-line form every user-facing error takes, `moa: error: ...`, printed by `warn`:
    secrets scrubbed, control characters from outside text (server messages, model ids) made visible."""
    warn(f"error: {message}")
