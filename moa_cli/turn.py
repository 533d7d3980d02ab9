"""Glue between Settings, providers and the engine: what `ask`, `chat` and the server share."""

from __future__ import annotations

from typing import Sequence

from . import catalog, keys, prompts
from .engine import Engine, Listener, ProviderPool
from .config import Settings
from .events import TurnResult
from .models import ModelSettings
from .providers import build_provider

PROMPT_RESERVE = 256  # tokens kept free for the answer when a model has no max_tokens


def open_pool(settings: Settings) -> ProviderPool:
    """Providers for the mix, built now so a missing key fails before any call starts."""
    stored = keys.load_keys()

    def factory(name: str):
        return build_provider(settings.providers[name], settings.env, stored, settings.local_models)

    pool = ProviderPool(factory, settings.options.concurrency)
    for name in sorted(settings.mix.providers()):
        provider = pool.get(name)
        warm_up = getattr(provider, "warm_up", None)
        if warm_up is not None:
            warm_up()  # the SDK's first-use imports now, not inside the first call of a round
    return pool


def fit_to_window(model: ModelSettings, messages: tuple[dict, ...]) -> tuple[tuple[dict, ...], bool]:
    window = model.context_window or catalog.DEFAULT_CONTEXT_WINDOW
    budget = window - (model.max_tokens or PROMPT_RESERVE) - 32
    return prompts.fit_messages(messages, max(budget, 64))


async def run_turn(
    settings: Settings, pool: ProviderPool, conversation: Sequence[dict], listener: Listener
) -> TurnResult:
    engine = Engine(pool, settings.options, listener, fit=fit_to_window)
    return await engine.run_turn(settings.mix, conversation)
