"""Turning arguments and stdin into one user message, with clear errors for bad input."""

from __future__ import annotations

import sys
from typing import BinaryIO, Sequence

from .errors import UsageError


def read_stdin(stream: BinaryIO | None = None) -> str:
    """All of stdin as text. Binary data is refused rather than sent to a model as garbage."""
    stream = stream or sys.stdin.buffer
    data = stream.read()
    if b"\x00" in data:
        raise UsageError("stdin looks binary (it contains NUL bytes); pipe text instead")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"stdin is not UTF-8 text (bad byte at offset {error.start}); pipe text instead") from None


def stdin_has_data() -> bool:
    try:
        return not sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False  # stdin closed


def prompt_from(args: list[str] | None, files: Sequence[str] = ()) -> str:
    """`moa ask Q`, `cat f | moa ask Q` (stdin, blank line, Q), `echo q | moa ask`, `moa ask -`;
    with `-f PATH`, each file goes between stdin and the question (see attachments.py)."""
    from .attachments import compose, read_files

    attached = read_files(files)  # a bad file is refused before stdin is read
    words = list(args or [])
    if words == ["-"]:
        piped, question = (read_stdin() if sys.stdin is not None else ""), ""
    else:
        question = " ".join(words).strip()
        piped = read_stdin() if sys.stdin is not None and stdin_has_data() else ""
    text = compose(question, attached, before=piped) if attached else (
        f"{piped.rstrip()}\n\n{question}" if piped.strip() and question else (question or piped))
    if not text.strip():
        raise UsageError("empty prompt: give a question as an argument or pipe text on stdin")
    return text.strip("\n")
