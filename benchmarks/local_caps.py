"""Issue 19: the local mix's caps and sampling, before and after.

Runs the built-in `local` mix in-process through TurnService on a subset of the built-in `chat`
suite's prompts, twice per prompt, interleaved so both see the same machine load:

- before: the first pass's settings (references capped at 128 tokens, aggregator at 512, one
  brevity system prompt for every role, the local provider's stop sequences);
- after: the mix as built in now (its budgets, its per-role instructions, the provider's sampling).

Reports the median turn time and how often a reference / the aggregator stopped at max_tokens.

    python benchmarks/local_caps.py [N_PROMPTS] [--skip=K] [--no-write]   # default: all 6 chosen prompts
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import machine, table, update_section  # noqa: E402

from moa_cli.bench.chat_prompts import CHAT_PROMPTS  # noqa: E402
from moa_cli.config import Overrides, load_settings  # noqa: E402
from moa_cli.providers import local  # noqa: E402
from moa_cli.service import TurnService  # noqa: E402

OLD_SAMPLING: dict = {"stop": ["\n\n\n", "<|im_start|>", "<|im_end|>"]}
OLD_REFERENCE_TOKENS, OLD_AGGREGATOR_TOKENS = 128, 512
OLD_BRIEF = "Answer briefly: a few sentences, or a short list, and then stop."


def old_settings(settings):
    mix = settings.mix
    layers = tuple(tuple(replace(m, max_tokens=OLD_REFERENCE_TOKENS, system=OLD_BRIEF) for m in layer)
                   for layer in mix.layers)
    aggregator = replace(mix.aggregator, max_tokens=OLD_AGGREGATOR_TOKENS, system=OLD_BRIEF)
    return replace(settings, mix=replace(mix, layers=layers, aggregator=aggregator, strategy="synthesize"))


async def one_turn(settings, sampling: dict, question: str) -> dict:
    local.SAMPLING = sampling
    service = TurnService(settings)
    t0 = time.perf_counter()
    try:
        outcome = await service.run(question, history=[])
    finally:
        await service.aclose()
    turn = outcome.turn
    refs = [r for rnd in turn.rounds for r in rnd]
    return {
        "time": time.perf_counter() - t0,
        "refs": len(refs),
        "refs_cut": sum(r.finish_reason == "length" for r in refs),
        "agg_cut": int(turn.aggregate is not None and turn.aggregate.finish_reason == "length"),
        "tokens": turn.total_usage().completion_tokens,
        "ok": outcome.ok,
    }


async def main(n: int) -> None:
    new_sampling = dict(local.SAMPLING)
    os.environ.pop("TOGETHER_API_KEY", None)
    after = load_settings(Overrides(mix="local", log=False))
    before = old_settings(after)
    # Long-form prompts first (where the caps bite), then short ones (which must end by themselves).
    prompts = [CHAT_PROMPTS[i] for i in (0, 13, 12, 7, 10, 17)][SKIP:SKIP + n]
    # Warm-up: the model loads once for the process, outside any measured turn.
    await one_turn(replace(after, mix=replace(after.mix, layers=(), aggregator=after.mix.aggregator.with_(max_tokens=4))),
                   new_sampling, "Hi")
    results: dict[str, list[dict]] = {"before": [], "after": []}
    for i, question in enumerate(prompts):
        order = [("before", before, OLD_SAMPLING), ("after", after, new_sampling)]
        for name, settings, sampling in (order if i % 2 == 0 else order[::-1]):
            results[name].append(await one_turn(settings, sampling, question))
            r = results[name][-1]
            print(f"prompt {CHAT_PROMPTS.index(question)} {name}: {r['time']:.1f}s refs cut "
                  f"{r['refs_cut']}/{r['refs']} aggregator cut {r['agg_cut']}", flush=True)
    rows = []
    for name in ("before", "after"):
        rs = results[name]
        refs, refs_cut = sum(r["refs"] for r in rs), sum(r["refs_cut"] for r in rs)
        rows.append([name, f"{statistics.median(r['time'] for r in rs):.1f} s",
                     f"{sum(r['time'] for r in rs):.0f} s",
                     f"{refs_cut}/{refs} ({100 * refs_cut / max(refs, 1):.0f}%)",
                     f"{sum(r['agg_cut'] for r in rs)}/{len(rs)}",
                     f"{statistics.median(r['tokens'] for r in rs):.0f}"])
    ratio = (statistics.median(r["time"] for r in results["after"])
             / statistics.median(r["time"] for r in results["before"]))
    summary = table(["settings", "median turn", "all turns", "references truncated", "aggregator truncated",
                     "median output tokens"], rows)
    indices = ", ".join(str(CHAT_PROMPTS.index(q)) for q in prompts)
    body = f"""## Issue 19: the local mix's caps (`benchmarks/local_caps.py`)

Setup: the built-in `local` mix in-process (TurnService, no store), on {len(prompts)} prompts of the
built-in `chat` suite (indices {indices}), each prompt run once with the first pass's settings
(references max {OLD_REFERENCE_TOKENS} tokens, aggregator max {OLD_AGGREGATOR_TOKENS}, system prompt {OLD_BRIEF!r}
for every role, the `synthesize` strategy, sampling {OLD_SAMPLING}) and once with the current ones (references max
{after.mix.layers[0][0].max_tokens} with system prompt {after.mix.layers[0][0].system!r}, aggregator max
{after.mix.aggregator.max_tokens} with {after.mix.aggregator.system!r} and the instruction after the answers
{after.mix.strategy!r} instead of `synthesize`, sampling {new_sampling}),
interleaved so both see the same load; no seeds in either.
{machine()}; the machine was shared with other work while this ran, so the absolute times are noisy.

{summary}

Median turn time after / before: {ratio:.2f}.
"""
    print(body)
    if "--no-write" not in sys.argv:
        update_section("local-caps", body)


SKIP = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--skip=")), 0)

if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    asyncio.run(main(int(args[0]) if args else 6))
