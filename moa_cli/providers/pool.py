"""The provider pool: one provider instance per name, shared by every turn of a process.

The engine draws its providers from a pool; the turn service, `moa serve` and `moa bench` build
and share one without needing the engine for it.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from .base import Provider


class ProviderPool:
    """One provider instance per name for the whole process, plus per-provider concurrency caps."""

    def __init__(self, factory: Callable[[str], Provider], concurrency: int | None = None):
        self._factory = factory
        self._providers: dict[str, Provider] = {}
        self._warm: set[str] = set()  # providers whose first-use work is done
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._concurrency = concurrency

    def get(self, name: str) -> Provider:
        if name not in self._providers:
            self._providers[name] = self._factory(name)
        return self._providers[name]

    def limit(self, name: str) -> asyncio.Semaphore | None:
        if not self._concurrency:
            return None
        if name not in self._limits:
            self._limits[name] = asyncio.Semaphore(self._concurrency)
        return self._limits[name]

    async def warm_up(self) -> None:
        """Let every provider do its first-use work before a turn's calls start (once each)."""
        for name, provider in list(self._providers.items()):
            if name in self._warm:
                continue
            self._warm.add(name)
            warm_up = getattr(provider, "warm_up", None)
            if warm_up is not None:
                try:
                    await warm_up()
                except Exception:  # noqa: BLE001 - a warm-up is an optimisation, never a failure
                    pass

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
