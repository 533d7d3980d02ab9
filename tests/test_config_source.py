"""The config source and the Settings value: the source owns the env, the file and the mixes;
Settings is data that carries none of them; the package has no resolve<->settings cycle."""

from __future__ import annotations

import ast
import dataclasses
import secrets
from pathlib import Path

import pytest

import moa_cli.config as config_package
from moa_cli.config import ConfigSource, Overrides, Settings
from moa_cli.errors import ConfigError

CONFIG = {
    "providers": {"lab": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "LAB_KEY",
                          "headers": {"X-Team": "${LAB_TEAM}"}}},
    "mixes": {"mine": {"references": ["lab:a"], "aggregator": "lab:b"}},
}


def test_settings_hold_no_raw_env_or_config_and_only_the_variables_providers_read():
    unrelated = secrets.token_hex(16)
    env = {"LAB_KEY": "k" + secrets.token_hex(8), "LAB_TEAM": "t1", "SOMETHING_ELSE": unrelated}
    settings = ConfigSource(env, CONFIG, Path("/cfg.toml")).settings(Overrides(mix="mine"))
    names = {f.name for f in dataclasses.fields(Settings)}
    assert not names & {"env", "config", "config_path"}
    assert {"LAB_KEY", "LAB_TEAM"} <= set(settings.provider_env)
    assert unrelated not in settings.provider_env.values() and unrelated not in repr(settings)
    assert not hasattr(settings, "with_overrides")


def test_the_source_names_the_mixes_and_where_each_comes_from():
    source = ConfigSource({}, CONFIG, Path("/cfg.toml"))
    assert "mine" in source.mix_names() and "local" in source.mix_names()
    assert source.mix_origin("mine") == "/cfg.toml" and source.mix_origin("local") == "built-in"
    assert source.mix_data("mine") == CONFIG["mixes"]["mine"]


def test_sections_are_checked_once_per_source_and_a_broken_mix_fails_any_resolve():
    source = ConfigSource({"LAB_KEY": "k"}, CONFIG)
    assert source.checked is source.checked
    broken = ConfigSource({}, {"mixes": {"bad": {"aggregator": 3}}})
    with pytest.raises(ConfigError):
        broken.settings(Overrides(mix="local"))


def test_changed_goes_through_the_source_and_keeps_earlier_flags():
    source = ConfigSource({"LAB_KEY": "k"}, CONFIG)
    first = source.settings(Overrides(mix="mine", temperature=0.4))
    second = source.changed(first, Overrides(seed=3))
    assert {(m.temperature, m.seed) for m in second.mix.models()} == {(0.4, 3)}
    assert first.mix.aggregator.seed is None  # a value: the first settings did not change


def _imports(module_path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(module_path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
            found.update(a.name for a in node.names)
    return found


def test_settings_and_schema_import_neither_the_source_nor_the_loader():
    here = Path(config_package.__file__).parent
    for name in ("settings.py", "schema.py", "options.py", "layering.py"):
        assert not _imports(here / name) & {"source", "loader", "resolve"}, name
