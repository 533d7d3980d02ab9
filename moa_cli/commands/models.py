"""`moa models PROVIDER`: the models a provider serves, from its /models endpoint."""

from __future__ import annotations

import asyncio
import sys

from ..config import Overrides, keystore, load_config_file, load_env, paths, resolve
from ..errors import ProviderError, UsageError
from ..output import warn
from ..sanitize import one_line_safe

LIST_TIMEOUT = 60.0


def run(provider_name: str) -> None:
    from ..providers import build_provider

    env = load_env()
    config_path = paths.config_file()
    config = load_config_file(config_path)
    settings = resolve(Overrides(), env, config, config_path)  # checks the whole file
    providers = settings.providers
    spec = providers.get(provider_name)
    if spec is None:
        raise UsageError(f"unknown provider '{provider_name}'; known providers: {', '.join(sorted(providers))}")
    provider = build_provider(spec, env, keystore.load_keys(), settings.local_models)

    async def fetch():
        try:
            async with asyncio.timeout(LIST_TIMEOUT):  # every wait is bounded, a drip included
                return await provider.list_models()
        except TimeoutError:
            raise ProviderError(f"{provider_name}: no model list within {LIST_TIMEOUT:g}s") from None
        finally:
            await provider.aclose()

    names = asyncio.run(fetch())
    if not names:
        warn(f"provider '{provider_name}' lists no models")
    for model_id in names:
        # Ids come from the server: one line each, control characters made visible.
        sys.stdout.write(f"{provider_name}:{one_line_safe(model_id)}\n")
