"""What a terminal user sees: the real `moa` in a pseudo-terminal, read back through `pyte`."""

from __future__ import annotations

import io
import json
import re

from rich.console import Console

from moa_cli.render.mdstream import markdown
from terminal_screen import TerminalRun, contains_run

ANSWER = """# Plan

First paragraph of the answer, long enough to wrap at eighty columns for sure, yes indeed it is.
## Steps
1. read the input
2. add the numbers

```python
def add(a, b):

    return a + b


print(add(1, 2))
```
- one
- two

| name | value |
|------|-------|
| a    | 1     |
| b    | 22    |

---
> a quoted line
that continues lazily

Done, with a [link](http://example.com) and `code`.
"""

REFS = ",".join(f"openai:m{i}" for i in range(1, 9))


def one_shot(text: str, width: int) -> list[str]:
    console = Console(file=io.StringIO(), width=width, color_system=None, emoji=False, highlight=False)
    console.print(markdown(text))
    return [line.rstrip() for line in console.file.getvalue().splitlines()]


def test_the_streamed_answer_reads_exactly_like_a_one_shot_render(moa_env, server):
    server.script("agg", reply=ANSWER)
    run = TerminalRun(["ask", "--rounds", "0", "-a", "openai:agg", "q"], moa_env, rows=24, cols=80)
    assert run.run() == 0, "\n".join(run.transcript())
    transcript = run.transcript()
    expected = one_shot(ANSWER, 80)
    assert contains_run(transcript, expected), "\n".join(transcript)
    # The summary line is set apart from the answer by a blank line.
    summary = next(i for i, line in enumerate(transcript) if re.search(r"\d+\.\d+s · aggregator", line))
    assert transcript[summary - 1] == ""


def test_a_long_code_block_streams_line_by_line_and_ends_whole(moa_env, server):
    code = "\n".join(f"    value_{i} = compute({i})  # step {i}" for i in range(120))
    reply = f"Here:\n\n```python\ndef main():\n{code}\n```\n"
    server.script("agg", reply=reply, chunk_delay=0.002)
    lines_seen = []

    def watch(run):  # while the block streams, finished lines are already on screen
        shown = [line for line in run.display() if "value_" in line]
        lines_seen.append(len(shown))

    run = TerminalRun(["ask", "--rounds", "0", "-a", "openai:agg", "q"], moa_env, rows=40, cols=100)
    assert run.run(watch) == 0
    assert contains_run(run.transcript(), one_shot(reply, 100))
    assert len([n for n in set(lines_seen) if 0 < n]) > 3  # it grew step by step, not all at once


def test_eight_reference_panels_all_fit_on_80x24_mid_round(moa_env, server):
    for i in range(1, 9):
        server.script(f"m{i}", reply=" ".join(f"word{k}" for k in range(15)), chunk_delay=0.15)
    seen = []

    def watch(run):
        screen = "\n".join(run.display())
        titles = all(re.search(rf"m{i} · r1", screen) for i in range(1, 9))
        ticking = len(re.findall(r"\d+\.\ds · [1-9]\d* tok", screen)) == 8
        if titles and ticking:
            seen.append(screen)

    run = TerminalRun(["ask", "-r", REFS, "-a", "openai:agg", "q"], moa_env, rows=24, cols=80)
    assert run.run(watch) == 0
    assert seen, "\n".join(run.transcript())
    assert "..." not in seen[0]
    # The round's panels stay on screen above the final answer.
    transcript = "\n".join(run.transcript())
    assert transcript.index("m8 · r1") < transcript.index("agg answer 1: q")


def test_the_aggregating_line_shows_while_the_aggregator_thinks(moa_env, server):
    server.script("agg", delay=1.5)
    seen = []
    run = TerminalRun(["ask", "-r", "openai:m1", "-a", "openai:agg", "q"], moa_env)
    run.run(lambda r: seen.extend(l for l in r.display() if re.search(r"aggregating with agg… \d+\.\ds", l)))
    assert seen
    assert "aggregating with" not in "\n".join(run.transcript())  # gone once the answer is there


def test_truncation_is_never_silent(moa_env, server, moa):
    server.script("m1", reply="a reference cut short", finish_reason="length")
    server.script("agg", reply="an answer that stops", finish_reason="length")
    run = TerminalRun(["ask", "-r", "openai:m1,openai:m2", "-a", "openai:agg", "q"], moa_env, cols=100)
    assert run.run() == 0
    transcript = "\n".join(run.transcript())
    assert "truncated at max_tokens" in transcript  # the reference's panel
    assert "[truncated at max_tokens]" in transcript  # under the final answer
    assert "moa: warning: the answer was truncated" in transcript
    result = moa("ask", "-r", "openai:m1,openai:m2", "-a", "openai:agg", "--json", "q")
    data = json.loads(result.stdout)
    assert data["aggregator"]["finish_reason"] == "length"
    assert {c["model"]: c["finish_reason"] for c in data["rounds"][0]} == {"openai:m1": "length", "openai:m2": "stop"}
    assert "truncated" in result.stderr and any("truncated" in w for w in data["warnings"])


def test_failed_and_cut_panels_give_the_short_reason(moa_env, server):
    server.script("m2", status=500)
    run = TerminalRun(["ask", "-r", "openai:m1,openai:m2", "-a", "openai:agg", "--retries", "0", "q"],
                      moa_env, cols=100)
    assert run.run() == 0
    transcript = "\n".join(run.transcript())
    assert re.search(r"╰─+ HTTP 500 ─╯", transcript), transcript


def test_self_moa_samples_are_labelled(moa_env, server, tmp_path):
    config = tmp_path / "moa.toml"
    config.write_text('[mixes.self]\nlayers = [[{model = "openai:s", temperature = 0.3}, '
                      '{model = "openai:s", temperature = 0.7}]]\naggregator = "openai:agg"\n')
    run = TerminalRun(["ask", "--mix", "self", "q"], {**moa_env, "MOA_CONFIG": str(config)}, cols=100)
    assert run.run() == 0, "\n".join(run.transcript())
    transcript = "\n".join(run.transcript())
    assert "s #1 · t=0.3 · r1" in transcript and "s #2 · t=0.7 · r1" in transcript


HOSTILE = ("plain start \x1b]0;pwned title\x07 osc52 \x1b]52;c;ZWNobyBoaQ==\x07 link "
           "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\ clear \x1b[2J alt \x1b[?1049h csi \u009b31m end")
MODEL_SEQUENCES = [b"\x1b]0;", b"\x1b]52;", b"\x1b]8;", b"\x1b[2J", b"\x1b[?1049h", "\u009b".encode()]


def test_no_escape_sequence_from_a_model_reaches_the_terminal(moa_env, server):
    server.script("m1", reply=HOSTILE)
    server.script("agg", reply="# Title\n\n" + HOSTILE + "\n\n```\n" + HOSTILE + "\n```\n")
    run = TerminalRun(["ask", "-r", "openai:m1", "-a", "openai:agg", "q"], moa_env, cols=120)
    assert run.run() == 0
    for sequence in MODEL_SEQUENCES:
        assert sequence not in run.raw, sequence
    # Every escape moa itself writes is one of its own: colours, cursor moves, erasing, the cursor.
    own = re.compile(rb"\x1b\[[0-9;]*[mABCDGJK]|\x1b\[\?25[lh]|\x1b\[\?7[hl]")
    assert b"\x1b" not in own.sub(b"", run.raw)
    assert "\\x1b]52;c;ZWNobyBoaQ==" in "\n".join(run.transcript())  # shown, not obeyed


def test_pipes_are_sanitized_unless_raw_and_json_escapes_c1(moa, server):
    server.script("agg", reply=HOSTILE)
    plain = moa("ask", "--rounds", "0", "-a", "openai:agg", "q")
    assert "\x1b" not in plain.stdout and "\u009b" not in plain.stdout and "\\x1b]0;" in plain.stdout
    raw = moa("ask", "--rounds", "0", "-a", "openai:agg", "--raw", "q")
    assert raw.stdout.rstrip("\n") == HOSTILE
    data = moa("ask", "--rounds", "0", "-a", "openai:agg", "--json", "q")
    assert "\u009b" not in data.stdout and "\x1b" not in data.stdout
    assert json.loads(data.stdout)["final"] == HOSTILE


def test_warnings_go_to_stderr_not_stdout_on_a_terminal(moa_env, server):
    server.script("m2", status=500)
    run = TerminalRun([], moa_env, shell="moa ask -r openai:m1,openai:m2 -a openai:agg --retries 0 q 2>/dev/null")
    assert run.run() == 0
    transcript = "\n".join(run.transcript())
    assert "agg answer 1: q" in transcript and "moa: warning" not in transcript
