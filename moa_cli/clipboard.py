"""Putting text on the clipboard (`/copy` in chat), with the tools the system already has.

In order: the first of wl-copy (Wayland), xclip or xsel (X11), pbcopy (macOS), clip.exe (Windows,
WSL) that is on PATH and has a display to talk to; otherwise, on a terminal, OSC 52, the escape
sequence that asks the terminal itself to set the clipboard (most modern terminals, tmux with
`set-clipboard on`, and it works over ssh). Where there is neither, the caller says so.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys

OSC52_CAP = 100_000  # bytes of base64; terminals drop longer sequences (xterm's default limit)
TIMEOUT = 5.0  # seconds a clipboard tool may take (xclip forks and returns at once)


def _tools() -> list[list[str]]:
    tools = []
    if os.environ.get("WAYLAND_DISPLAY"):
        tools.append(["wl-copy"])
    if os.environ.get("DISPLAY"):
        tools += [["xclip", "-selection", "clipboard", "-in"], ["xsel", "--clipboard", "--input"]]
    tools += [["pbcopy"], ["clip.exe"]]
    return tools


def copy(text: str) -> str | None:
    """Copy `text`; returns how it was copied ("xclip", "OSC 52"), or None when nothing could."""
    data = text.encode("utf-8")
    for command in _tools():
        path = shutil.which(command[0])
        if path is None:
            continue
        try:
            result = subprocess.run([path, *command[1:]], input=data, timeout=TIMEOUT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0:
            return command[0]
    return _osc52(data)


def _osc52(data: bytes) -> str | None:
    try:
        if not sys.stdout.isatty():
            return None
        encoded = base64.b64encode(data).decode("ascii")
        if len(encoded) > OSC52_CAP:
            return None
        # Only base64 goes inside the sequence: the copied text can never be read as a command.
        sys.stdout.write(f"\x1b]52;c;{encoded}\x07")
        sys.stdout.flush()
        return "OSC 52"
    except (OSError, ValueError, AttributeError):
        return None
