"""The built-in local mix's budgets and per-role instructions (issue 19, BENCHMARKS.md "the local
mix's caps"): each role is told how long to be, and a short answer ends by itself within its cap."""

from __future__ import annotations

import asyncio
from pathlib import Path

from moa_cli.config import Overrides, resolve
from moa_cli.config import builtin_mixes as mixes
from moa_cli.providers.base import ChatRequest
from moa_cli.strategies import templates
from moa_cli.providers.local import LocalProvider


def local_mix():
    return resolve(Overrides(mix="local"), {}, {}, Path("/cfg/config.toml"), stored_keys={}).mix


def test_each_role_of_the_local_mix_has_its_own_instruction_and_budget():
    mix = local_mix()
    references = [m for layer in mix.layers for m in layer]
    assert {m.system for m in references} == {mixes.LOCAL_REFERENCE_BRIEF}
    assert mix.aggregator.system == mixes.LOCAL_AGGREGATOR_BRIEF != mixes.LOCAL_REFERENCE_BRIEF
    assert {m.max_tokens for m in references} == {mixes.LOCAL_REFERENCE_TOKENS}
    # Room for what the model writes when told to be brief (about 140-200 tokens for a reference).
    assert 160 <= mixes.LOCAL_REFERENCE_TOKENS < mix.aggregator.max_tokens == mixes.LOCAL_AGGREGATOR_TOKENS
    assert all(m.seed is None for m in mix.models())  # each turn samples anew
    # The aggregator's length instruction comes after the answers it reads, not only before them.
    assert templates.is_template(mix.strategy) and mix.strategy.index("{answers}") < mix.strategy.index("sentences")


def test_a_short_reference_answer_ends_by_itself_within_its_budget():
    reference = local_mix().layers[0][0]
    request = ChatRequest("smollm2", ({"role": "system", "content": reference.system},
                                      {"role": "user", "content": "Name three primary colours."}),
                          temperature=reference.temperature, max_tokens=reference.max_tokens, seed=1)

    async def collect() -> list:
        return [c async for c in LocalProvider("local").stream(request)]

    chunks = asyncio.run(collect())
    finish = [c.finish_reason for c in chunks if c.finish_reason]
    usage = [c.usage for c in chunks if c.usage][-1]
    assert finish == ["stop"] and 0 < usage.completion_tokens < reference.max_tokens
