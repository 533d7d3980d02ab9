"""`moa mcp`: the mixes as an MCP server over stdio, for coding agents that want a second opinion.

Built on the official MCP SDK (the `mcp` extra); imported only by `moa mcp`. What it offers:

    tool ask(question, mix?, include_proposals?)   one Mixture-of-Agents turn
    tool list_mixes()                              the mixes `ask` can use
    resources moa://mixes/NAME                     each mix resolved, as a config table (TOML)

Every turn runs through `TurnService`, like `moa ask`: logged to the sessions database (one
session per turn) unless `--no-log`. A listener turns the engine's events into MCP progress
notifications (each reference that finishes, then the aggregator starting), sent in order by
one task. A client's `notifications/cancelled` cancels the tool's task, and with it every call
of the turn; the partial turn is saved as interrupted, as after a Ctrl-C.

Answers, errors and model ids are outside text: secrets are redacted and control characters
made visible before anything leaves, since an agent may show them on a terminal.
"""

import asyncio
import sys
from typing import Any
from urllib.parse import quote

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resources import FunctionResource
from mcp.types import CallToolResult, TextContent, ToolAnnotations

from . import __version__, signals
from .config import Overrides, Settings, keystore, load_config_file, load_env, load_settings, secret_values
from .errors import MoaError
from .events import CallFinished, CallStarted, Event, Notice, TurnResult
from .sanitize import one_line_safe, terminal_safe
from .secrets import redact, register_secrets
from .service import TurnService, open_pool

ASK_HELP = (
    "Ask a Mixture-of-Agents: several models answer the question in parallel and an aggregator "
    "model writes one final answer from their answers. Good for a second opinion on code, a design "
    "or a diagnosis. Put everything the models need (code, error messages, constraints) in the "
    "question: they see nothing else. `mix` names a mix from list_mixes (default: the server's); "
    "`include_proposals` also returns every reference model's own answer."
)
MAX_QUESTION = 1 << 20  # characters: as much as `-f` files may add up to; past any model's context window
LIST_HELP = "List the mixes the ask tool can use: name, description, models and which one is the default."


def _clean(text: str | None) -> str:
    """Outside text made safe to hand on: no secret, no control character but newline and tab."""
    return terminal_safe(redact(text or ""))


def _one_line(text: str | None) -> str:
    return one_line_safe(redact(text or ""))


class ProgressListener:
    """Engine events -> (progress, total, message) for MCP progress notifications.

    One step per reference (or reviewer) call that finishes, one when the aggregator starts, one
    when it is done. `total` starts from the mix's layers and grows if a strategy plans more
    calls (a review round); `progress` goes up with every notification, as the protocol wants."""

    def __init__(self, settings: Settings, send):
        self.total = sum(len(layer) for layer in settings.mix.layers) + 2
        self.done = 0
        self.notices: list[str] = []
        self._send = send  # called with (progress, total, message); must not block
        self._aggregating = False

    def _step(self, still_to_come: int, message: str) -> None:
        self.done += 1
        self.total = self.done if still_to_come == 0 else max(self.total, self.done + still_to_come)
        self._send(self.done, self.total, _one_line(message))

    def __call__(self, event: Event) -> None:
        if isinstance(event, Notice):
            self.notices.append(_one_line(event.message))
        elif isinstance(event, CallFinished) and event.call.role != "aggregator":
            self._step(2, f"{event.call.role} {event.call.label} (round {event.call.round}): {event.result.status}")
        elif isinstance(event, CallStarted) and event.call.role == "aggregator" and not self._aggregating:
            self._aggregating = True
            self._step(1, f"aggregator {event.call.label} started")
        elif isinstance(event, CallFinished) and event.call.role == "aggregator":
            self._step(0, f"aggregator {event.call.label}: {event.result.status}")


def proposals_of(turn: TurnResult) -> list[dict[str, Any]]:
    return [{"model": _one_line(r.call.label), "round": r.call.round, "role": str(r.call.role), "status": r.status,
             "text": _clean(r.text),
             "error": _one_line(r.failure.describe()) if r.failure else None,
             "failure": {"kind": r.failure.kind.value, "status": r.failure.status} if r.failure else None}
            for rnd in turn.rounds for r in rnd]


class MoaMcp:
    """The state one `moa mcp` process keeps: base settings, one provider pool, one store."""

    def __init__(self, settings: Settings):
        self.settings = settings
        # Every key this process could leak joins the registry, so every `redact` hides it.
        register_secrets(*secret_values(settings.providers, load_env(), keystore.load_keys()))
        self.pool = open_pool(settings, eager=False)  # shared by every turn; providers built on first use
        self.store = None
        if settings.options.log:
            from .store import Store

            self.store = Store.open()

    def settings_for(self, mix: str | None) -> Settings:
        """The server's settings, or those of the mix an agent named (checked like `--mix`)."""
        if not mix:
            return self.settings
        return load_settings(Overrides(mix=mix, log=self.settings.overrides.log))

    async def ask(self, question: str, mix: str | None, include_proposals: bool, ctx: Context) -> CallToolResult:
        if not question.strip():
            return _error("empty question")
        if len(question) > MAX_QUESTION:
            return _error(f"the question is too long ({len(question):,} characters; at most {MAX_QUESTION:,})")
        try:
            settings = self.settings_for(mix)
            for provider in sorted(settings.mix.providers()):
                self.pool.get(provider)  # a missing key is one clear error before any call
        except MoaError as error:
            return _error(error.message)
        queue: asyncio.Queue = asyncio.Queue()  # at most calls + 2 items: bounded by the mix
        listener = ProgressListener(settings, lambda *item: queue.put_nowait(item))

        async def send_progress():
            while (item := await queue.get()) is not None:
                try:
                    await ctx.report_progress(*item)
                except Exception:  # noqa: BLE001 - a client that cannot take progress still gets its answer
                    pass

        sender = asyncio.create_task(send_progress())
        service = TurnService(settings, store=self.store, pool=self.pool)
        try:
            outcome = await service.run(question, listeners=[listener])
        except BaseException:
            sender.cancel()  # cancelled by the client: the service saved the partial turn
            raise
        queue.put_nowait(None)
        await sender  # every progress notification goes out before the result
        data: dict[str, Any] = {
            "answer": _clean(outcome.turn.final),
            "mix": _one_line(settings.mix.name),
            "status": outcome.status,
            "warnings": listener.notices,
            "session_id": outcome.session_id,
            "turn_id": outcome.turn_id,
        }
        if include_proposals:
            data["proposals"] = proposals_of(outcome.turn)
        if outcome.error is not None:
            data["error"] = _one_line(outcome.error.message)
            return CallToolResult(content=[TextContent(type="text", text=data["error"])],
                                  structured_content=data, is_error=True)
        content = [TextContent(type="text", text=data["answer"])]
        for n, proposal in enumerate(data.get("proposals", []), 1):
            kind = "Review" if proposal["role"] == "reviewer" else "Reference answer"
            head = f"{kind} {n} ({proposal['model']}, round {proposal['round']}, {proposal['status']}):"
            content.append(TextContent(type="text", text=f"{head}\n\n{proposal['text'] or proposal['error'] or ''}"))
        return CallToolResult(content=content, structured_content=data)

    def list_mixes(self) -> list[dict[str, Any]]:
        from .commands.mixes import describe_shape

        default = self.settings.mix.name
        mixes = []
        for name in sorted(mix_tables()):
            try:
                mix = self.settings_for(name).mix
            except MoaError:
                continue  # a built-in mix on a provider this config lacks
            mixes.append({"name": _one_line(name), "description": _one_line(mix.description),
                          "models": _one_line(describe_shape(mix)), "default": name == default,
                          "resource": mix_uri(name)})
        return mixes

    def mix_toml(self, name: str) -> str:
        from .commands.mixes import show_mix
        from .config import paths

        settings, user = self.settings_for(name), load_config_file(paths.config_file()).get("mixes", {})
        origin = str(paths.config_file()) if name in user else "built-in"
        return _clean(show_mix(settings.mix, mix_tables()[name], origin))

    async def aclose(self) -> None:
        await self.pool.aclose()
        if self.store is not None:
            self.store.close()


def mix_tables() -> dict[str, Any]:
    """Every mix's raw table, by name: the built-in ones, and the config file's over them."""
    from .config import builtin_mixes, paths

    return {**builtin_mixes.BUILTIN_MIXES, **load_config_file(paths.config_file()).get("mixes", {})}


def mix_uri(name: str) -> str:
    return f"moa://mixes/{quote(name, safe='')}"


def _error(message: str) -> CallToolResult:
    text = _one_line(message)
    return CallToolResult(content=[TextContent(type="text", text=text)],
                          structured_content={"error": text, "status": "failed"}, is_error=True)


def build_server(state: MoaMcp) -> MCPServer:
    server = MCPServer(
        name="moa", version=__version__, log_level="WARNING",
        instructions="moa answers with a Mixture-of-Agents: call `ask` for a second opinion from several models.",
    )

    @server.tool(name="ask", description=ASK_HELP, structured_output=False,
                 annotations=ToolAnnotations(title="Ask a Mixture-of-Agents", read_only_hint=True, open_world_hint=True))
    async def ask(question: str, ctx: Context, mix: str | None = None, include_proposals: bool = False) -> CallToolResult:
        return await state.ask(question, mix, include_proposals, ctx)

    @server.tool(name="list_mixes", description=LIST_HELP,
                 annotations=ToolAnnotations(title="List the mixes", read_only_hint=True))
    def list_mixes() -> list[dict[str, Any]]:
        return state.list_mixes()

    for entry in state.list_mixes():
        name = entry["name"]
        server.add_resource(FunctionResource(
            uri=mix_uri(name), name=name, title=f"mix {name}", mime_type="application/toml",
            description=entry["description"] or entry["models"], fn=lambda name=name: state.mix_toml(name)))
    return server


def serve_stdio(*, mix: str | None = None, log: bool | None = None) -> int:
    """Run the MCP server on stdin/stdout until the client closes stdin."""
    settings = load_settings(Overrides(mix=mix, log=log))
    from .output import warn

    for notice in settings.all_notices():
        warn(notice)  # stderr: stdout carries the protocol
    if sys.stdin.isatty():
        warn("moa mcp speaks MCP (JSON-RPC) on stdin/stdout, for an agent to start it: see `moa mcp --help`; "
             "Ctrl-C stops it")
    state = MoaMcp(settings)

    async def run():
        try:
            await build_server(state).run_stdio_async()
        finally:
            await state.aclose()

    try:
        signals.run_until_stopped(run)  # SIGTERM: turns in flight are saved as interrupted
    except signals.Stopped as stopped:
        return stopped.code
    return 0
