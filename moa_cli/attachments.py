"""Files put in front of a question (`-f PATH` on ask and chat, `/file PATH` in chat).

The documented format, one block per file, in the order given, before the question:

    File: src/app.py
    ````
    <the file's text>
    ````

The fence is three backticks, or one more than the longest run of backticks at the start of a
line in the file, so a file holding Markdown code blocks stays one block. With piped stdin
the order is: stdin, the files, the question, each part separated by a blank line.

Text only: a binary file (a NUL byte, or not UTF-8), a FIFO, a device or a directory is refused
in one line, before any model is called; so are files adding up to more than `TOTAL_CAP` bytes.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .errors import UsageError
from .files import read_small_file

TOTAL_CAP = 1 << 20  # 1 MiB of text is ~250k tokens: past every model's context window already


@dataclass(frozen=True)
class Attachment:
    name: str  # as the user wrote it: what the models are told
    text: str

    def block(self) -> str:
        longest = max((len(m.group(1)) for m in re.finditer(r"^ {0,3}(`{3,})", self.text, re.MULTILINE)), default=0)
        fence = "`" * max(3, longest + 1)
        body = self.text if self.text.endswith("\n") or not self.text else self.text + "\n"
        return f"File: {self.name}\n{fence}\n{body}{fence}"


def read_file(path: str, budget: int = TOTAL_CAP) -> Attachment:
    """One text file, or a UsageError line saying why not."""
    where = Path(path).expanduser()
    try:
        info = os.stat(where)  # stat never blocks, unlike opening a FIFO
    except FileNotFoundError:
        raise UsageError(f"--file {path}: no such file") from None
    except OSError as error:
        raise UsageError(f"--file {path}: {error.strerror or error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UsageError(f"--file {path}: is a directory, not a text file")
    if not stat.S_ISREG(info.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(
            info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "not a regular file"
        raise UsageError(f"--file {path}: is {kind}; only regular text files can be attached")
    if info.st_size > budget:
        raise UsageError(f"--file {path}: too large ({info.st_size:,} bytes); the files of one message may add up "
                         f"to {TOTAL_CAP:,} bytes")
    data = read_small_file(where, "--file", cap=budget)
    if b"\x00" in data:
        raise UsageError(f"--file {path}: looks binary (it contains NUL bytes); only text files can be attached")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"--file {path}: is not UTF-8 text (bad byte at offset {error.start})") from None
    return Attachment(path, text)


def read_files(paths: Iterable[str]) -> list[Attachment]:
    """Every file, in order, within one total size bound."""
    attached: list[Attachment] = []
    budget = TOTAL_CAP
    for path in paths:
        item = read_file(path, budget)
        budget -= len(item.text.encode("utf-8"))
        attached.append(item)
    return attached


def compose(question: str, attached: Iterable[Attachment], before: str = "") -> str:
    """The user message: `before` (piped stdin), then each file's block, then the question."""
    parts = [before.rstrip()] if before.strip() else []
    parts += [item.block() for item in attached]
    if question.strip():
        parts.append(question.strip("\n"))
    return "\n\n".join(parts)
