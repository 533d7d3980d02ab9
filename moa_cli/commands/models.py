"""`moa models [PROVIDER]`: the models a provider serves, from its /models endpoint; with no
provider, those of every provider that has a key (queried together, each failure one line)."""

from __future__ import annotations

import asyncio
import sys

from ..config import keystore, load_settings
from ..errors import MoaError, ProviderError, UsageError
from ..output import warn
from ..sanitize import one_line_safe

LIST_TIMEOUT = 60.0


def run(provider_name: str | None) -> None:
    from ..providers import build_provider, find_key

    settings = load_settings()  # checks the whole config file
    env, providers = settings.provider_env, settings.providers
    stored = keystore.load_keys()
    if provider_name is not None:
        if provider_name not in providers:
            raise UsageError(f"unknown provider '{provider_name}'; known providers: {', '.join(sorted(providers))}")
        names = [provider_name]
    else:
        names = [name for name, spec in sorted(providers.items())
                 if spec.kind != "local" and find_key(spec, env, stored)]
        if not names:
            raise UsageError("no provider has a key yet (see `moa keys list`, or name one: `moa models ollama`)")

    async def fetch(name: str):
        provider = build_provider(providers[name], env, stored, settings.local_models)
        try:
            async with asyncio.timeout(LIST_TIMEOUT):  # every wait is bounded, a drip included
                return await provider.list_models()
        except TimeoutError:
            raise ProviderError(f"{name}: no model list within {LIST_TIMEOUT:g}s") from None
        finally:
            await provider.aclose()

    async def fetch_all():
        return await asyncio.gather(*(fetch(name) for name in names), return_exceptions=True)

    failed = None
    for name, models in zip(names, asyncio.run(fetch_all())):
        if isinstance(models, BaseException):
            if not isinstance(models, MoaError) or provider_name is not None:
                raise models
            warn(f"warning: {models.message}")
            failed = models
            continue
        if not models:
            warn(f"provider '{name}' lists no models")
        for model_id in models:
            sys.stdout.write(f"{name}:{one_line_safe(model_id)}\n")
    if failed is not None and len(names) == 1:
        raise failed
