"""Facts about known models: prices for the cost line and context windows for trimming.

Config `[pricing]` and per-model `context_window` extend these."""

from __future__ import annotations

from typing import Mapping

from ..providers.base import Usage

# (input, output) $/M tokens, as listed by Together for serverless models in 2025.
BUILTIN_PRICES: dict[str, tuple[float, float]] = {
    "together:meta-llama/Llama-3.3-70B-Instruct-Turbo": (0.88, 0.88),
    "together:Qwen/Qwen2.5-72B-Instruct-Turbo": (1.20, 1.20),
    "together:Qwen/Qwen2.5-Coder-32B-Instruct": (0.80, 0.80),
    "together:deepseek-ai/DeepSeek-V3": (1.25, 1.25),
    "together:meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo": (3.50, 3.50),
    "together:meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo": (0.18, 0.18),
    "together:mistralai/Mixtral-8x7B-Instruct-v0.1": (0.60, 0.60),
    "together:Qwen/Qwen2.5-7B-Instruct-Turbo": (0.30, 0.30),
    "together:microsoft/WizardLM-2-8x22B": (1.20, 1.20),
    "openai:gpt-4o": (2.50, 10.00),
    "openai:gpt-4o-mini": (0.15, 0.60),
    "local:smollm2": (0.0, 0.0),
}


def cost(label: str, usage: Usage, prices: Mapping[str, tuple[float, float]]) -> float | None:
    """Dollars for one call, or None when the price is unknown."""
    price = prices.get(label)
    if price is None:
        if label.startswith("local:"):
            return 0.0  # running on this machine costs no money
        return None
    return (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1_000_000


def turn_cost(turn, prices: Mapping[str, tuple[float, float]]) -> tuple[float, list[str]]:
    """(dollars for a turn's priced calls, labels of its calls with no known price)."""
    total, unknown = 0.0, []
    for result in turn.calls():
        dollars = cost(result.call.label, result.usage, prices)
        if dollars is None:
            if result.call.label not in unknown and (result.usage.prompt_tokens or result.usage.completion_tokens):
                unknown.append(result.call.label)
        else:
            total += dollars
    return total, unknown


# Context windows in tokens; unknown models get DEFAULT_CONTEXT_WINDOW.
CONTEXT_WINDOWS: dict[str, int] = {
    "together:meta-llama/Llama-3.3-70B-Instruct-Turbo": 131072,
    "together:Qwen/Qwen2.5-72B-Instruct-Turbo": 32768,
    "together:Qwen/Qwen2.5-Coder-32B-Instruct": 32768,
    "together:Qwen/Qwen2.5-7B-Instruct-Turbo": 32768,
    "together:deepseek-ai/DeepSeek-V3": 131072,
    "together:meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo": 130815,
    "together:microsoft/WizardLM-2-8x22B": 65536,
    "together:mistralai/Mixtral-8x7B-Instruct-v0.1": 32768,
    "openai:gpt-4o": 128000,
    "openai:gpt-4o-mini": 128000,
    "local:smollm2": 8192,
}
DEFAULT_CONTEXT_WINDOW = 32768
