"""The code inside an answer to a HumanEval problem, and the program that tests it.

Models answer in many shapes: a fenced block or bare code, prose around it, the whole function
or only its body. `program_for` turns any of them into one Python program: the problem's own
prompt (imports, helpers, signature) where the answer leaves them out, then the answer's code,
then the problem's tests.
"""

from __future__ import annotations

import ast
import re
import textwrap

FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)
MAX_TRIMMED_LINES = 40  # prose after code is a few lines; this bounds the work on a hopeless answer
CODE_START = re.compile(r"(def |async def |class |import |from \S+ import |@|\s)")


def extract_code(answer: str, entry_point: str) -> str:
    """The answer's code: the fenced block that defines `entry_point` (else the first Python
    block, else the longest), or for an unfenced answer the code part of it."""
    blocks = [(lang.lower(), body) for lang, body in FENCE.findall(answer)]
    if blocks:
        defining = [body for _, body in blocks if _defines(body, entry_point)]
        python = [body for lang, body in blocks if lang in ("python", "py", "python3")]
        code = (defining or python or [max((body for _, body in blocks), key=len)])[0]
    else:
        code = _drop_prose_before(answer)
    return _longest_parsable_prefix(code.rstrip() + "\n")


def program_for(problem: dict, answer: str) -> str:
    """A program that runs the answer's code against the problem's tests (`check(entry_point)`)."""
    entry = problem["entry_point"]
    code = extract_code(answer, entry)
    prompt = problem["prompt"]
    if _defines(code, entry):
        # The whole function: keep what the prompt defines before it (imports, helpers).
        head = prompt[: m.start()] if (m := re.search(rf"^def {re.escape(entry)}\b", prompt, re.M)) else ""
        solution = head + "\n" + code
    else:
        # Only the body: it goes under the prompt's signature, indented if it was not.
        body = code if code[:1].isspace() or not code.strip() else textwrap.indent(code, "    ")
        solution = prompt + body
    return f"{solution}\n\n{problem['test']}\n\ncheck({entry})\n"


def _defines(code: str, entry_point: str) -> bool:
    return re.search(rf"^\s*(async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.M) is not None


def _drop_prose_before(text: str) -> str:
    """Skip leading lines of prose ("Here is the function:") up to the first line of code."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip() and CODE_START.match(line):
            return "\n".join(lines[index:])
    return text


def _longest_parsable_prefix(code: str) -> str:
    """Cut trailing prose ("This works because ...") off: the longest prefix of whole lines that
    parses. Code that never parses is returned as it is, to fail in the test run."""
    lines = code.splitlines()
    for end in range(len(lines), max(len(lines) - MAX_TRIMMED_LINES, 0), -1):
        candidate = "\n".join(lines[:end]) + "\n"
        try:
            ast.parse(textwrap.dedent(candidate))  # a bare body parses too: `return` is legal here
        except (SyntaxError, ValueError):
            continue
        return candidate
    return code
