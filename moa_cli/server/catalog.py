"""Which model ids the server offers, and the Settings each one runs.

    moa               the default mix (`moa serve --mix NAME` picks it)
    moa:NAME          the mix NAME
    PROVIDER:MODEL    that one model alone (a zero-round mix of it), with the default mix's settings

Every model of every mix is listed as PROVIDER:MODEL. Any other model on a remote provider may
be asked for too (the provider decides whether it exists); a model of the in-process `local`
provider only when listed, so a client can never make the server load a file of its choosing.
Only what can run is offered: a mix or model whose provider has no key is left out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ..config import ConfigSource, Overrides, Settings, keystore
from ..errors import MoaError
from ..providers import find_key
from .protocol import ApiError

DEFAULT = "moa"
MIX_PREFIX = "moa:"
# `openai:vllm:m` asks the vllm server behind openai for `m`; deeper nesting is only ever a
# loop through servers, so a model id may name at most this many providers in a row.
MAX_NESTING = 2
# The settings cache holds at most this many bytes (each entry counted as its key plus a
# Settings object's typical size), whatever mix of ids the clients send.
CACHE_BYTES = 2 * 1024 * 1024
ENTRY_BYTES = 4096


class ByteBoundedCache:
    """A least-recently-used cache bounded in bytes, not entries (thread-safe: the server
    resolves settings in worker threads)."""

    def __init__(self, limit: int):
        self.limit, self.size = limit, 0
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def cost(key: tuple) -> int:
        return ENTRY_BYTES + sum(len(k) for k in key if isinstance(k, str))

    def get(self, key: tuple):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: tuple, value) -> None:
        cost = self.cost(key)
        if cost > self.limit:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self.size += cost
            while self.size > self.limit:
                old, _ = self._items.popitem(last=False)
                self.size -= self.cost(old)




class Catalog:
    def __init__(self, source: ConfigSource, settings: Settings):
        self.source, self.base = source, settings
        stored = keystore.load_keys()
        self._runnable = {name for name, spec in settings.providers.items()
                          if spec.kind == "local" or not spec.key_required
                          or find_key(spec, settings.provider_env, stored)}
        # A mix whose provider this config lacks, or has no key for, is not offered.
        self.mixes = {name: mix for name in source.mix_names() if (mix := self._mix_settings(name)) is not None}
        self.labels = sorted({m.label for s in (settings, *self.mixes.values()) for m in s.mix.models()
                              if m.label.partition(":")[0] in self._runnable})
        self.model_ids = (DEFAULT, *(MIX_PREFIX + name for name in self.mixes), *self.labels)
        # Settings per (model id, the request's options): resolving a mix costs about a
        # millisecond, paid once per distinct request shape instead of once per request.
        self._cache = ByteBoundedCache(CACHE_BYTES)

    def settings_for(self, model: str, overrides: Overrides = Overrides()) -> Settings:
        key = (model, overrides)
        settings = self._cache.get(key)
        if settings is None:
            settings = self._settings_for(model, overrides)
            self._cache.put(key, settings)
        return settings

    def _mix_settings(self, name: str) -> Settings | None:
        try:
            settings = self.source.changed(self.base, Overrides(mix=name))
        except MoaError:
            return None
        return settings if settings.mix.providers() <= self._runnable else None

    def _settings_for(self, model: str, overrides: Overrides = Overrides()) -> Settings:
        """The Settings a request for `model` runs with; ApiError 404 for an unknown model."""
        if model == DEFAULT:
            settings = self.base
        elif model.startswith(MIX_PREFIX) and model[len(MIX_PREFIX):] in self.mixes:
            settings = self.mixes[model[len(MIX_PREFIX):]]
        elif self._passes_through(model):
            try:
                settings = self.source.changed(self.base, Overrides(aggregator=model, rounds=0))
            except MoaError:
                raise unknown_model() from None
        else:
            raise unknown_model()
        if overrides == Overrides():
            return settings
        try:
            return self.source.changed(settings, overrides)
        except MoaError as error:
            raise ApiError(400, error.message) from None

    def _passes_through(self, model: str) -> bool:
        provider, _, name = model.partition(":")
        spec = self.base.providers.get(provider)
        if spec is None or not name.strip():
            return False
        if self._nesting(model) > MAX_NESTING:
            raise ApiError(400, f"model: a model id may name at most {MAX_NESTING} providers in a row",
                           param="model")
        return spec.kind != "local" or model in self.labels

    def _nesting(self, model: str) -> int:
        """How many providers (or `moa`) a model id names in a row: `vllm:vllm:moa` is 3."""
        depth = 0
        for part in model.split(":", MAX_NESTING + 1)[:-1]:
            if part not in self.base.providers and part != DEFAULT:
                break
            depth += 1
        return depth


def unknown_model() -> ApiError:
    """The 404 for a model id this server does not offer; the id is never echoed back."""
    return ApiError(404, "unknown model; GET /v1/models lists the models this server offers",
                    code="model_not_found", param="model")
