"""The stable-prefix Markdown splitter: what it commits early, and that the result reads exactly
like a one-shot render, however the text is chunked."""

from __future__ import annotations

import io
import random

import pytest
from rich.console import Console

from moa_cli.render.mdstream import MarkdownStream, markdown


def console(width: int) -> Console:
    return Console(file=io.StringIO(), width=width, color_system=None, emoji=False, highlight=False)


def one_shot(text: str, width: int = 60) -> str:
    c = console(width)
    c.print(markdown(text))
    return c.file.getvalue()


def streamed(text: str, width: int = 60, seed: int = 0, max_chunk: int = 7, progress=None) -> str:
    """Feed `text` in random chunks; `progress(committed_output, fed_so_far)` after each chunk."""
    c = console(width)
    stream = MarkdownStream(c)
    rng = random.Random(seed)

    def out(pieces):
        for piece in pieces:
            if piece.gap:
                c.print()
            c.print(piece.renderable)

    i = step = 0
    while i < len(text):
        n = rng.randint(1, max_chunk)
        out(stream.feed(text[i:i + n]))
        i, step = i + n, step + 1
        if step % 25 == 0:
            stream.tail()  # the live tail is drawn now and then; it must not change what commits
        if progress is not None:
            progress(c.file.getvalue(), text[:i])
    out(stream.finish())
    return c.file.getvalue()


DOCS = {
    "blocks": "# Title\n\nA paragraph.\nStill the paragraph.\n## Heading right after\ntext\n\n---\n\n> quote\n> more\n\nend\n",
    "code": "Intro:\n```python\ndef f(x):\n\n    return x\n\n\n\nclass A:\n\tpass\n```\nafter the code\n",
    "tilde fence, unclosed": "~~~js\nlet a = 1;\n\nlet b = 2;\n",
    "empty fence": "```\n\n\n```\n\ntext\n",
    "lists": "- a\n- b\n\n  continued item\n- c\n\n1. one\n2. two\n\n3. three\n\nafter\n",
    "nested code in a list": "- item\n\n  ```\n  inner code\n  ```\n- next\n",
    "tables": "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n\ntext after\n\n| c |\n|---|\n| 5 |\n",
    "setext": "Heading\n=======\n\nSub\n---\ntext\n",
    "no blank lines": "\n".join(f"line {i} of a long answer with single newlines and no blank line at all" for i in range(120)),
    "markup everywhere": "\n".join(f"**bold {i}** and `code {i}` and *em*" for i in range(80)),
    "hr then heading": "text\n\n***\n# H1\n\n---\n- list after rule\n",
}


@pytest.mark.parametrize("name", DOCS)
@pytest.mark.parametrize("width", [40, 80])
def test_streamed_output_equals_one_shot(name, width):
    text = DOCS[name]
    for seed in range(3):
        assert streamed(text, width, seed=seed) == one_shot(text, width), (name, seed)


def test_code_lines_are_committed_as_soon_as_they_end():
    text = "```python\n" + "\n".join(f"x_{i} = {i}" for i in range(50)) + "\n```\n"
    seen = []
    streamed(text, progress=lambda out, fed: seen.append((out.count("x_"), fed.count("\n"))))
    # Once line k (1-based, after the opening fence) has its newline, it is on screen.
    for shown, newlines in seen:
        assert shown >= newlines - 1 - 1  # the fence line, and at most one line still being typed


def test_blank_code_lines_wait_for_a_non_blank_line():
    c = console(40)
    stream = MarkdownStream(c)
    stream.feed("```\nfirst\n")
    assert stream.feed("\n\n") == []  # they may be trailing blank lines, which a block drops
    assert stream.feed("second\n")


def test_a_paragraph_with_no_blank_lines_is_committed_while_it_grows():
    text = "\n".join(f"line {i} with plain words to fill the width of the terminal" for i in range(200))
    committed = []
    streamed(text, width=80, progress=lambda out, fed: committed.append((len(out), len(fed))))
    halfway = next(out for out, fed in committed if fed >= len(text) // 2)
    assert halfway > 0  # long before the end, most of it is on screen


def test_a_long_list_without_blank_lines_is_committed_when_a_block_follows():
    items = "".join(f"- item {i}\n" for i in range(30))
    c = console(40)
    stream = MarkdownStream(c)
    assert stream.feed(items) == []  # the list may still grow
    assert stream.feed("\n# Next\n")  # a heading ends it: the list is final


def test_the_tail_is_short():
    c = console(60)
    stream = MarkdownStream(c)
    stream.feed("```\n" + "".join(f"line {i}\n" for i in range(100)) + "partial")
    tail_lines = c.render_lines(stream.tail(), c.options)
    assert len(tail_lines) <= 6
