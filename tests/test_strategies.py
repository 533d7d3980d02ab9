"""Strategies (issue 16): what each registered strategy sends in every round, peer review's
anonymised reviews, and a strategy defined here that runs with no engine change.

Policy runs in-process through TurnService with in-memory providers; one `moa ask`, one
`moa serve` and one `moa bench` run a peer-review mix against the fake server."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serving import moa_serve  # noqa: F401 - a fixture

from moa_cli import strategies
from moa_cli.config import Overrides, resolve
from moa_cli.providers.pool import ProviderPool
from moa_cli.errors import ConfigError, ProviderError, UsageError
from moa_cli.providers.base import CallableProvider
from moa_cli.service import TurnService
from moa_cli.strategies import Role, Round, Step, TurnSoFar
from moa_cli.strategies.messages import number_answers, with_system
from moa_cli.strategies.templates import CODING, RANK, SYNTHESIZE

ENV = {"OPENAI_API_KEY": "k"}
QUESTION = [{"role": "user", "content": "what is MoA?"}]
ANSWER_LABEL = re.compile(r"^Answer ([A-Z]+):$", re.M)


class Models:
    """In-memory models: each answers with a fixed text (no model name in it) and every request
    is kept, in order."""

    def __init__(self, replies: dict[str, str] | None = None, failing: set[str] = frozenset()):
        self.replies = replies or {}
        self.failing = set(failing)
        self.requests = []

    async def answer(self, request):
        self.requests.append(request)
        if request.model in self.failing:
            raise ProviderError(f"openai:{request.model}: injected failure", status=400)
        yield self.replies.get(request.model, f"text-{len(self.requests)}")

    def to(self, model: str) -> list[tuple[dict, ...]]:
        return [r.messages for r in self.requests if r.model == model]

    def pool(self) -> ProviderPool:
        return ProviderPool(lambda name: CallableProvider(self.answer, name))


def settings_for(mix: dict, **defaults):
    config = {"mixes": {"m": mix}, **({"defaults": defaults} if defaults else {})}
    return resolve(Overrides(mix="m"), ENV, config)


def run(settings, models: Models, conversation=QUESTION):
    async def main():
        service = TurnService(settings, pool=models.pool())
        return await service.run(conversation[-1]["content"], history=conversation[:-1])

    return asyncio.run(main())


def system_of(messages: tuple[dict, ...]) -> str:
    assert messages[0]["role"] == "system"
    return messages[0]["content"]


# ---------------------------------------------------------------- the template strategies


@pytest.mark.parametrize("strategy, template", [
    ("synthesize", SYNTHESIZE), ("rank", RANK), ("coding", CODING),
    ("ANSWERS<{answers}> FOR <{question}>", "ANSWERS<{answers}> FOR <{question}>"),
])
def test_template_strategies_send_synthesize_between_rounds_and_their_own_template_to_the_aggregator(
        strategy, template):
    models = Models({"a": "alpha", "b": "bravo", "agg": "final"})
    settings = settings_for({"layers": [["openai:a", "openai:b"]], "rounds": 2, "aggregator": "openai:agg",
                             "strategy": strategy})
    outcome = run(settings, models)
    assert outcome.ok and outcome.turn.final == "final"
    assert [[r.call.role for r in rnd] for rnd in outcome.turn.rounds] == [[Role.REFERENCE] * 2] * 2
    first, second = models.to("a")
    assert first == tuple(QUESTION)  # round 1: the conversation alone
    merged = SYNTHESIZE.replace("{answers}", number_answers(["alpha", "bravo"]))
    assert second == ({"role": "system", "content": merged}, *QUESTION)
    assert models.to("b")[1] == second
    expected = template.replace("{answers}", number_answers(["alpha", "bravo"])).replace(
        "{question}", QUESTION[-1]["content"])
    assert models.to("agg") == [({"role": "system", "content": expected}, *QUESTION)]


def test_a_models_own_system_prompt_comes_first_and_zero_rounds_send_the_conversation_alone():
    models = Models({"a": "alpha", "agg": "final"})
    settings = settings_for({"layers": [["openai:a"]], "aggregator": "openai:agg", "system": "Be brief."})
    run(settings, models)
    assert system_of(models.to("agg")[0]).startswith("Be brief.\n\n")
    models = Models()
    assert run(settings_for({"aggregator": "openai:agg"}), models).ok
    assert models.to("agg") == [tuple(QUESTION)]


# ---------------------------------------------------------------- Self-MoA


def test_self_moa_samples_the_aggregators_model_when_the_mix_names_no_references():
    models = Models({"best": "sample"})
    settings = settings_for({"aggregator": {"model": "openai:best", "seed": 10}, "strategy": "self-moa"})
    outcome = run(settings, models)
    assert outcome.ok
    (samples,) = outcome.turn.rounds
    assert [r.call.temperature for r in samples] == [0.3, 0.6, 0.8, 1.0]
    requests = [r for r in models.requests if r.messages == tuple(QUESTION)]
    assert [(r.temperature, r.seed) for r in requests] == [(0.3, 11), (0.6, 12), (0.8, 13), (1.0, 14)]
    aggregate = models.requests[-1]
    assert (aggregate.model, aggregate.seed, aggregate.temperature) == ("best", 10, None)
    assert system_of(aggregate.messages) == SYNTHESIZE.replace("{answers}", number_answers(["sample"] * 4))


def test_self_moa_with_listed_samples_sends_what_synthesize_sends():
    mix = {"layers": [[{"model": "openai:x", "temperature": 0.3}, {"model": "openai:x", "temperature": 0.9}]],
           "aggregator": "openai:agg"}
    sent = []
    for strategy in ("synthesize", "self-moa"):
        models = Models({"x": "sample", "agg": "final"})
        run(settings_for({**mix, "strategy": strategy}), models)
        sent.append([(r.model, r.temperature, r.messages) for r in models.requests])
    assert sent[0] == sent[1]


# ---------------------------------------------------------------- peer review

# Model names that cannot occur in the prompts' own words, so leaking one is visible.
A, B, C = "model-one", "model-two", "model-three"
PEERS = {"layers": [[f"openai:{A}", f"openai:{B}", f"openai:{C}"]], "aggregator": "openai:agg",
         "strategy": "peer-review"}
REPLIES = {A: "alpha", B: "bravo", C: "charlie", "agg": "final"}


def labelled_answers(system: str) -> dict[str, str]:
    """{label letter: answer text} of the Answer blocks in a system message."""
    blocks = re.split(r"\n\n(?=Answer [A-Z]+:\n|Reviews:)", system)
    found = {}
    for block in blocks:
        match = re.match(r"Answer ([A-Z]+):\n(.*)", block, re.S)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


@pytest.mark.parametrize("shuffle", [False, True])
def test_peer_review_each_reference_reviews_the_others_anonymised_never_its_own(shuffle):
    models = Models(REPLIES)
    outcome = run(settings_for({**PEERS, "shuffle": shuffle}), models)
    assert outcome.ok and outcome.turn.final == "final"
    assert [[r.call.role for r in rnd] for rnd in outcome.turn.rounds] == [[Role.REFERENCE] * 3, [Role.REVIEWER] * 3]
    assert [r.call.label for r in outcome.turn.rounds[1]] == [f"openai:{m}" for m in (A, B, C)]
    letters = {"alpha": "A", "bravo": "B", "charlie": "C"}  # one label per answer, for the whole turn
    for model, own in ((A, "alpha"), (B, "bravo"), (C, "charlie")):
        answer, review = models.to(model)
        assert answer == tuple(QUESTION)
        seen = labelled_answers(system_of(review))
        assert own not in seen.values()
        assert seen == {letters[text]: text for text in REPLIES.values() if text not in (own, "final")}
        assert review[1:] == tuple(QUESTION)  # the conversation itself is untouched
    for request in models.requests:
        text = json.dumps(request.messages)
        assert not re.search(r"openai|model-", text), text  # no model name reaches any call


def test_peer_review_the_aggregator_gets_every_answer_and_every_review():
    models = Models(REPLIES)
    reviews = iter(["review-1", "review-2", "review-3"])

    async def answer(request):  # the second call of each reference is its review
        models.requests.append(request)
        yield (next(reviews) if len(models.to(request.model)) > 1 and request.model != "agg"
               else REPLIES[request.model])

    models.answer = answer
    outcome = run(settings_for(PEERS), models)
    assert outcome.ok
    (aggregate,) = models.to("agg")
    system = system_of(aggregate)
    assert labelled_answers(system) == {"A": "alpha", "B": "bravo", "C": "charlie"}
    assert re.findall(r"^Review (\d+):\n(.*)$", system, re.M) == [
        ("1", "review-1"), ("2", "review-2"), ("3", "review-3")]
    assert aggregate[1:] == tuple(QUESTION)


def test_peer_review_a_failed_reference_is_neither_reviewed_nor_a_reviewer():
    models = Models(REPLIES, failing={B})
    outcome = run(settings_for(PEERS), models)
    assert outcome.ok
    assert [r.call.label for r in outcome.turn.rounds[1]] == [f"openai:{A}", f"openai:{C}"]
    assert labelled_answers(system_of(models.to(A)[1])) == {"B": "charlie"}  # letters count answers
    assert labelled_answers(system_of(models.to(C)[1])) == {"A": "alpha"}
    assert labelled_answers(system_of(models.to("agg")[0])) == {"A": "alpha", "B": "charlie"}


def test_peer_review_with_one_answer_or_no_review_merges_the_answers_as_synthesize_does():
    alone = Models(REPLIES, failing={B, C})
    outcome = run(settings_for(PEERS), alone)
    assert outcome.ok and len(outcome.turn.rounds) == 1  # nothing to review
    expected = SYNTHESIZE.replace("{answers}", number_answers(["alpha"]))
    assert alone.to("agg") == [({"role": "system", "content": expected}, *QUESTION)]

    # Every review fails (the second call of each reference): the turn goes on without reviews.
    models = Models(REPLIES)
    original = models.answer

    async def reviews_fail(request):
        if request.model != "agg" and models.to(request.model):
            models.requests.append(request)
            raise ProviderError("injected", status=400)
        async for piece in original(request):
            yield piece

    models.answer = reviews_fail
    outcome = run(settings_for(PEERS), models)
    assert outcome.ok and [r.status for r in outcome.turn.rounds[1]] == ["failed"] * 3
    expected = SYNTHESIZE.replace("{answers}", number_answers(["alpha", "bravo", "charlie"]))
    assert models.to("agg") == [({"role": "system", "content": expected}, *QUESTION)]


def test_peer_review_fallback_answers_with_a_reference_answer_never_a_review():
    models = Models(REPLIES, failing={"agg"})
    outcome = run(settings_for(PEERS), models)
    assert outcome.ok and outcome.turn.fallback is not None
    assert outcome.turn.final in ("alpha", "bravo", "charlie")
    assert outcome.turn.aggregate.call.round == 3


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Relay:
    """A toy topology: the first reference model answers, then each next one improves the
    previous answer, one call per round; the aggregator polishes the last."""

    name: str = "test-relay"
    description: str = "each model improves the previous one's answer"

    def next_round(self, turn: TurnSoFar) -> Round | None:
        models = turn.mix.layers[0]
        done = len(turn.played)
        if done == len(models):
            return None
        last = turn.answers()
        return Round(Role.REFERENCE, (Step(models[done], with_system(turn.conversation, *(
            [f"Improve: {last[0]}"] if last else [])),),))

    def aggregate(self, turn: TurnSoFar) -> Step:
        return Step(turn.mix.aggregator, with_system(turn.conversation, f"Polish: {turn.answers()[0]}"))


@pytest.fixture
def relay():
    strategy = strategies.register(Relay())
    yield strategy
    strategies.unregister(strategy.name)


def test_a_strategy_registered_here_runs_from_a_config_mix_with_no_engine_change(relay):
    assert relay.name in strategies.names()
    models = Models({"a": "one", "b": "two", "c": "three", "agg": "final"})
    settings = settings_for({"layers": [["openai:a", "openai:b", "openai:c"]], "aggregator": "openai:agg",
                             "strategy": relay.name})
    outcome = run(settings, models)
    assert outcome.ok and outcome.turn.final == "final"
    assert [[r.call.label for r in rnd] for rnd in outcome.turn.rounds] == [["openai:a"], ["openai:b"], ["openai:c"]]
    assert models.to("b") == [({"role": "system", "content": "Improve: one"}, *QUESTION)]
    assert models.to("agg") == [({"role": "system", "content": "Polish: three"}, *QUESTION)]


@dataclass(frozen=True)
class Endless:
    name: str = "test-endless"
    description: str = "a broken strategy that never stops planning"

    def next_round(self, turn: TurnSoFar) -> Round | None:
        model = turn.mix.layers[0][0]
        return Round(Role.REFERENCE, (Step(model, tuple(turn.conversation)),))

    def aggregate(self, turn: TurnSoFar) -> Step:
        raise AssertionError("never reached")


def test_a_strategy_that_never_stops_planning_fails_the_turn_after_max_rounds():
    from moa_cli.engine import MAX_ROUNDS
    from moa_cli.errors import TurnFailed

    strategy = strategies.register(Endless())
    try:
        settings = settings_for({"references": ["openai:a"], "aggregator": "openai:agg", "strategy": strategy.name})
        models = Models()
        outcome = run(settings, models)
    finally:
        strategies.unregister(strategy.name)
    assert outcome.status == "failed" and isinstance(outcome.error, TurnFailed)
    assert len(models.requests) == MAX_ROUNDS and len(outcome.turn.rounds) == MAX_ROUNDS


def test_config_accepts_every_registered_strategy_and_refuses_an_unknown_one(relay):
    for name in strategies.names():
        assert settings_for({"references": ["openai:a"], "aggregator": "openai:b", "strategy": name}).mix.strategy == name
    with pytest.raises(ConfigError):
        settings_for({"references": ["openai:a"], "aggregator": "openai:b", "strategy": "no-such-strategy"})
    with pytest.raises(ValueError):
        strategies.register(Relay())  # a name is registered once
    from moa_cli.commands.mixes import strategy_list

    assert {line.split()[0] for line in strategy_list().splitlines()[1:]} == set(strategies.names())


def test_a_stored_mix_naming_a_strategy_no_longer_registered_fails_the_turn_cleanly():
    from dataclasses import replace

    settings = settings_for({"references": ["openai:a"], "aggregator": "openai:b"})
    settings = replace(settings, mix=replace(settings.mix, strategy="gone-away"))
    models = Models()
    outcome = run(settings, models)
    assert outcome.status == "failed" and isinstance(outcome.error, UsageError)
    assert models.requests == []


def test_a_database_from_before_review_rounds_keeps_its_proposals_and_accepts_reviewers(tmp_path):
    from moa_cli.store import MIGRATIONS, Store

    path = tmp_path / "sessions.db"
    old = sqlite3.connect(path)
    for step in MIGRATIONS[:3]:
        old.executescript(step)
    old.execute("PRAGMA user_version = 3")
    old.execute("INSERT INTO sessions (id, name, created, updated, mix) VALUES (1, 'kept', 1.0, 1.0, 'm')")
    old.execute("INSERT INTO turns (id, session_id, seq, created, question, final, status, mix)"
                " VALUES (1, 1, 1, 1.0, 'q', 'a', 'ok', 'm')")
    old.execute("INSERT INTO proposals (turn_id, round, idx, role, model, status, text, finish_reason)"
                " VALUES (1, 1, 0, 'reference', 'openai:x', 'ok', 'old answer', 'length')")
    old.commit()
    old.close()
    models = Models(REPLIES)
    outcome = run(settings_for(PEERS), models)
    store = Store.open(path)
    try:
        (turn,) = store.turns(1)
        assert [(p["role"], p["text"], p["finish_reason"]) for p in turn.proposals] == [
            ("reference", "old answer", "length")]
        store.add_turn(1, "what is MoA?", outcome.turn, status="ok")
        roles = [p["role"] for p in store.turns(1)[1].proposals]
    finally:
        store.close()
    assert roles == ["reference"] * 3 + ["reviewer"] * 3 + ["aggregator"]


def test_strategies_import_neither_config_nor_the_engine():
    """They read Mix and CallResult values without importing config or the engine: config
    validation imports the registry, so anything more would be an import cycle. (Roles and
    results come from events.py, which sits below; tests/test_architecture.py checks the layers.)"""
    import subprocess
    import sys

    probe = "import sys, moa_cli.strategies; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    moa = {m for m in loaded if m.startswith("moa_cli.") and not m.startswith("moa_cli.strategies")}
    assert "moa_cli.events" in moa  # where Role lives
    assert not {m for m in moa if m.split(".")[1] in ("config", "engine", "service", "store", "render")}
    assert not {"openai", "together", "llama_cpp"} & {m.split(".")[0] for m in loaded}


# ---------------------------------------------------------------- end to end

PEER_CONFIG = """
[mixes.peer]
layers = [["openai:r1", "openai:r2", "openai:r3"]]
aggregator = "openai:agg"
strategy = "peer-review"
"""
E2E_REPLIES = {"r1": "ALPHA reply", "r2": "BRAVO reply", "r3": "CHARLIE reply", "agg": "FINAL reply"}


def script(server):
    for model, reply in E2E_REPLIES.items():
        server.script(model, reply=reply)


def check_reviews(server):
    for model in ("r1", "r2", "r3"):
        # Its review is the one call with a system message (bench also runs each model alone).
        (review,) = [r["body"]["messages"] for r in server.requests(model) if r["body"]["messages"][0]["role"] == "system"]
        system = review[0]["content"]
        assert E2E_REPLIES[model] not in system
        assert sorted(labelled_answers(system).values()) == sorted(
            reply for m, reply in E2E_REPLIES.items() if m not in (model, "agg"))
        assert not re.search(r"\br[123]\b|openai", system)
    aggregate = server.requests("agg")[0]["body"]["messages"][0]["content"]
    assert len(labelled_answers(aggregate)) == 3 and len(re.findall(r"^Review \d+:$", aggregate, re.M)) == 3


def test_moa_ask_with_a_peer_review_mix_against_the_fake_server(moa, moa_env, config_file, server):
    config_file(PEER_CONFIG)
    script(server)
    out = moa("ask", "--mix", "peer", "--json", "what is MoA?")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["final"] == "FINAL reply"
    assert [[r["role"] for r in rnd] for rnd in data["rounds"]] == [["reference"] * 3, ["reviewer"] * 3]
    assert data["aggregator"]["round"] == 3
    check_reviews(server)
    db = sqlite3.connect(Path(moa_env["MOA_HOME"]) / "sessions.db")
    try:
        roles = [row[0] for row in db.execute("SELECT role FROM proposals ORDER BY round, idx")]
    finally:
        db.close()
    assert roles == ["reference"] * 3 + ["reviewer"] * 3 + ["aggregator"]


def test_moa_serve_runs_a_peer_review_mix(moa_serve, server):
    script(server)
    running = moa_serve(config=PEER_CONFIG + '\n[defaults]\nmix = "peer"\nretries = 0\n')
    response = httpx.post(running.v1 + "/chat/completions", timeout=30,
                          json={"model": "moa:peer", "messages": [{"role": "user", "content": "what is MoA?"}]})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "FINAL reply"
    check_reviews(server)
    assert running.stop() == 0


def test_moa_bench_runs_a_peer_review_mix(moa, moa_env, server, tmp_path):
    home = Path(moa_env["MOA_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(PEER_CONFIG)
    script(server)
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"instruction": "what is MoA?"}) + "\n")
    out = tmp_path / "run"
    result = moa("bench", str(items), "--mix", "peer", "--out", str(out))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    (mix,) = [r for r in records if r["generator"] == "peer"]
    assert mix["status"] == "ok" and mix["output"] == "FINAL reply"
    assert [ref["role"] for ref in mix["references"]] == ["reference"] * 3 + ["reviewer"] * 3
    check_reviews(server)


@pytest.fixture
def config_file(moa_env):
    """Write the config file the `moa` subprocess reads (MOA_HOME/config.toml)."""

    def write(text: str) -> Path:
        path = Path(moa_env["MOA_HOME"]) / "config.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write
