"""Tokens per second: LocalProvider.stream against llama-cpp-python called directly.

Same model file, prompt, seed, temperature 0 and max_tokens, alternating the two for a few rounds;
the direct side is a plain `llama_cpp.Llama` with the same context size and thread count. Goal: the
provider (worker thread + asyncio queue + token tally) keeps at least 95% of the direct rate.

    python benchmarks/bench_local_tps.py [--tokens 128] [--rounds 5] [--threads N]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import threading
import time

from moa_cli.providers import local
from moa_cli.providers.base import ChatRequest

PROMPT = "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle."


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


async def via_provider(provider: local.LocalProvider, tokens: int, seed: int) -> tuple[str, int, float]:
    request = ChatRequest(local.BUILTIN, ({"role": "user", "content": PROMPT},), temperature=0.0,
                          max_tokens=tokens, seed=seed)
    start, text, usage = time.perf_counter(), [], None
    async for chunk in provider.stream(request):
        text.append(chunk.text)
        usage = chunk.usage or usage
    return "".join(text), usage.completion_tokens, time.perf_counter() - start


def direct(llm, tokens: int, seed: int) -> tuple[str, float]:
    """A plain streaming call, made from a short-lived thread while the main thread waits.

    Not from the main thread: llama.cpp's OpenMP build gives every calling thread its own pool of
    compute threads, and the main thread's pool would outlive the call. Once the pools hold more
    threads than there are CPUs, libgomp stops spinning at barriers and sleeps instead, which
    slows whichever side runs second. The provider's calls come from a short-lived thread too, so
    the same single pool exists for both sides, as in the CLI, where the main thread runs no model.
    """
    result = {}

    def call() -> None:
        start, text = time.perf_counter(), []
        for chunk in llm.create_chat_completion(messages=[{"role": "user", "content": PROMPT}], stream=True,
                                                temperature=0.0, max_tokens=tokens, seed=seed):
            text.append(chunk["choices"][0]["delta"].get("content") or "")
        result["out"] = "".join(text), time.perf_counter() - start

    worker = threading.Thread(target=call)
    worker.start()
    worker.join()
    return result["out"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: the provider's)")
    args = parser.parse_args()

    provider = local.LocalProvider("local", n_threads=args.threads)
    print(f"model {local._builtin_path()}\nn_ctx {provider.n_ctx}, n_threads {provider.n_threads}")
    asyncio.run(via_provider(provider, 8, 0))  # load and warm up
    rss_provider = peak_rss_mb()

    import llama_cpp

    plain = llama_cpp.Llama(model_path=local._builtin_path(), n_ctx=provider.n_ctx, n_threads=provider.n_threads,
                            n_threads_batch=provider.n_threads, verbose=False)
    direct(plain, 8, 0)

    provider_rates, direct_rates = [], []
    for round_ in range(args.rounds):
        seed = 1234  # the same each round: identical work for both sides
        text_p, count, seconds_p = asyncio.run(via_provider(provider, args.tokens, seed))
        text_d, seconds_d = direct(plain, args.tokens, seed)
        if text_p != text_d:
            print(f"  round {round_}: outputs differ (rates still comparable)")
        provider_rates.append(count / seconds_p)
        direct_rates.append(count / seconds_d)
        print(f"  round {round_}: provider {count / seconds_p:6.1f} tok/s   direct {count / seconds_d:6.1f} tok/s"
              f"   ({count} tokens)")

    # Best-of is the steadier figure on a shared machine: with all CPUs in use, one descheduled
    # llama.cpp thread stalls every barrier, so a busy neighbour can slow a round tenfold.
    for label, pick in (("median", statistics.median), ("best", max)):
        p, d = pick(provider_rates), pick(direct_rates)
        print(f"{label:>6}: provider {p:.1f} tok/s, direct {d:.1f} tok/s, ratio {p / d:.3f} (goal >= 0.95)")
    print(f"peak RSS: {rss_provider:.0f} MiB with the provider's model, {peak_rss_mb():.0f} MiB with both loaded")


if __name__ == "__main__":
    main()
