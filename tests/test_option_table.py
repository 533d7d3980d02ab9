"""The option table (config/options.py) and everything derived from it, in-process: the flags of
`ask` and `chat`, Overrides, `/set` in chat, serve's request fields and config checks; `--seed`
reaching the requests, directly and through serve; bench's `--sample-seed`."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest
import typer

from moa_cli import cli, slash
from moa_cli.config import ConfigSource, Overrides
from moa_cli.config.options import FLAG_OPTIONS, OPTIONS, REQUEST_OPTIONS, Kind, Scope, find
from moa_cli.errors import EXIT_USAGE, ConfigError, UsageError
from moa_cli.repl import Chat
from moa_cli.server import protocol
from moa_cli.server.protocol import ApiError
from moa_cli.service import TurnService

MIX = ("-r", "openai:r1,openai:r2", "-a", "openai:agg")
QUESTION = [{"role": "user", "content": "q"}]


@pytest.fixture
def source(server, tmp_path, monkeypatch):
    """A config source whose openai provider is the tests' fake server."""
    monkeypatch.setenv("MOA_HOME", str(tmp_path / "home"))
    env = {"OPENAI_API_KEY": "sk-test-0123456789", "OPENAI_BASE_URL": server.v1}
    config = {"defaults": {"mix": "t", "retries": 0},
              "mixes": {"t": {"references": ["openai:r1", "openai:r2"], "aggregator": "openai:agg"}}}
    return ConfigSource(env, config, tmp_path / "config.toml")


def flags_of(command: str) -> dict[str, typer.core.click.Option]:
    click_command = typer.main.get_command(cli.app).commands[command]
    return {name: p for p in click_command.params for name in p.opts}


# ---------------------------------------------------------------- derived from the table


@pytest.mark.parametrize("command", ["ask", "chat"])
def test_every_flag_option_is_a_flag_with_the_tables_help(command, capsys):
    flags = flags_of(command)
    for option in (o for o in FLAG_OPTIONS if command in o.commands):
        assert option.flag in flags, option.name
        assert flags[option.flag].help == option.help_text()
        if option.short:
            assert flags[option.flag] is flags["-" + option.short]
    assert cli.run([command, "--help"]) == 0
    shown = capsys.readouterr().out
    assert all(o.flag in shown for o in FLAG_OPTIONS if command in o.commands)


def test_overrides_has_one_field_per_flag_and_the_table_defaults_are_runoptions():
    from moa_cli.config import RunOptions

    assert [f.name for f in dataclasses.fields(Overrides)] == [o.name for o in FLAG_OPTIONS]
    run_defaults = {f.name: f.default for f in dataclasses.fields(RunOptions) if f.name != "extra"}
    assert run_defaults == {name: find(name).default for name in run_defaults}


def test_server_scope_options_are_never_request_fields_and_request_fields_are_unique():
    assert not [o for o in REQUEST_OPTIONS if o.scope is Scope.SERVER]
    names = [name for o in REQUEST_OPTIONS for name in o.request]
    assert len(names) == len(set(names))


def test_find_accepts_the_spellings_a_user_types():
    assert find("max-tokens") is find("--max-tokens") is find("MAX_TOKENS") is find("max_tokens")
    assert find("nope") is None


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.kind in (Kind.INT, Kind.FLOAT)], ids=lambda o: o.name)
def test_every_number_is_bounded_on_both_sides(option, source):
    assert option.low is not None and option.high is not None and option.expected
    assert option.check(option.low) and option.check(option.high)
    too_big = int(option.high) + 1 if option.kind is Kind.INT else option.high * 2 + 1
    assert not option.check(too_big) and not option.check(10**400) and not option.check(True)
    if option.config:  # the same rule in a config file
        with pytest.raises(ConfigError):
            ConfigSource({}, {"defaults": {option.name: too_big}}).settings()
    if option.is_flag:  # ... and on the command line
        with pytest.raises(UsageError):
            source.settings(Overrides(**{option.name: too_big}))


def test_a_bad_flag_value_is_a_usage_error_in_process(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MOA_HOME", str(tmp_path))
    assert cli.run(["ask", "--seed", "many", "q"]) == EXIT_USAGE  # not a number: typer says so
    assert cli.run(["chat", "--seed", str(2**64)]) == EXIT_USAGE  # out of bounds: the table's rule
    assert cli.run(["chat", "--temperature", "2.5"]) == EXIT_USAGE
    assert capsys.readouterr().err.count("\n") == 3  # one line each


# ---------------------------------------------------------------- /set in chat


def chat_of(source: ConfigSource, overrides=Overrides()) -> Chat:
    return Chat(TurnService(source.settings(overrides)), source=source, piped=True, plain=True)


def test_set_changes_any_chat_option_and_the_aliases_still_work(source, capsys):
    chat = chat_of(source, Overrides(temperature=0.5))

    async def main():
        await slash.dispatch(chat, "/set seed 7")
        await slash.dispatch(chat, "/set max-tokens 40")
        await slash.dispatch(chat, "/set fallback off")
        await slash.dispatch(chat, "/rounds 2")
        await slash.dispatch(chat, "/set references openai:x,openai:y")
        await chat.service.aclose()

    asyncio.run(main())
    settings = chat.settings
    assert {(m.seed, m.max_tokens, m.temperature) for m in settings.mix.models()} == {(7, 40, 0.5)}
    assert settings.options.fallback is False
    assert [[m.label for m in layer] for layer in settings.mix.layers] == [["openai:x", "openai:y"]] * 2
    capsys.readouterr()


@pytest.mark.parametrize("line", ["/set seed x", "/set temperature 9", "/set nosuch 1", "/set seed",
                                  "/set fallback maybe", "/set timeout inf"])
def test_set_with_a_bad_name_or_value_is_a_usage_error_and_changes_nothing(source, line):
    chat = chat_of(source)
    before = chat.settings
    with pytest.raises(UsageError):
        asyncio.run(slash.dispatch(chat, line))
    assert chat.settings == before


def test_set_alone_lists_every_option_and_tab_completes_names(source, capsys):
    chat = chat_of(source)
    asyncio.run(slash.dispatch(chat, "/set"))
    listed = capsys.readouterr().err  # piped: what chat says goes to stderr
    assert all(o.name.replace("_", "-") in listed for o in FLAG_OPTIONS if "chat" in o.commands)
    assert ("seed", 2) in set(slash.completions(chat, "/set se"))


# ---------------------------------------------------------------- serve's request fields


def parse(**fields) -> protocol.ChatCall:
    return protocol.parse_chat_request(json.dumps({"model": "moa", "messages": QUESTION, **fields}).encode(), {})


def test_request_fields_become_overrides():
    assert parse().overrides == Overrides()
    call = parse(seed=3, temperature=1, max_tokens=10, max_completion_tokens=20)
    assert call.overrides == Overrides(seed=3, temperature=1.0, max_tokens=20)
    assert isinstance(call.overrides.temperature, float)


@pytest.mark.parametrize("field,value", [("seed", 2**64), ("seed", "1"), ("seed", 1.5), ("temperature", 3),
                                         ("max_tokens", 0), ("max_completion_tokens", True)])
def test_a_request_field_out_of_bounds_is_a_400_naming_it(field, value):
    with pytest.raises(ApiError) as caught:
        parse(**{field: value})
    assert (caught.value.status, caught.value.param) == (400, field)


def test_serve_settings_for_a_request_carry_its_options(source):
    from moa_cli.server.catalog import Catalog

    catalog = Catalog(source, source.settings(Overrides(log=False)))
    settings = catalog.settings_for("moa:t", Overrides(seed=11, temperature=0.1))
    assert {(m.seed, m.temperature) for m in settings.mix.models()} == {(11, 0.1)}
    alone = catalog.settings_for("openai:solo", Overrides(seed=12))
    assert (alone.mix.rounds, alone.mix.aggregator.seed) == (0, 12)


# ---------------------------------------------------------------- --seed reaches the models


def test_seed_is_sent_with_every_call(source, server):
    settings = source.settings(Overrides(seed=42))

    async def main():
        service = TurnService(settings)
        try:
            return await service.run("q")
        finally:
            await service.aclose()

    assert asyncio.run(main()).ok
    assert sorted((r["model"], r["body"].get("seed")) for r in server.requests()) == [
        ("agg", 42), ("r1", 42), ("r2", 42)]


def test_without_seed_none_is_sent(source, server):
    async def main():
        service = TurnService(source.settings())
        try:
            return await service.run("q")
        finally:
            await service.aclose()

    assert asyncio.run(main()).ok
    assert all("seed" not in r["body"] for r in server.requests())


def test_a_requests_seed_reaches_the_models_through_serve(source, server):
    from starlette.testclient import TestClient

    from moa_cli.server.app import create_app

    app = create_app(source.settings(Overrides(log=False)), source=source)
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        reply = client.post("/v1/chat/completions", json={"model": "moa", "messages": QUESTION, "seed": 5})
    assert reply.status_code == 200, reply.text
    assert {r["body"].get("seed") for r in server.requests()} == {5}


# ---------------------------------------------------------------- bench --sample-seed


def test_bench_sample_seed_picks_the_items_and_seed_is_no_bench_flag(server, tmp_path, monkeypatch, capsys):
    from moa_cli.bench.suites import load_suite, select

    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text('[mixes.solo]\nreferences = ["openai:r1"]\naggregator = "openai:agg"\n')
    monkeypatch.setenv("MOA_HOME", str(home))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    monkeypatch.setenv("OPENAI_BASE_URL", server.v1)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert cli.run(["bench", "chat", "--mix", "solo", "--sample", "2", "--sample-seed", "5", "--out", str(out)]) == 0
    plan = json.loads((out / "run.json").read_text())
    expected = [item.id for item in select(load_suite("chat").items, sample=2, seed=5)]
    assert expected != [item.id for item in select(load_suite("chat").items, sample=2, seed=6)]
    assert plan["items"] == expected
    assert cli.run(["bench", "chat", "--seed", "5"]) == EXIT_USAGE
    capsys.readouterr()
