"""The turn service: the one way a frontend runs a turn.

`ask`, `chat`, `serve` and `bench` all go through `TurnService.run`, which opens the providers,
runs the engine, fans its events out to the frontend's listeners, saves the turn (partial
answers too, when it failed or was interrupted) and returns a `TurnOutcome`.

A listener that raises (a closed pipe, a full disk, a renderer bug) is detached and reported in
`TurnOutcome.output_errors`; it never counts against a model, and the turn goes on to be saved.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from . import prompts
from .config import Settings, keystore
from .config.model_facts import DEFAULT_CONTEXT_WINDOW, turn_cost
from .config.schema import Mix, ModelSettings
from .engine import Engine, Listener
from .providers.pool import ProviderPool
from .errors import MissingKeyError, MoaError
from .events import TurnResult
from .failure import Failure
from .providers import build_provider

if TYPE_CHECKING:
    from .store import SessionInfo, Store

PROMPT_RESERVE = 256  # tokens kept free for the answer when a model has no max_tokens


@dataclass
class TurnOutcome:
    turn: TurnResult  # every answer that arrived, whole or partial
    status: str  # ok | failed | interrupted
    error: MoaError | None = None  # why the turn failed
    # The calls' failures that decided it (every reference of a round, or the aggregator); empty
    # when the turn failed before any call (a missing key) or did not fail.
    failures: tuple[Failure, ...] = ()
    output_errors: list[BaseException] = field(default_factory=list)  # listeners that failed
    turn_id: int | None = None  # where the turn was saved, if it was
    session_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def open_pool(settings: Settings, *, eager: bool = True, many_calls: bool = False) -> ProviderPool:
    """Providers for the mix, built now so a missing key fails before any call starts
    (`eager=False`: each built when first used, for a pool that serves many mixes;
    `many_calls`: for a process that makes many calls, see build_provider)."""
    stored = keystore.load_keys()

    def factory(name: str):
        return build_provider(settings.providers[name], settings.provider_env, stored, settings.local_models,
                              many_calls=many_calls)

    pool = ProviderPool(factory, settings.options.concurrency)
    for name in sorted(settings.mix.providers()) if eager else ():
        try:
            pool.get(name)
        except MissingKeyError:
            _explain_misread(settings, name)
            raise
    return pool


def _explain_misread(settings: Settings, provider: str) -> None:
    """`-r nolab:x` is the default provider's model `nolab:x`: when that provider has no key, the
    likely mistake is the provider's name, so say how the name was read."""
    from .errors import UsageError
    from .providers import misread_prefix

    for model in settings.mix.models():
        if model.provider == provider and misread_prefix(model.model):
            known = ", ".join(sorted(settings.providers))
            raise UsageError(f"'{model.model}' was read as the {provider} model '{model.model}' "
                             f"('{misread_prefix(model.model)}' is no provider); did you mean a provider? "
                             f"Known: {known}") from None


def window_budget(model: ModelSettings) -> int:
    """The tokens of prompt a model's context window leaves room for."""
    window = model.context_window or DEFAULT_CONTEXT_WINDOW
    return max(window - (model.max_tokens or PROMPT_RESERVE) - 32, 64)


def fit_to_window(model: ModelSettings, messages: tuple[dict, ...]) -> tuple[tuple[dict, ...], bool]:
    return prompts.fit_messages(messages, window_budget(model))


class TurnService:
    """Runs turns for one frontend: one provider pool, one optional store, one current session.

    With a store and `settings.options.log` on (the default), every turn is saved; the session is
    created with the first turn unless `session_id` names one to continue.
    """

    def __init__(self, settings: Settings, *, store: "Store | None" = None, session_id: int | None = None,
                 session_name: str | None = None, pool: ProviderPool | None = None,
                 resumed: "SessionInfo | None" = None):
        self.settings = settings
        self.store = store
        self.session_id = session_id
        self.session_name = session_name  # given to the session when the first turn creates it
        # A pool passed in is shared (a server's, for all its requests) and closed by its owner.
        self.pool: ProviderPool | None = pool
        self._owns_pool = pool is None
        self.resumed = resumed  # the session continued, if any
        self._memory: list[dict] = []  # the context when turns are not logged (--no-log)
        self.role: str | None = None  # the role (roles.py) the turns run under, saved on the session
        self._saved_role: str | None = None

    @property
    def logging(self) -> bool:
        # A read-only store is still read (a resumed session's context) but never written.
        return self.store is not None and self.settings.options.log and not self.store.read_only

    async def use(self, settings: Settings) -> None:
        """Switch settings between turns; the providers are reopened when the mix needs others."""
        old, self.settings = self.settings, settings
        if old.mix.providers() != settings.mix.providers() or old.options.concurrency != settings.options.concurrency:
            await self.aclose()
            self._owns_pool = True  # the next turn opens a pool for the new mix (and checks its keys)

    def history(self) -> list[dict]:
        """The conversation so far, from the session, when the settings send it as context."""
        if not self.settings.options.multi_turn:
            return []
        if self.store is not None and self.session_id is not None:
            return self.store.context_messages(self.session_id) + (self._memory if not self.logging else [])
        return list(self._memory)

    def new_session(self) -> None:
        """Forget the conversation: the next turn starts a new session."""
        self.session_id, self.session_name, self.resumed, self._memory = None, None, None, []
        self._saved_role = None  # the new session gets the current role with its first turn

    async def run(self, question: str, *, history: Sequence[dict] | None = None,
                  listeners: Sequence[Listener] = (), replaces: int | None = None) -> TurnOutcome:
        """Run one turn for `question` after `history` (default: the session's context).

        Never raises for a failed turn: the outcome says why. When cancelled (Ctrl-C, a client
        that went away) the partial turn is saved as interrupted and the cancellation goes on.
        """
        history = self.history() if history is None else list(history)
        conversation = [*history, {"role": "user", "content": question}]
        settings = self.settings
        engine = Engine(self.pool, settings.options, listeners, fit=fit_to_window)
        outcome = TurnOutcome(TurnResult(mix=settings.mix.name, started=time.time()), "ok")
        try:
            try:
                if self.pool is None:
                    self.pool = open_pool(settings)  # a missing key fails here, before any call
                    engine.pool = self.pool
                await self.pool.warm_up()  # the SDKs' start-up is not the first round's time
                outcome.turn = await engine.run_turn(settings.mix, conversation)
            except MoaError as error:
                outcome.status, outcome.error = "failed", error
                outcome.failures = tuple(getattr(error, "failures", ()))
                outcome.turn = getattr(error, "turn", None) or engine.turn or outcome.turn
        except asyncio.CancelledError:
            outcome.status, outcome.turn = "interrupted", engine.turn or outcome.turn
            outcome.turn.elapsed = time.time() - outcome.turn.started
            self._save(question, outcome, replaces)
            engine.close_listeners()
            raise
        engine.finish_listeners(outcome.turn, str(outcome.error) if outcome.error else None)
        outcome.output_errors = list(engine.listener_errors)
        self._save(question, outcome, replaces)
        if outcome.ok and not self.logging:
            if replaces is not None:
                self._memory = self._memory[:-2]
            self._memory += [conversation[-1], {"role": "assistant", "content": outcome.turn.final}]
        return outcome

    def _save(self, question: str, outcome: TurnOutcome, replaces: int | None) -> None:
        if not self.logging:
            return
        settings, store = self.settings, self.store
        if self.session_id is None:
            self.session_id = (store.get_or_create_named(self.session_name, settings.mix.name).id
                               if self.session_name else store.create_session(mix=settings.mix.name))
        dollars, unknown = turn_cost(outcome.turn, settings.prices)
        outcome.session_id = self.session_id
        outcome.turn_id = store.add_turn(
            self.session_id, question, outcome.turn, status=outcome.status,
            error=str(outcome.error) if outcome.error else ("interrupted" if outcome.status == "interrupted" else None),
            cost=None if unknown else dollars, replaces=replaces, mix_json=mix_to_json(settings.mix),
        )
        if self.role != self._saved_role:
            store.set_role(self.session_id, self.role)
            self._saved_role = self.role

    async def aclose(self) -> None:
        if self.pool is not None:
            pool, self.pool = self.pool, None
            if self._owns_pool:
                await pool.aclose()

    def close(self) -> None:
        """Close the store (the pool is closed by `aclose`, inside the event loop)."""
        if self.store is not None:
            self.store.close()
            self.store = None


def mix_to_json(mix: Mix) -> str:
    return json.dumps(asdict(mix))


def mix_from_json(text: str) -> Mix | None:
    """The mix a session last ran, from its stored JSON; None when it cannot be read back."""
    try:
        data = json.loads(text)
        known = set(ModelSettings.__dataclass_fields__)

        def model(entry: dict[str, Any]) -> ModelSettings:
            return ModelSettings(**{k: v for k, v in entry.items() if k in known})

        return Mix(
            name=str(data["name"]),
            layers=tuple(tuple(model(m) for m in layer) for layer in data["layers"]),
            aggregator=model(data["aggregator"]),
            strategy=str(data.get("strategy", "synthesize")),
            shuffle=bool(data.get("shuffle", False)),
            description=str(data.get("description", "")),
            base=str(data.get("base", "")),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def open_service(settings: Settings, *, continue_last: bool = False, session_name: str | None = None) -> TurnService:
    """A turn service for a frontend. Turns are logged unless `log` is off; `continue_last` or
    `session_name` continue a session, with the mix it last ran unless flags chose the models."""
    from .errors import UsageError
    from .store import Store

    if session_name is not None and not session_name.strip():
        raise UsageError("--session: expected a session name")
    resuming = continue_last or session_name is not None
    if not settings.options.log and not resuming:
        return TurnService(settings)
    store = Store.open()
    if store.read_only and settings.options.log:
        from .output import warn

        warn(f"{store.path} cannot be written (read-only): turns are answered but not saved")
    try:
        info = store.find_session(session_name) if session_name is not None else (
            store.last_session() if continue_last else None)
        if info is not None and not settings.overrides.picks_models() and not settings.overrides.changes_models():
            stored = store.last_mix_json(info.id)
            mix = mix_from_json(stored) if stored else None
            if mix is not None:
                settings = settings.with_mix(mix)
        service = TurnService(settings, store=store, session_id=info.id if info else None,
                              session_name=session_name.strip() if session_name else None, resumed=info)
        if info is not None:
            service.role = service._saved_role = store.session_role(info.id)
        return service
    except BaseException:
        store.close()
        raise
