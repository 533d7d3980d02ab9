"""Streaming Markdown in linear time: a stable prefix printed once, a short live tail.

Re-rendering a whole answer on every chunk costs time quadratic in its length (a 600-line code
block took minutes). Here the text is fed in as it arrives and split, line by line, into what can
no longer change and what still can:

- top-level blocks (paragraphs, headings, lists, tables, quotes) are committed as soon as a later
  block has begun: Markdown's block structure guarantees the earlier one is final;
- a fenced code block at the top level is committed one finished line at a time (blank lines wait
  until a non-blank line follows, since trailing blank lines of a block are dropped);
- a paragraph that keeps growing with no blank line is committed a wrapped line at a time, where
  the wrapped words map one to one onto the source words (no inline markup in between).

Committed pieces are rendered with the same Rich elements, the same width and the same blank line
between blocks as a one-shot `Markdown(text)`, so what ends on screen reads exactly the same.
Only the uncommitted tail (bounded in the common cases) is rendered again for the live region.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rich.console import Console, ConsoleOptions, RenderableType
from rich.markdown import Markdown
from rich.segment import Segment, Segments
from rich.syntax import Syntax
from rich.text import Text

CODE_THEME = "monokai"
PARAGRAPH_CUT = 2000  # characters of one growing paragraph before its wrapped lines are committed
PARAGRAPH_FORCE = 16000  # past this, commit at a source line break even if not exactly like one-shot
TAIL_LINES = 6  # rendered lines the live tail shows

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_BLOCK_START = re.compile(r"^ {0,3}(#{1,6}(\s|$)|>|[-*+](\s|$)|\d{1,9}[.)](\s|$)|\||[-=*_]{3,}\s*$|<)")
_LIST_ITEM = re.compile(r"^ {0,3}([-*+]|\d{1,9}[.)])(\s|$)")
_CONTAINERS = ("bullet_list_open", "ordered_list_open", "blockquote_open", "table_open")
_INLINE_MARKUP = re.compile(r"[*_`~\[\]<>\\&!|]")


def markdown(text: str) -> Markdown:
    """How moa renders outside Markdown: no hyperlink escapes, Rich's own code theme."""
    return Markdown(text, code_theme=CODE_THEME, hyperlinks=False)


@dataclass
class Piece:
    """Something to print for good: a renderable, preceded by a blank line when `gap`."""

    renderable: RenderableType
    gap: bool = False


def top_level_blocks(doc: Markdown) -> list[tuple[int, int, str]]:
    """(first line, end line, token type) of each top-level block, as Rich's parser saw them."""
    blocks = []
    for token in doc.parsed:
        if token.level == 0 and token.nesting in (0, 1) and token.map is not None:
            blocks.append((token.map[0], token.map[1], token.type))
    return blocks


@dataclass
class _Fence:
    marker: str  # the opening run of backticks or tildes
    indent: int
    lexer: str
    committed_any: bool = False
    held: list[str] = field(default_factory=list)  # blank lines waiting for a non-blank one
    source: list[str] = field(default_factory=list)  # every line, for a block that ends empty


class MarkdownStream:
    """Feed text with `feed`; it returns the pieces that became final. `tail()` is the live rest."""

    def __init__(self, console: Console, width: int | None = None):
        self.console = console
        self.width = width
        self._partial = ""  # the unfinished last line
        self._pending: list[str] = []  # complete lines of the block(s) not yet committed
        self._continues = False  # _pending continues a paragraph already partly committed
        self._fence: _Fence | None = None
        self._last_type: str | None = None  # type of the last committed top-level block
        self._paragraph_cut_at = PARAGRAPH_CUT
        self._lexers: dict[str, object] = {}

    # ------------------------------------------------------------------ input

    def feed(self, text: str) -> list[Piece]:
        pieces: list[Piece] = []
        self._partial += text
        if "\n" not in text:
            return pieces
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._line(line, pieces)
        return pieces

    def finish(self) -> list[Piece]:
        """The answer is complete: everything left, committed."""
        pieces: list[Piece] = []
        if self._partial:
            self._line(self._partial, pieces)
            self._partial = ""
        if self._fence is not None:
            self._close_fence(pieces, closed=False)
        self._commit_pending(len(self._pending), pieces)
        return pieces

    # ------------------------------------------------------------------ line by line

    def _line(self, line: str, pieces: list[Piece]) -> None:
        if self._fence is not None:
            self._fence_line(line, pieces)
            return
        opener = _FENCE.match(line)
        if opener and not (opener.group(2)[0] == "`" and "`" in opener.group(3)) and self._fence_is_top_level(line):
            self._commit_pending(len(self._pending), pieces)
            info = opener.group(3).strip()
            self._fence = _Fence(opener.group(2), len(opener.group(1)), info.partition(" ")[0] or "text")
            self._fence.source.append(line)
            return
        blank = not line.strip()
        after_blank = bool(self._pending) and not self._pending[-1].strip()
        self._pending.append(line)
        if blank:
            self._after_blank_line(pieces)
        elif after_blank or _BLOCK_START.match(line):
            if not (_LIST_ITEM.match(line) and self._pending and _LIST_ITEM.match(self._pending[0]) and not after_blank):
                self._commit_finished_blocks(pieces)
        elif len(self._pending) > 1 and sum(map(len, self._pending)) > self._paragraph_cut_at:
            self._cut_paragraph(pieces)

    def _fence_is_top_level(self, line: str) -> bool:
        """A fence opens at the top level unless it sits inside a list item or a quote."""
        first = next((p for p in self._pending if p.strip()), None)
        if first is None or not (_LIST_ITEM.match(first) or first.lstrip().startswith(">")):
            return True
        return not line.startswith(" ")

    def _after_blank_line(self, pieces: list[Piece]) -> None:
        """A blank line ends every block but a list (whose next item may follow)."""
        doc = markdown("\n".join(self._pending))
        blocks = top_level_blocks(doc)
        if not blocks:
            return
        if len(blocks) == 1 and blocks[0][2] in ("bullet_list_open", "ordered_list_open"):
            return
        self._pending = []
        self._commit(doc, pieces)

    def _commit_finished_blocks(self, pieces: list[Piece]) -> None:
        """A line that may start a block arrived: every block before the last one is final."""
        blocks = top_level_blocks(markdown("\n".join(self._pending)))
        if len(blocks) >= 2:
            self._commit_pending(blocks[-1][0], pieces)

    def _commit_pending(self, lines: int, pieces: list[Piece]) -> None:
        head, self._pending = self._pending[:lines], self._pending[lines:]
        source = "\n".join(head)
        if source.strip():
            self._commit(markdown(source), pieces)

    def _commit(self, doc: Markdown, pieces: list[Piece]) -> None:
        """`doc`, parsed from lines just taken off `_pending`, is final: print it for good."""
        blocks = top_level_blocks(doc)
        if not blocks:
            return
        # Lists, quotes and tables bring their own blank line (Rich's renderer does so even at
        # the top of a document); every other block gets one unless it continues a paragraph.
        gap = self._gap() and not self._continues and blocks[0][2] not in _CONTAINERS
        pieces.append(Piece(doc, gap=gap))
        self._continues = False
        self._last_type = blocks[-1][2]
        self._paragraph_cut_at = PARAGRAPH_CUT

    def _gap(self) -> bool:
        # Rich puts a blank line between top-level blocks, except after a horizontal rule.
        return self._last_type is not None and self._last_type != "hr"

    # ------------------------------------------------------------------ a long paragraph

    def _cut_paragraph(self, pieces: list[Piece]) -> None:
        """Commit the wrapped lines of a growing paragraph but its last two, where exact."""
        self._commit_finished_blocks(pieces)  # e.g. a heading right before the paragraph
        doc = markdown("\n".join(self._pending))
        blocks = top_level_blocks(doc)
        if len(blocks) != 1 or blocks[0][2] != "paragraph_open":
            self._paragraph_cut_at *= 2  # a list or a table: committed whole when it ends
            return
        source = " ".join(self._pending)
        words = source.split()
        lines = self._render_plain(doc)
        keep = 2
        done_words = sum(len(line.split()) for line in lines[:-keep]) if len(lines) > keep else 0
        head_words = words[:done_words]
        rest = words[done_words:]
        exact = (
            done_words > 0
            and rest
            and " ".join(head_words) == " ".join(" ".join(lines[:-keep]).split())
            and not _INLINE_MARKUP.search(source)
            and not _BLOCK_START.match(rest[0] + " ")
        )
        if exact:
            cut = _nth_word_end(source, done_words)
            head_text, rest_text = source[:cut], source[cut:].lstrip()
            self._pending = [head_text]
            self._commit_pending(1, pieces)
            self._pending = [rest_text]
            self._continues = True
        elif sum(map(len, self._pending)) > PARAGRAPH_FORCE:
            # No exact cut (inline markup everywhere): fall back to a source line break, so
            # the screen never freezes; that one line may wrap differently from a one-shot render.
            self._commit_pending(len(self._pending) - 1, pieces)
            self._continues = True
        else:
            self._paragraph_cut_at = sum(map(len, self._pending)) * 2

    # ------------------------------------------------------------------ fenced code

    def _fence_line(self, line: str, pieces: list[Piece]) -> None:
        fence = self._fence
        fence.source.append(line)
        stripped = line.strip()
        if (len(line) - len(line.lstrip(" ")) <= 3 and stripped.startswith(fence.marker)
                and set(stripped) == {fence.marker[0]}):
            self._close_fence(pieces, closed=True)
            return
        content = line[min(fence.indent, len(line) - len(line.lstrip(" "))):]
        if not content.strip():
            fence.held.append(content)
            return
        self._code_lines([*fence.held, content], pieces)
        fence.held = []

    def _code_lines(self, lines: list[str], pieces: list[Piece]) -> None:
        fence = self._fence
        rendered = self._render_lines(Syntax("\n".join(lines), self._lexer(fence.lexer), theme=CODE_THEME,
                                             word_wrap=True, padding=1))
        # Each piece is a padded Syntax block: keep the top padding line only on the first piece
        # and the bottom one for when the fence closes.
        rendered = rendered[1:-1] if fence.committed_any else rendered[:-1]
        pieces.append(Piece(_lines(rendered), gap=self._gap() and not fence.committed_any))
        if not fence.committed_any:
            self._last_type = "fence"
        fence.committed_any = True

    def _close_fence(self, pieces: list[Piece], closed: bool) -> None:
        fence, self._fence = self._fence, None
        if not fence.committed_any:
            self._pending = fence.source + ([] if closed else [fence.marker])
            self._commit_pending(len(self._pending), pieces)
            return
        bottom = self._render_lines(Syntax("", self._lexer(fence.lexer), theme=CODE_THEME, word_wrap=True,
                                           padding=1))[-1:]
        pieces.append(Piece(_lines(bottom)))
        self._last_type = "fence"

    def _lexer(self, name: str):
        if name not in self._lexers:
            from pygments.lexers import get_lexer_by_name
            from pygments.util import ClassNotFound

            # The options Rich's own Syntax uses for a lexer named by a string.
            options = dict(stripnl=False, ensurenl=True, tabsize=8)
            try:
                self._lexers[name] = get_lexer_by_name(name, **options)
            except ClassNotFound:
                self._lexers[name] = get_lexer_by_name("text", **options)
        return self._lexers[name]

    # ------------------------------------------------------------------ the live tail

    def tail(self) -> RenderableType | None:
        """The uncommitted rest, its last few rendered lines: what the live region shows."""
        if self._fence is not None:
            text = "\n".join([*self._fence.held, self._partial])
            if not text.strip():
                return None
            lines = self._render_lines(Syntax(text, self._lexer(self._fence.lexer), theme=CODE_THEME,
                                              word_wrap=True, padding=1))
            return _lines(lines[1:-1][-TAIL_LINES:])
        source = "\n".join([*self._pending, self._partial])
        if not source.strip():
            return None
        if len(source) > PARAGRAPH_FORCE:  # a huge table or list: show its last source lines plainly
            return Text("\n".join(source.splitlines()[-TAIL_LINES:]), no_wrap=True, overflow="ellipsis")
        return _lines(self._render_lines(markdown(source))[-TAIL_LINES:])

    # ------------------------------------------------------------------ rendering helpers

    def _options(self) -> ConsoleOptions:
        options = self.console.options
        return options.update_width(self.width) if self.width else options

    def _render_lines(self, renderable) -> list[list[Segment]]:
        return self.console.render_lines(renderable, self._options(), pad=True)

    def _render_plain(self, renderable) -> list[str]:
        return ["".join(seg.text for seg in line).rstrip() for line in self._render_lines(renderable)]


def _lines(lines: list[list[Segment]]) -> Segments:
    segments: list[Segment] = []
    for line in lines:
        segments.extend(line)
        segments.append(Segment.line())
    return Segments(segments)


def _nth_word_end(text: str, n: int) -> int:
    """Index just past the n-th whitespace-separated word of `text`."""
    end = 0
    for i, match in enumerate(re.finditer(r"\S+", text)):
        end = match.end()
        if i + 1 == n:
            break
    return end
