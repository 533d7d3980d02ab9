"""Mixes and configuration: the resolver (unit), and `moa ask --mix`, `moa mixes`, `moa models`,
`moa config`, `moa keys` end to end against the fake server."""

from __future__ import annotations

import json
import re
import stat
import tomllib
from pathlib import Path

import pytest

from inprocess import run_turn
from moa_cli import strategies
from moa_cli.strategies import messages as strategy_messages, templates
from moa_cli.commands.config import EXAMPLE_CONFIG
from moa_cli.config import builtin_mixes as mixes
from moa_cli.config.toml_write import mix_to_toml
from moa_cli.config import ConfigSource, Overrides, resolve
from moa_cli.errors import ConfigError, UsageError

OPENAI_MIX = ["-r", "openai:m1,openai:m2", "-a", "openai:agg"]
WITH_KEY = {"TOGETHER_API_KEY": "tgp-unit-test-0123456789"}
# Distinctive fake secrets: any of them showing up in any output is a leak.
STORED_KEY = "sk-stored-SECRETKEY-7f3a9c2e41"
ENV_KEY = "sk-env-SECRETKEY-b81d0e5a77"
HEADER_TOKEN = "hdr-SECRETTOKEN-5c2e8f19aa"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Unit tests read no real key file or config: MOA_HOME points into tmp."""
    monkeypatch.setenv("MOA_HOME", str(tmp_path / "unit-home"))
    monkeypatch.delenv("MOA_CONFIG", raising=False)


def config_of(text: str) -> dict:
    return tomllib.loads(text)


def run(overrides=Overrides(), config_text: str = "", env=WITH_KEY, stored=None):
    return resolve(overrides, env, config_of(config_text), Path("/cfg/config.toml"), stored_keys=stored or {})


@pytest.fixture
def config_file(moa_env):
    """Write the config file the `moa` subprocess reads (MOA_HOME/config.toml)."""
    path = Path(moa_env["MOA_HOME"]) / "config.toml"

    def write(text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write


# ---------------------------------------------------------------- built-in mixes


EXPECTED_BUILTINS = {
    # name: (rounds, references per round, aggregator, strategy)
    "together-2025": (1, 4, "together:deepseek-ai/DeepSeek-V3", "synthesize"),
    "together-moa": (2, 6, "together:Qwen/Qwen2.5-72B-Instruct-Turbo", "synthesize"),
    "moa-lite": (1, 6, "together:Qwen/Qwen2.5-72B-Instruct-Turbo", "synthesize"),
    "coding-oss": (1, 2, "together:meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo", "coding"),
    "self-moa": (1, 4, "together:deepseek-ai/DeepSeek-V3", "synthesize"),
    "local": (1, 3, "local:smollm2", mixes.LOCAL_SYNTHESIZE),  # a short-synthesis template
}


def test_every_builtin_mix_resolves_and_says_where_it_comes_from():
    assert set(mixes.BUILTIN_MIXES) == set(EXPECTED_BUILTINS)
    assert mixes.DEFAULT_MIX == "together-2025"
    for name, (rounds, refs, aggregator, strategy) in EXPECTED_BUILTINS.items():
        mix = run(Overrides(mix=name)).mix
        assert (mix.rounds, len(mix.layers[0]), mix.aggregator.label, mix.strategy) == (
            rounds, refs, aggregator, strategy), name
        assert strategy in strategies.names() or templates.is_template(strategy)
        data = mixes.BUILTIN_MIXES[name]
        assert data["description"] and data["source"], name
    assert "2406.04692" in mixes.BUILTIN_MIXES["together-moa"]["source"]
    assert "2406.04692" in mixes.BUILTIN_MIXES["moa-lite"]["source"]
    assert "2502.00674" in mixes.BUILTIN_MIXES["self-moa"]["source"]
    assert "Catena" in mixes.BUILTIN_MIXES["coding-oss"]["source"]
    # The paper's proposers run at its sampling settings in every round.
    paper = run(Overrides(mix="together-moa")).mix
    assert {(m.temperature, m.max_tokens) for layer in paper.layers for m in layer} == {(0.7, 2048)}


def test_self_moa_and_local_sample_one_model_at_varied_temperatures():
    for name, provider in (("self-moa", "together"), ("local", "local")):
        mix = run(Overrides(mix=name)).mix
        refs = mix.layers[0]
        assert len({m.label for m in refs}) == 1 and refs[0].label == mix.aggregator.label
        assert len({m.temperature for m in refs}) == len(refs) > 1
        assert mix.providers() == {provider}


# ---------------------------------------------------------------- flags over a mix


@pytest.mark.parametrize("flags, check", [
    (Overrides(references=("openai:x", "openai:y")),
     lambda m: [[r.label for r in layer] for layer in m.layers] == [["openai:x", "openai:y"]]),
    (Overrides(aggregator="openai:judge"), lambda m: m.aggregator.label == "openai:judge" and m.rounds == 1),
    (Overrides(rounds=3), lambda m: m.rounds == 3 and m.layers[2] == m.layers[0]),
    (Overrides(rounds=0), lambda m: m.layers == () and m.aggregator.label == "together:deepseek-ai/DeepSeek-V3"),
    (Overrides(temperature=0.05), lambda m: {x.temperature for x in m.models()} == {0.05}),
    (Overrides(max_tokens=33), lambda m: {x.max_tokens for x in m.models()} == {33}),
    (Overrides(max_tokens=33, reference_max_tokens=11),
     lambda m: {x.max_tokens for l in m.layers for x in l} == {11} and m.aggregator.max_tokens == 33),
])
def test_flags_override_the_values_of_a_named_mix(flags, check):
    base = run(Overrides(mix="self-moa")).mix
    mix = run(Overrides(mix="self-moa", **{k: v for k, v in vars(flags).items() if v is not None})).mix
    assert check(mix)
    assert mix != base
    # What runs is named by the mix only while its models are the mix's own (issue 9).
    assert mix.name == (mix.describe() if flags.changes_models() else "self-moa")


def test_flags_replace_models_but_a_mix_keeps_its_own_settings_for_them():
    config = """
    [mixes.lab]
    layers = [["openai:a"], ["openai:a"]]
    aggregator = "openai:agg"
    temperature = 0.4
    [mixes.lab.models."openai:new"]
    max_tokens = 50
    """
    settings = run(Overrides(mix="lab", references=("openai:new",)), config)
    mix = settings.mix
    assert mix.rounds == 2  # the mix's rounds are kept
    assert [(m.label, m.temperature, m.max_tokens) for m in mix.layers[1]] == [("openai:new", 0.4, 50)]
    assert settings.notices == ()
    # Without the flag, the table matches no model of the mix: a typo, most likely. Say so.
    (notice,) = run(Overrides(mix="lab"), config).notices
    assert '[mixes.lab] models."openai:new" matches no model' in notice


def test_unknown_prefix_in_a_flag_is_a_together_model_and_rounds_without_references_is_an_error():
    # On the command line the rule holds: an unknown prefix belongs to the model id.
    (ref,) = run(Overrides(references=("mylab:x",))).mix.layers[0]
    assert (ref.provider, ref.model) == ("together", "mylab:x")
    config = '[mixes.solo]\naggregator = "openai:agg"\n'
    with pytest.raises(UsageError, match="no reference models"):
        run(Overrides(mix="solo", rounds=2), config)
    # A Together id with a colon after an org/ path is still a Together model.
    mix = run(Overrides(references=("org/model:tag",), aggregator="openai:a")).mix
    assert mix.layers[0][0].label == "together:org/model:tag"


# ---------------------------------------------------------------- layering


LAYERED = """
[defaults]
temperature = 0.1
max_tokens = 10
system = "from defaults"
reference_max_tokens = 5

[mixes.layered]
layers = [["openai:plain", "openai:tabled", { model = "openai:inline", temperature = 0.4, seed = 9 }]]
aggregator = "openai:agg"
temperature = 0.2

[mixes.layered.models."openai:tabled"]
temperature = 0.3
max_tokens = 30

[mixes.layered.models."openai:inline"]
temperature = 0.35
weight = 2.0
"""


def test_layering_order_defaults_mix_per_model_inline_flags():
    mix = run(Overrides(mix="layered"), LAYERED).mix
    plain, tabled, inline = mix.layers[0]
    # [defaults] < mix-level: temperature 0.2 beats 0.1; reference_max_tokens is the refs' default.
    assert (plain.temperature, plain.max_tokens, plain.system) == (0.2, 5, "from defaults")
    # < per-model table
    assert (tabled.temperature, tabled.max_tokens) == (0.3, 30)
    # < the inline entry (the per-model table still supplies what the entry leaves out)
    assert (inline.temperature, inline.seed, inline.weight) == (0.4, 9, 2.0)
    # The aggregator is not a reference: [defaults] max_tokens, mix-level temperature.
    assert (mix.aggregator.temperature, mix.aggregator.max_tokens) == (0.2, 10)
    # < flags, above everything.
    flagged = run(Overrides(mix="layered", temperature=1.5, system="flag"), LAYERED).mix
    assert {(m.temperature, m.system) for m in flagged.models()} == {(1.5, "flag")}
    assert flagged.layers[0][2].seed == 9  # what flags do not set is kept


def test_defaults_choose_the_mix_and_run_options():
    s = run(config_text='[defaults]\nmix = "moa-lite"\nretries = 5\nproposer_deadline = 9\nfallback = false\n')
    assert s.mix.name == "moa-lite"
    assert (s.options.retries, s.options.proposer_deadline, s.options.fallback) == (5, 9.0, False)
    assert run(Overrides(retries=1), "[defaults]\nretries = 5\n").options.retries == 1  # flags win


def test_references_shorthand_and_rounds():
    config = """
    [mixes.short]
    references = ["openai:a", { model = "openai:b", temperature = 0.9 }]
    rounds = 3
    aggregator = "openai:agg"
    [mixes.cut]
    layers = [["openai:a"], ["openai:b"], ["openai:c"]]
    rounds = 2
    aggregator = "openai:agg"
    [mixes.grow]
    layers = [["openai:a"], ["openai:b"]]
    rounds = 4
    aggregator = "openai:agg"
    """
    short = run(Overrides(mix="short"), config).mix
    assert short.rounds == 3 and all(layer == short.layers[0] for layer in short.layers)
    assert short.layers[0][1].temperature == 0.9
    assert [l[0].model for l in run(Overrides(mix="cut"), config).mix.layers] == ["a", "b"]
    assert [l[0].model for l in run(Overrides(mix="grow"), config).mix.layers] == ["a", "b", "b", "b"]


def source_of(config_text: str = "", env=WITH_KEY) -> ConfigSource:
    return ConfigSource(env, config_of(config_text), Path("/cfg/config.toml"))


def test_a_change_keeps_earlier_flags_and_a_new_mix_drops_old_models():
    source = source_of()
    s = source.settings(Overrides(mix="self-moa", temperature=0.5, references=("openai:x",)), stored_keys={})
    s2 = source.changed(s, Overrides(max_tokens=40))
    assert [m.label for m in s2.mix.layers[0]] == ["openai:x"]
    assert {(m.temperature, m.max_tokens) for m in s2.mix.models()} == {(0.5, 40)}
    s3 = source.changed(s2, Overrides(mix="moa-lite"))
    assert s3.mix.name == "moa-lite" and len(s3.mix.layers[0]) == 6  # -r belonged to the old mix
    assert {m.temperature for m in s3.mix.models()} == {0.5}  # -t sticks


# ---------------------------------------------------------------- the local stand-in


def test_no_key_for_the_default_mix_runs_the_local_mix_with_a_notice():
    s = run(env={})
    assert s.mix.name == "local" and s.mix.providers() == {"local"}
    assert s.notices == () and "TOGETHER_API_KEY" in s.standin and "moa keys set together" in s.standin
    assert source_of(env={}).changed(s, Overrides(temperature=0.2)).all_notices() == ()  # said once


@pytest.mark.parametrize("overrides, config_text, env, stored", [
    (Overrides(), "", WITH_KEY, {}),  # a key in the environment
    (Overrides(), "", {}, {"together": STORED_KEY}),  # a key saved with `moa keys set`
    (Overrides(), '[defaults]\nmix = "together-2025"\n', {}, {}),  # the user chose the mix
    (Overrides(mix="together-2025"), "", {}, {}),  # --mix
    (Overrides(references=("together:a",)), "", {}, {}),  # -r
    (Overrides(aggregator="together:a"), "", {}, {}),  # -a
])
def test_the_local_stand_in_never_replaces_a_choice_or_a_stored_key(overrides, config_text, env, stored):
    s = resolve(overrides, env, config_of(config_text), None, stored_keys=stored)
    assert s.mix.name != "local" and s.all_notices() == ()


# ---------------------------------------------------------------- bad config (unit)


BAD_CONFIGS = [
    # (config text, [substrings of the one error line])
    ("[defaults]\ntemperature = 0.5\nmix = \n", ["invalid TOML", "line 3"]),
    ('[mixes.m]\nlayers = [["nolab:x"]]\naggregator = "openai:a"\n',
     ["[mixes.m] layers[0][0]", "unknown provider 'nolab'", "[providers.NAME]"]),
    ('[mixes.m]\nlayers = [["openai:x"]]\naggregator = "openai:a"\ntemperature = -0.5\n',
     ["[mixes.m] temperature", "expected a number from 0 to 2", "-0.5"]),
    ('[mixes.m]\nlayers = [[{ model = "openai:x", temperature = -1 }]]\naggregator = "openai:a"\n',
     ["[mixes.m] layers[0][0] temperature", "expected a number from 0 to 2"]),
    ('[mixes.m.models."openai:x"]\ntemperature = 3\n', ["models.\"openai:x\" temperature"]),
    ('[mixes.empty]\ndescription = "nothing here"\n', ["[mixes.empty]", "has no models"]),
    ('[mixes.m]\nlayers = [[]]\naggregator = "openai:a"\n', ["[mixes.m] layers[0]", "at least one model"]),
    ('[mixes.m]\nlayers = [["openai:x"]]\n', ["[mixes.m] aggregator", "missing"]),
    ('[mixes.m]\nlayers = [["openai:x"]]\naggregator = "openai:a"\nstrategy = "best"\n',
     ["[mixes.m] strategy", "a template containing {answers}"]),
    ('[mixes.m]\nlayers = [["openai:x"]]\naggregator = "openai:a"\nshuffle = "yes"\n', ["shuffle", "true or false"]),
    ('[mixes.m]\nreferences = ["openai:x"]\nlayers = [["openai:x"]]\naggregator = "openai:a"\n', ["not both"]),
    ("[defaults]\ntemprature = 0.5\n", ["[defaults] unknown key 'temprature'", "temperature"]),
    ('[defaults]\nmix = "nope"\n', ["[defaults] mix", "unknown mix 'nope'", "together-2025"]),
    ("[defaults]\nretries = 99\n", ["[defaults] retries", "0 to 10"]),
    ("[providers.lab]\napi_key_env = \"LAB_KEY\"\n", ["[providers.lab] base_url", "missing"]),
    ('[providers.lab]\nbase_url = "http://x/v1"\nheaders = { "X-A" = 1 }\n', ["[providers.lab] headers"]),
    ('[pricing."openai:x"]\ninput = -1\noutput = 1\n', ['[pricing."openai:x"] input', "at least 0"]),
    ('[pricing."openai:x"]\ninput = 1\n', ['[pricing."openai:x"]', "input and output"]),
    ("[colours]\nx = 1\n", ["unknown section 'colours'"]),
]


@pytest.mark.parametrize("text, expected", BAD_CONFIGS)
def test_bad_config_is_one_error_naming_file_key_and_expectation(text, expected, tmp_path):
    from moa_cli.config import load_config_file

    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        resolve(Overrides(), WITH_KEY, load_config_file(path), path, stored_keys={})
    message = caught.value.message
    assert "\n" not in message and message.startswith(f"config error in {path}")
    for part in expected:
        assert part in message, message
    assert caught.value.exit_code == 2
    assert path.read_text() == text  # never rewritten


def test_a_key_pasted_into_the_config_is_rejected_without_echoing_it():
    for text in (f'[providers.lab]\nbase_url = "http://x/v1"\napi_key = "{STORED_KEY}"\n',
                 f'[providers.lab]\nbase_url = "http://x/v1"\napi_key_env = "{STORED_KEY}"\n'):
        with pytest.raises(ConfigError) as caught:
            run(config_text=text)
        assert STORED_KEY not in caught.value.message
        assert "api_key" in caught.value.message


# ---------------------------------------------------------------- bad config (the real command)


@pytest.mark.parametrize("text, key", [
    ("[defaults]\ntemperature = 0.5\nmix = \n", "line 3"),
    ('[mixes.m]\nlayers = [["mylab:x"]]\naggregator = "openai:a"\n', "unknown provider 'mylab'"),
    ('[mixes.m]\nlayers = [["openai:x"]]\naggregator = "openai:a"\ntemperature = -1\n', "[mixes.m] temperature"),
    ('[mixes.empty]\ndescription = "none"\n', "[mixes.empty] has no models"),
    ("[defaults]\nbogus = 1\n", "[defaults] unknown key 'bogus'"),
])
def test_bad_config_exits_2_with_one_line(moa_inprocess, config_file, server, text, key):
    path = config_file(text)
    for args in (["ask", *OPENAI_MIX, "q"], ["config", "show"]):
        out = moa_inprocess(*args)
        assert out.returncode == 2, (args, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("moa: error: config error in "), out.stderr
        assert str(path) in lines[0] and key in lines[0]
    assert server.requests() == []
    assert path.read_text() == text


def test_unknown_mix_lists_the_known_ones(moa_inprocess, config_file, server):
    config_file('[mixes.mine]\nreferences = ["openai:m1"]\naggregator = "openai:agg"\n')
    out = moa_inprocess("ask", "--mix", "nope", "q")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown mix 'nope'" in lines[0]
    for name in [*mixes.BUILTIN_MIXES, "mine"]:
        assert name in lines[0]
    assert server.requests() == []


# ---------------------------------------------------------------- --mix end to end


def test_mix_from_the_config_with_flag_overrides(moa, config_file, server):
    config_file("""
[mixes.mine]
layers = [["openai:m1", "openai:m2"]]
aggregator = "openai:agg"
temperature = 0.3
max_tokens = 99
""")
    out = moa("ask", "-m", "mine", "q")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "agg answer 1: q"
    assert {r["model"] for r in server.requests()} == {"m1", "m2", "agg"}
    assert {(r["body"]["temperature"], r["body"]["max_tokens"]) for r in server.requests()} == {(0.3, 99)}
    server.log.clear()
    out = moa("ask", "--mix", "mine", "-r", "openai:m3", "-a", "openai:judge", "--rounds", "2",
              "-t", "1.1", "--max-tokens", "7", "q")
    assert out.returncode == 0, out.stderr
    assert [r["model"] for r in server.requests()].count("m3") == 2  # two rounds of the -r model
    assert {r["model"] for r in server.requests()} == {"m3", "judge"}
    assert {(r["body"]["temperature"], r["body"]["max_tokens"]) for r in server.requests()} == {(1.1, 7)}


def test_builtin_mix_runs_against_the_fake_server(server):
    outcome = run_turn(server, Overrides(mix="self-moa"))
    assert outcome.ok
    refs = server.requests("deepseek-ai/DeepSeek-V3")
    assert sorted(r["body"]["temperature"] for r in refs) == [0.3, 0.3, 0.6, 0.8, 1.0]  # 4 samples + aggregator
    assert outcome.turn.to_dict()["mix"] == "self-moa"


# ---------------------------------------------------------------- strategies and shuffle (in-process)


def _aggregator_system(server, model="agg") -> str:
    return server.requests(model)[0]["body"]["messages"][0]["content"]


def test_rank_and_custom_template_reach_the_aggregator(server):
    config = tomllib.loads("""
[mixes.ranked]
layers = [["openai:m1", "openai:m2"]]
aggregator = "openai:agg"
strategy = "rank"

[mixes.custom]
layers = [["openai:m1", "openai:m2"]]
aggregator = "openai:agg"
strategy = "QUESTION<{question}> ANSWERS<{answers}> END"
""")
    assert run_turn(server, Overrides(mix="ranked"), config, question="which?").ok
    system = _aggregator_system(server)
    assert system == templates.RANK.replace("{answers}", strategy_messages.number_answers(
        ["m1 answer 1: which?", "m2 answer 1: which?"]))
    server.log.clear(), server.counts.clear()
    assert run_turn(server, Overrides(mix="custom"), config, question="which?").ok
    system = _aggregator_system(server)
    assert system.startswith("QUESTION<which?> ANSWERS<") and system.endswith("> END")
    assert "m1 answer 1: which?" in system and "m2 answer 1: which?" in system


def _answers(system: str) -> tuple[str, list[str]]:
    """(the template around the answers, the answers without their numbers)."""
    body = system.split("Answers:\n", 1)[1]
    items = re.split(r"(?:^|\n\n)\d+\. ", body)
    return system.split("Answers:\n", 1)[0], [i for i in items if i]


def test_shuffle_changes_only_the_order_of_the_answers(server):
    models = ", ".join(f'"openai:m{i}"' for i in range(1, 7))
    config = tomllib.loads(f"""
[mixes.still]
layers = [[{models}]]
aggregator = "openai:agg"
[mixes.shuffled]
layers = [[{models}]]
aggregator = "openai:agg"
shuffle = true
""")
    assert run_turn(server, Overrides(mix="still"), config).ok
    still = _answers(_aggregator_system(server))
    server.log.clear(), server.counts.clear()
    assert run_turn(server, Overrides(mix="shuffled"), config).ok
    shuffled = _answers(_aggregator_system(server))
    assert still[0] == shuffled[0]  # the same instruction
    assert len(still[1]) == 6 and sorted(still[1]) == sorted(shuffled[1])  # the same answers


# ---------------------------------------------------------------- custom provider and pricing


def test_custom_provider_from_the_config_end_to_end(moa, config_file, server):
    server.api_key = "mylab-only-key-0123456789"
    config_file(f"""
[providers.mylab]
base_url = "{server.v1}"
api_key_env = "MYLAB_KEY"
headers = {{ "X-Team" = "research", "X-Trace" = "${{TRACE_ID}}" }}

[mixes.lab]
references = ["mylab:m1", "mylab:m2"]
aggregator = "mylab:agg"
""")
    env = {"MYLAB_KEY": "mylab-only-key-0123456789", "TRACE_ID": "trace-42", "OPENAI_API_KEY": None}
    out = moa("ask", "--mix", "lab", "q", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "agg answer 1: q"
    assert len(server.requests()) == 3
    for r in server.requests():
        assert r["headers"]["x-team"] == "research" and r["headers"]["x-trace"] == "trace-42"
        assert r["authorized"]
    # Without its key, the provider's variable is named (exit 3), and nothing is sent.
    server.log.clear()
    out = moa("ask", "--mix", "lab", "q", env={**env, "MYLAB_KEY": None})
    assert out.returncode == 3 and "MYLAB_KEY" in out.stderr
    assert server.requests() == []
    # `moa models mylab` lists what the endpoint serves.
    server.known_models = {"m1", "m2", "agg"}
    out = moa("models", "mylab", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["mylab:agg", "mylab:m1", "mylab:m2"]


def test_pricing_table_sets_the_cost(moa, config_file, server):
    out = moa("ask", *OPENAI_MIX, "--json", "price me")
    data = json.loads(out.stdout)
    assert data["usage"]["cost_usd"] is None and set(data["usage"]["unpriced_models"]) == {
        "openai:m1", "openai:m2", "openai:agg"}
    config_file("""
[pricing."openai:m1"]
input = 1000
output = 2000
[pricing."openai:m2"]
input = 10
output = 20
[pricing."openai:agg"]
input = 3
output = 0
""")
    out = moa("ask", *OPENAI_MIX, "--json", "price me")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    prices = {"openai:m1": (1000, 2000), "openai:m2": (10, 20), "openai:agg": (3, 0)}
    calls = data["rounds"][0] + [data["aggregator"]]
    expected = sum(c["usage"]["prompt_tokens"] * prices[c["model"]][0]
                   + c["usage"]["completion_tokens"] * prices[c["model"]][1] for c in calls) / 1e6
    assert expected > 0
    assert data["usage"]["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert data["usage"]["unpriced_models"] == []


# ---------------------------------------------------------------- moa mixes


def test_mixes_lists_every_mix_with_its_source_and_marks_the_default(moa_inprocess, config_file):
    config_file('[defaults]\nmix = "mine"\n[mixes.mine]\ndescription = "my own"\nsource = "my notes"\n'
                'references = ["openai:m1"]\naggregator = "openai:agg"\n')
    out = moa_inprocess("mixes")
    assert out.returncode == 0, out.stderr
    titles = [line for line in out.stdout.splitlines() if line and not line.startswith((" ", "`"))]
    assert [t.split()[0] for t in titles] == sorted([*mixes.BUILTIN_MIXES, "mine"])
    assert any(t.startswith("mine (default; [mixes.mine] in ") for t in titles)
    assert out.stdout.count("source: ") == len(mixes.BUILTIN_MIXES) + 1
    for ref in ("2406.04692", "2502.00674", "Catena", "togethercomputer/MoA", "my notes"):
        assert ref in out.stdout
    assert "4 samples of together:deepseek-ai/DeepSeek-V3" in out.stdout


SHOWN = """
[defaults]
max_tokens = 64
[mixes."my mix"]
description = "quoted \\"name\\""
references = ["openai:m1", { model = "ollama:llama3.2:1b", temperature = 0.5, seed = 3 }]
rounds = 2
aggregator = { model = "openai:agg", system = "Be brief.\\nReally." }
strategy = "Q: {question}\\nA:\\n{answers}"
shuffle = true
[mixes."my mix".models."openai:m1"]
weight = 0.5
timeout = 12
"""


def test_mixes_show_prints_toml_that_parses_back_to_the_same_mix(moa_inprocess, config_file):
    config_file(SHOWN)
    for name in [*mixes.BUILTIN_MIXES, "my mix"]:
        out = moa_inprocess("mixes", "show", name)
        assert out.returncode == 0, out.stderr
        parsed = tomllib.loads(out.stdout)
        (shown_name, table), = parsed["mixes"].items()
        assert shown_name == name
        original = run(Overrides(mix=name), SHOWN).mix
        # The printed table alone (no [defaults]) resolves to the very same mix.
        assert resolve(Overrides(mix=name), WITH_KEY, parsed, None, stored_keys={}).mix == original, name
        if name in mixes.BUILTIN_MIXES:
            assert table["source"] == mixes.BUILTIN_MIXES[name]["source"]
            assert "built-in" in out.stdout.splitlines()[0]
    assert moa_inprocess("mixes", "show", "nope").returncode == 2


def test_mix_to_toml_round_trips_every_builtin_and_layered_mix():
    for name in [*mixes.BUILTIN_MIXES]:
        original = run(Overrides(mix=name)).mix
        parsed = tomllib.loads(mix_to_toml(original, source="s"))
        assert resolve(Overrides(mix=name), WITH_KEY, parsed, None, stored_keys={}).mix == original
    layered = run(Overrides(mix="layered", temperature=0.9), LAYERED).mix
    parsed = tomllib.loads(mix_to_toml(layered))
    assert resolve(Overrides(mix="layered"), WITH_KEY, parsed, None, stored_keys={}).mix == layered


# ---------------------------------------------------------------- moa models


def test_models_lists_the_provider_models(moa_inprocess, server):
    server.script("alpha").script("beta")
    out = moa_inprocess("models", "openai")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["openai:alpha", "openai:beta"]
    server.known_models = {"gamma"}
    out = moa_inprocess("models", "together")  # through its own SDK
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["together:gamma"]
    out = moa_inprocess("models")  # every provider that has a key: both, here
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == ["openai:gamma", "together:gamma"]
    out = moa_inprocess("models", "nolab")
    assert out.returncode == 2 and "unknown provider 'nolab'" in out.stderr
    out = moa_inprocess("models", "openai", env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert out.returncode == 4 and "cannot connect" in out.stderr and "Traceback" not in out.stderr


# ---------------------------------------------------------------- moa config


def test_config_path_init_show(moa_inprocess, moa_env, tmp_path):
    home = Path(moa_env["MOA_HOME"])
    out = moa_inprocess("config", "path")
    assert out.stdout.strip() == str(home / "config.toml")
    other = tmp_path / "elsewhere" / "moa.toml"
    assert moa_inprocess("config", "path", env={"MOA_CONFIG": str(other)}).stdout.strip() == str(other)

    out = moa_inprocess("config", "show")
    assert out.returncode == 0 and "does not exist" in out.stdout
    out = moa_inprocess("config", "init")
    assert out.returncode == 0, out.stderr
    path = home / "config.toml"
    assert path.read_text() == EXAMPLE_CONFIG
    path.write_text(path.read_text() + '\n[defaults]\nmix = "moa-lite"\n')
    edited = path.read_text()
    out = moa_inprocess("config", "init")
    assert out.returncode == 2 and "already exists" in out.stderr
    assert path.read_text() == edited  # never overwritten
    out = moa_inprocess("config", "show")
    assert out.returncode == 0, out.stderr
    assert "Default mix: moa-lite" in out.stdout
    assert tomllib.loads(out.stdout) == {"defaults": {"mix": "moa-lite"}}
    # MOA_CONFIG moves the file `init` writes.
    assert moa_inprocess("config", "init", env={"MOA_CONFIG": str(other)}).returncode == 0
    assert other.read_text() == EXAMPLE_CONFIG


def test_the_example_config_is_valid_once_uncommented():
    text = "\n".join(line[2:] if line.startswith("# ") else line for line in EXAMPLE_CONFIG.splitlines())
    data = tomllib.loads(text)
    assert {"defaults", "providers", "mixes", "local", "pricing"} <= set(data)
    settings = resolve(Overrides(), WITH_KEY, data, Path("/x/config.toml"), stored_keys={})
    assert settings.mix.name == "together-2025"
    for name in data["mixes"]:
        assert resolve(Overrides(mix=name), WITH_KEY, data, None, stored_keys={}).mix.aggregator
    assert settings.prices["mylab:qwen2.5-7b"] == (0.10, 0.30)


# ---------------------------------------------------------------- keys and secrets


def test_keys_set_stores_0600_and_the_key_never_shows(moa, moa_env, config_file, server):
    home = Path(moa_env["MOA_HOME"])
    config_file(f"""
[providers.lab]
base_url = "{server.v1}"
api_key_env = "LAB_KEY"
headers = {{ Authorization = "Bearer {HEADER_TOKEN}", "X-Api-Key" = "{HEADER_TOKEN}", "X-Team" = "research", "X-Ref" = "${{LAB_KEY}}" }}

[providers.proxy]
base_url = "https://user:{HEADER_TOKEN}@proxy.example/v1?api_key={HEADER_TOKEN}&region=eu"
""")
    out = moa("keys", "set", "openai", input=STORED_KEY + "\n")
    assert out.returncode == 0, out.stderr
    key_file = home / "keys.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert json.loads(key_file.read_text())["openai"] == STORED_KEY
    # Saving a second key keeps the first one.
    assert moa("keys", "set", "groq", input="gsk-second-0123456789\n").returncode == 0
    assert json.loads(key_file.read_text()) == {"openai": STORED_KEY, "groq": "gsk-second-0123456789"}
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    outputs = []
    listing = moa("keys", "list", env={"OPENAI_API_KEY": None, "LAB_KEY": ENV_KEY})
    outputs.append(listing)
    assert re.search(r"^openai\s+saved in ", listing.stdout, re.M)
    assert re.search(r"^lab\s+set in the environment \(LAB_KEY\)", listing.stdout, re.M)
    assert re.search(r"^together\s+set in the environment", listing.stdout, re.M)
    shown = moa("config", "show", env={"LAB_KEY": ENV_KEY})
    outputs.append(shown)
    assert shown.returncode == 0, shown.stderr
    shown_providers = tomllib.loads(shown.stdout)["providers"]
    assert shown_providers["lab"]["headers"] == {
        "Authorization": "***", "X-Api-Key": "***", "X-Team": "research", "X-Ref": "${LAB_KEY}"}
    assert shown_providers["proxy"]["base_url"] == "https://user:***@proxy.example/v1?api_key=***&region=eu"
    server.api_key = "only-this-key-0123456789"  # every key we hold is rejected
    outputs.append(moa("ask", "-r", "openai:m1", "-a", "openai:agg", "--no-fallback", "q",
                       env={"OPENAI_API_KEY": None}))
    outputs.append(moa("ask", "-r", "lab:m1", "-a", "lab:agg", "--json", "q", env={"LAB_KEY": ENV_KEY}))
    outputs.append(moa("models", "openai", env={"OPENAI_API_KEY": None}))
    assert outputs[2].returncode == 3 and outputs[4].returncode == 3
    for out in outputs:
        for secret in (STORED_KEY, ENV_KEY, HEADER_TOKEN):
            assert secret not in out.stdout + out.stderr


def test_the_environment_wins_over_the_stored_key(moa, server):
    assert moa("keys", "set", "openai", input=STORED_KEY + "\n").returncode == 0
    server.api_key = ENV_KEY  # the server accepts only the environment's key
    out = moa("ask", "-r", "openai:m1", "-a", "openai:agg", "q", env={"OPENAI_API_KEY": ENV_KEY})
    assert out.returncode == 0, out.stderr
    server.api_key = STORED_KEY  # without the variable, the stored key is used
    out = moa("ask", "-r", "openai:m1", "-a", "openai:agg", "q", env={"OPENAI_API_KEY": None})
    assert out.returncode == 0, out.stderr
    # A stored key also counts as configured: no local stand-in for the default mix.
    # (`moa mixes show` with no name prints the mix `moa ask` would run.)
    out = moa("mixes", "show", env={"TOGETHER_API_KEY": None})
    assert "[mixes.local]" in out.stdout and "TOGETHER_API_KEY" in out.stderr
    assert moa("keys", "set", "together", input=STORED_KEY + "\n").returncode == 0
    out = moa("mixes", "show", env={"TOGETHER_API_KEY": None})
    assert "[mixes.together-2025]" in out.stdout and out.stderr == ""


def test_keys_set_on_a_terminal_hides_the_input(moa_env, tmp_path):
    pexpect = pytest.importorskip("pexpect")
    from conftest import spawn_moa

    child = spawn_moa("keys", "set", "openai", env=moa_env, cwd=tmp_path, pty=True, encoding="utf-8", timeout=30)
    child.expect_exact("input hidden")
    child.sendline(STORED_KEY)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert STORED_KEY not in child.before  # getpass does not echo
    key_file = Path(moa_env["MOA_HOME"]) / "keys.json"
    assert json.loads(key_file.read_text())["openai"] == STORED_KEY
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_keys_set_errors_and_a_broken_config_does_not_block_saving(moa, moa_env, config_file):
    assert moa("keys", "set", "nolab", input="x\n").returncode == 2
    out = moa("keys", "set", "openai", input="\n")
    assert out.returncode == 2 and "nothing saved" in out.stderr
    assert moa("keys", "set", "local", input="x\n").returncode == 2
    assert not (Path(moa_env["MOA_HOME"]) / "keys.json").exists()
    config_file("[defaults\n")
    out = moa("keys", "set", "openai", input=STORED_KEY + "\n")
    assert out.returncode == 0 and "warning: config error in" in out.stderr
    assert STORED_KEY not in out.stdout + out.stderr
    assert json.loads((Path(moa_env["MOA_HOME"]) / "keys.json").read_text()) == {"openai": STORED_KEY}


def test_the_readme_config_example_is_valid():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Mixes and configuration", 1)[1].split("\n## ", 1)[0]
    text = section.split("```toml\n", 1)[1].split("```", 1)[0]
    data = tomllib.loads(text)
    settings = resolve(Overrides(mix="mine"), WITH_KEY, data, Path("/x/config.toml"), stored_keys={})
    mix = settings.mix
    assert mix.rounds == 2 and mix.shuffle and settings.notices == ()
    qwen = mix.layers[0][1]
    assert (qwen.label, qwen.temperature, qwen.seed, qwen.system, qwen.weight, qwen.max_tokens) == (
        "mylab:qwen2.5-7b", 0.2, 7, "Answer briefly.", 0.5, 512)
    assert resolve(Overrides(mix="quick"), WITH_KEY, data, None, stored_keys={}).mix.rounds == 1
    assert settings.prices["mylab:qwen2.5-7b"] == (0.10, 0.30)
    for name in mixes.BUILTIN_MIXES:
        assert f"`{name}`" in section
