"""Which model ids the server offers, and the Settings each one runs.

    moa               the default mix (`moa serve --mix NAME` picks it)
    moa:NAME          the mix NAME
    PROVIDER:MODEL    that one model alone (a zero-round mix of it), with the default mix's settings

Every model of every mix is listed as PROVIDER:MODEL. Any other model on a remote provider may
be asked for too (the provider decides whether it exists); a model of the in-process `local`
provider only when listed, so a client can never make the server load a file of its choosing.
"""

from __future__ import annotations

from functools import lru_cache

from ..config import ConfigSource, Overrides, Settings
from ..errors import MoaError
from .protocol import ApiError

DEFAULT = "moa"
MIX_PREFIX = "moa:"


class Catalog:
    def __init__(self, source: ConfigSource, settings: Settings):
        self.source, self.base = source, settings
        # A built-in mix whose provider this config lacks is not offered.
        self.mixes = {name: mix for name in source.mix_names() if (mix := self._mix_settings(name)) is not None}
        self.labels = sorted({m.label for s in (settings, *self.mixes.values()) for m in s.mix.models()})
        self.model_ids = (DEFAULT, *(MIX_PREFIX + name for name in self.mixes), *self.labels)
        # Settings per (model id, the request's options): resolving a mix costs about a
        # millisecond, paid once per distinct request shape instead of once per request.
        self.settings_for = lru_cache(maxsize=512)(self._settings_for)

    def _mix_settings(self, name: str) -> Settings | None:
        try:
            return self.source.changed(self.base, Overrides(mix=name))
        except MoaError:
            return None

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
        return spec.kind != "local" or model in self.labels


def unknown_model() -> ApiError:
    """The 404 for a model id this server does not offer; the id is never echoed back."""
    return ApiError(404, "unknown model; GET /v1/models lists the models this server offers",
                    code="model_not_found", param="model")
