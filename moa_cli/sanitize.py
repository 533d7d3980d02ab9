"""Text from outside moa, made safe to put on a terminal.

Model answers, server error bodies, model ids, config descriptions and stored sessions are all
untrusted: an escape sequence in them could retitle the window, write the clipboard (OSC 52),
clear the screen or hide text. Every control character except newline and tab is made visible
instead: ESC becomes the four characters `\\x1b`, so the sequence after it is plain, harmless text
and nothing is silently lost. Bidirectional-override characters are shown the same way, since
they reorder what the reader sees.

One `str.translate` per piece of text: linear, and cheap enough for every streamed chunk.
"""

from __future__ import annotations

import json

_KEEP = {"\n", "\t"}
_UNSAFE = [chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0)) if chr(c) not in _KEEP]
# Explicit bidi embeddings, overrides and isolates (Trojan Source), and the line/paragraph
# separators some terminals and JSON consumers treat as line breaks.
_UNSAFE += [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029)]

_VISIBLE = {ord(ch): (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}") for ch in _UNSAFE}
# JSON text may hold any character; these are escaped so a terminal showing the JSON is safe too.
_JSON_ESCAPES = {ord(ch): f"\\u{ord(ch):04x}" for ch in _UNSAFE if ord(ch) >= 0x7F}


def terminal_safe(text: str) -> str:
    """`text` with every control character but newline and tab made visible (`\\x1b`, `\\x9b`)."""
    return text.translate(_VISIBLE)


def one_line_safe(text: str) -> str:
    """Terminal-safe and on one line: for error and warning lines, model ids and titles."""
    return " ".join(terminal_safe(text).split())


def json_dumps(data, **kwargs) -> str:
    """JSON that keeps non-ASCII text readable but never contains a raw control character
    (json escapes C0 itself; DEL, C1 and the bidi/separator characters are escaped here)."""
    return json.dumps(data, ensure_ascii=False, **kwargs).translate(_JSON_ESCAPES)
