"""`slash` sees the chat only through the `ChatState` protocol: it never imports `repl` (not even
for type checking), and `repl.Chat` provides everything the protocol names."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from moa_cli import repl, slash

SLASH = Path(slash.__file__)


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_slash_never_imports_the_repl():
    modules = imported_modules(SLASH)
    assert not {m for m in modules if m in (".repl", "moa_cli.repl")}, modules


def test_the_repls_chat_provides_every_member_of_chat_state():
    members = {name for name in vars(slash.ChatState) if not name.startswith("_")}
    members |= set(slash.ChatState.__annotations__)
    assert {"settings", "say", "ask", "change", "turns", "piped", "show_proposers"} <= members
    chat_members = {name for name, _ in inspect.getmembers(repl.Chat)}
    init = inspect.getsource(repl.Chat.__init__)
    missing = {m for m in members if m not in chat_members and f"self.{m}" not in init}
    assert not missing, missing
