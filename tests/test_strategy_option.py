"""`--strategy NAME`: one row of the option table (config/options.py) picks a registered strategy,
or a template, for one run: from the command line, chat's `/set strategy`, and a serve request's
`strategy` field. Checked in-process against the registry; one `moa ask` runs it end to end."""

from __future__ import annotations

import asyncio
import json

import pytest

from moa_cli import slash
from moa_cli.config import ConfigSource, Overrides
from moa_cli.config.options import BY_NAME, Scope
from moa_cli.errors import EXIT_USAGE, UsageError
from moa_cli.providers.base import CallableProvider
from moa_cli.providers.pool import ProviderPool
from moa_cli.server.catalog import Catalog
from moa_cli.server.protocol import ApiError, request_overrides
from moa_cli.service import TurnService
from moa_cli.strategies import Role

ENV = {"OPENAI_API_KEY": "k"}
CONFIG = {"mixes": {"m": {"references": ["openai:r1", "openai:r2", "openai:r3"], "aggregator": "openai:agg"}},
          "defaults": {"mix": "m", "retries": 0}}


def source() -> ConfigSource:
    return ConfigSource(env=ENV, config=CONFIG)


def run_turn(settings):
    async def answer(request):
        yield f"answer of {request.model}"

    async def main():
        service = TurnService(settings, pool=ProviderPool(lambda name: CallableProvider(answer, name)))
        return await service.run("what is MoA?", history=[])

    return asyncio.run(main())


def test_the_option_is_one_run_scoped_row_that_sets_the_mixes_own_key():
    option = BY_NAME["strategy"]
    assert option.scope is Scope.RUN and option.mix_key
    assert option.commands == {"ask", "chat"} and option.request == ("strategy",)


def test_the_flag_replaces_the_mixes_strategy_and_keeps_its_name_and_models():
    plain = source().settings()
    chosen = source().settings(Overrides(strategy="peer-review"))
    assert plain.mix.strategy == "synthesize" and chosen.mix.strategy == "peer-review"
    assert chosen.mix.name == plain.mix.name == "m"
    assert chosen.mix.models() == plain.mix.models()


def test_a_turn_with_the_flag_runs_the_chosen_strategy():
    outcome = run_turn(source().settings(Overrides(strategy="peer-review")))
    assert outcome.ok
    assert [rnd[0].call.role for rnd in outcome.turn.rounds] == [Role.REFERENCE, Role.REVIEWER]


def test_a_template_is_a_strategy_too():
    settings = source().settings(Overrides(strategy="Merge these: {answers}"))
    assert settings.mix.strategy == "Merge these: {answers}"


@pytest.mark.parametrize("bad", ["no-such-strategy", "", "   "])
def test_an_unknown_strategy_is_a_usage_error_naming_the_flag(bad):
    with pytest.raises(UsageError) as caught:
        source().settings(Overrides(strategy=bad))
    assert caught.value.exit_code == EXIT_USAGE
    assert caught.value.message.startswith("--strategy:")
    assert bad.strip() == "" or bad not in caught.value.message  # a string the user gave is not echoed


def test_chat_set_strategy_changes_the_next_turns_strategy():
    class Chat:  # the part of slash.ChatState that /set uses
        def __init__(self):
            self.source = source()
            self.settings = self.source.settings()

        def change(self, **change):
            self.settings = self.source.changed(self.settings, Overrides(**change))

    chat = Chat()
    slash.set_option(chat, "strategy rank")
    assert chat.settings.mix.strategy == "rank"
    slash.set_option(chat, "temperature 0.3")  # a later change keeps the strategy
    assert chat.settings.mix.strategy == "rank"
    with pytest.raises(UsageError):
        slash.set_option(chat, "strategy nope")
    assert chat.settings.mix.strategy == "rank"


def test_a_serve_request_field_picks_the_strategy_and_a_bad_one_is_a_400():
    assert request_overrides({"strategy": "peer-review"}) == Overrides(strategy="peer-review")
    with pytest.raises(ApiError) as caught:
        request_overrides({"strategy": 3})
    assert caught.value.status == 400
    catalog = Catalog(source(), source().settings())
    assert catalog.settings_for("moa", Overrides(strategy="rank")).mix.strategy == "rank"
    with pytest.raises(ApiError) as caught:
        catalog.settings_for("moa", Overrides(strategy="nope"))
    assert caught.value.status == 400


def test_moa_ask_with_the_flag_runs_peer_review_against_the_fake_server(moa, server):
    for model in ("r1", "r2", "r3", "agg"):
        server.script(model, reply=f"{model} says")
    out = moa("ask", "-r", "openai:r1,openai:r2,openai:r3", "-a", "openai:agg", "--strategy", "peer-review",
              "--retries", "0", "--json", "what is MoA?")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert [[r["role"] for r in rnd] for rnd in data["rounds"]] == [["reference"] * 3, ["reviewer"] * 3]
    assert moa("ask", "--strategy", "nope", "q").returncode == EXIT_USAGE


def test_a_restored_session_mix_still_runs_the_flags_strategy():
    settings = source().settings(Overrides(strategy="rank"))
    stored = source().settings().mix  # the mix a session saved, before the flag
    assert settings.with_mix(stored).mix.strategy == "rank"
    assert source().settings().with_mix(stored).mix.strategy == "synthesize"
