"""The Starlette app: `GET /v1/models`, `POST /v1/chat/completions`, `GET /health`.

No web page may drive the server: every request, on every endpoint, must name an allowed Host
(loopback names, the bound address, `--allow-host`: DNS rebinding gets nothing), must carry no
Origin but one named with `--cors-origin` (whose preflights Starlette's CORSMiddleware answers),
and a POST must be `application/json` (no form or text/plain "simple request" gets through).
The server never calls itself: its upstream requests carry HOP_HEADER, and a request that
arrives with it is refused.

No request blocks the event loop for long: a large body is parsed in a worker thread (at most
HEAVY_SLOTS at a time), piece by piece (`protocol.load_body`: one `json.loads` of megabytes
would hold the GIL, and so the event loop, for its whole 100+ ms), and only the newest
`max_messages` messages go on; trimming them to the mix's context window is then cheap. So
`/health` and every other request keep being answered.

A client that goes away cancels its turn, and with it every upstream stream, at any point:
while the references work (before the first token is sent) as well as while the aggregator
streams. The response watches the ASGI `receive` channel for `http.disconnect` itself, so
nothing in between may swallow that message: `Guard` is a plain ASGI middleware, never
Starlette's BaseHTTPMiddleware.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import logging
import time
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..config import ConfigSource, Settings, keystore, secret_values
from ..providers.pool import ProviderPool
from ..secrets import redact, register_secrets
from ..sanitize import json_dumps, one_line_safe
from ..service import TurnService, fit_to_window, open_pool, window_budget
from . import protocol, stream
from .catalog import Catalog, unknown_model
from .protocol import ApiError, ChatCall

log = logging.getLogger("moa.serve")

SHUTDOWN = "the server is shutting down; try again"
HOP_HEADER = "X-Moa-Hop"  # on every request this server sends upstream
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
HEAVY_BODY = 64 * 1024  # bytes: a body this large (~2 ms of parsing) is parsed in a worker thread
HEAVY_SLOTS = 2  # worker threads parsing at once; more large requests wait their turn


@dataclass(frozen=True)
class ServerOptions:
    api_key: str | None = None  # every /v1 request needs `Authorization: Bearer KEY`
    max_body: int = 4 * 1024 * 1024  # bytes; a larger request body is a 413
    keep_alive: float = 5.0  # seconds between SSE comments while no token is ready
    log_prompts: bool = False  # put the question in the access log
    bound_host: str = "127.0.0.1"  # the address listened on: a Host header may name it
    allow_hosts: tuple[str, ...] = ()  # more Host names accepted ("*": any)
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call ("*": any)
    send_timeout: float = 60.0  # seconds a client may leave a response unread before it is dropped
    # Messages of a conversation passed on (the newest; the system message always): the SDKs
    # check every message in the event loop before sending (~0.1-0.4 ms each), so this bounds
    # how long any one call can hold up the other requests.
    max_messages: int = 64


def create_app(settings: Settings, options: ServerOptions = ServerOptions(), pool: ProviderPool | None = None,
               source: ConfigSource | None = None) -> Starlette:
    """The ASGI app for one process. `settings` (from `source`, this process's config when not
    given) run the default model; `pool` (the providers, shared by every request) is built
    here when not given, and closed when the app shuts down."""
    source = source or ConfigSource.load()
    # Every key this process could leak (those of providers outside the mix too, and the
    # server's own) joins the process-wide registry, so every `redact` call hides them.
    register_secrets(*secret_values(settings.providers, settings.provider_env, keystore.load_keys()), options.api_key)
    catalog = Catalog(source, settings)
    shared = {"pool": pool, "heavy": None}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        shared["heavy"] = asyncio.Semaphore(HEAVY_SLOTS)
        if shared["pool"] is None:
            shared["pool"] = open_pool(with_hop_header(settings), many_calls=True)
        try:
            yield
        finally:
            await shared["pool"].aclose()

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [_model(m) for m in catalog.model_ids]})

    async def model(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in catalog.model_ids:
            raise unknown_model()
        return JSONResponse(_model(name))

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def chat(request: Request) -> Response:
        raw = await _read_body(request, options.max_body)
        note = request.scope.setdefault("state", {})
        if len(raw) < HEAVY_BODY:
            call = protocol.parse_bounded(raw, request.headers, options.max_messages)
        else:
            async with shared["heavy"]:
                call = await asyncio.to_thread(protocol.parse_bounded, raw, request.headers, options.max_messages)
        note["model"] = call.model
        if options.log_prompts:
            note["prompt"] = call.question
        turn_settings = catalog.settings_for(call.model, call.overrides)
        # Trimmed to the largest context window of the mix here (each call trims further to its
        # own model's), so the turn never copies more messages than a model can take.
        widest = max(turn_settings.mix.models(), key=window_budget)
        messages, trimmed = fit_to_window(widest, (*call.history, {"role": "user", "content": call.question}))
        if trimmed:
            call = dataclasses.replace(call, history=messages[:-1], question=messages[-1]["content"])
        return TurnResponse(call, TurnService(turn_settings, pool=shared["pool"]), options)

    async def api_error(request: Request, error: ApiError) -> Response:
        return JSONResponse(error.body(), status_code=error.status)

    async def http_error(request: Request, error: HTTPException) -> Response:
        message = "no such endpoint" if error.status_code == 404 else str(error.detail)
        return JSONResponse(ApiError(error.status_code, message).body(), status_code=error.status_code)

    middleware = [Middleware(Guard, options=options)]
    if options.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        # Only the named origins, only the methods and headers the API uses; no cookies.
        middleware.append(Middleware(
            CORSMiddleware, allow_origins=list(options.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-moa-reasoning", "x-moa-proposals"],
            allow_credentials=False, max_age=600))
    middleware.append(Middleware(Authorization, api_key=options.api_key))
    return Starlette(
        routes=[
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/models/{name:path}", model, methods=["GET"]),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ],
        middleware=middleware,
        exception_handlers={ApiError: api_error, HTTPException: http_error},
        lifespan=lifespan,
    )


def with_hop_header(settings: Settings) -> Settings:
    """The settings whose remote providers send HOP_HEADER on every request: a request that
    comes back to this server (a `vllm` preset pointing here, a loop through other servers
    passing headers on) is recognised and refused."""
    providers = {name: spec if spec.kind == "local" else
                 dataclasses.replace(spec, headers={**spec.headers, HOP_HEADER: "1"})
                 for name, spec in settings.providers.items()}
    return dataclasses.replace(settings, providers=providers)


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "moa"}


async def _read_body(request: Request, limit: int) -> bytes:
    too_large = ApiError(413, f"the request body is larger than the limit of {limit} bytes",
                         code="request_too_large")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large
    body = bytearray()
    try:
        async for piece in request.stream():
            body += piece
            if len(body) > limit:
                raise too_large
    except ClientDisconnect:
        raise ApiError(499, "the client closed the connection") from None
    return bytes(body)


class TurnResponse:
    """An ASGI response that runs one turn and sends it, whole or streamed, while watching for
    the client to go away. A client gone, or the server's shutdown grace period over, cancels
    the turn: every upstream stream is closed before this returns."""

    def __init__(self, call: ChatCall, service: TurnService, options: ServerOptions):
        self.call, self.service, self.options = call, service, options
        self.call_id, self.created = protocol.new_id(), int(time.time())
        self.started = False  # the response's status line is out

    async def __call__(self, scope, receive, send) -> None:
        note = scope.setdefault("state", {})
        call = self.call
        if call.stream:
            queue: asyncio.Queue = asyncio.Queue()
            turn = asyncio.create_task(self.service.run(call.question, history=call.history,
                                                        listeners=[queue.put_nowait]))
            turn.add_done_callback(lambda _: queue.put_nowait(stream.END))
            writer = asyncio.create_task(self._stream(send, queue, turn))
        else:  # a whole answer needs only the outcome: no events are queued for nobody to read
            turn = asyncio.create_task(self.service.run(call.question, history=call.history))
            writer = asyncio.create_task(self._whole(send, turn))
        watcher = asyncio.create_task(_disconnected(receive))
        try:
            done, _ = await asyncio.wait({writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if writer not in done:
                note["outcome"] = "client closed"
            else:
                writer.result()
        except TimeoutError:  # (an OSError: first) the client stopped reading, its socket buffer stayed full
            note["outcome"] = "client stopped reading"
        except OSError:  # the client left while a write was under way
            note["outcome"] = "client closed"
        except asyncio.CancelledError:
            # Only uvicorn cancels a request's task: its shutdown grace period is over. The turn
            # is cancelled below and the client told; ending normally here (not re-raising) is
            # what a clean stop means, where a re-raise would be logged as a crash with a traceback.
            note["outcome"] = "cancelled at shutdown"
            await self._say_goodbye(send)
        finally:
            for task in (writer, watcher, turn):
                task.cancel()
            try:
                await asyncio.gather(writer, watcher, turn, return_exceptions=True)
            except asyncio.CancelledError:
                pass  # cancelled again as the event loop closes: the turn is cancelled already
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                outcome = turn.result()
                total = outcome.turn.total_usage()
                note["tokens"] = (total.prompt_tokens, total.completion_tokens)
                note.setdefault("outcome", outcome.status)

    async def _whole(self, send, turn: asyncio.Task) -> None:
        outcome = await turn
        if not outcome.ok:
            error = stream.failure(outcome)
            await self._send_json(send, error.status, error.body())
            return
        body = protocol.completion(self.call_id, self.call.model, outcome.turn.final,
                                   stream.usage_of(outcome.turn), self._extras(outcome))
        await self._send_json(send, 200, body)

    async def _stream(self, send, queue: asyncio.Queue, turn: asyncio.Task) -> None:
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                   (b"x-accel-buffering", b"no")]  # tells nginx-like proxies not to hold the stream
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        self.started = True
        events = stream.TurnStream(self.call, self.call_id, self.created)
        async for data in stream.sse_body(events, queue, turn, self.options.keep_alive, self._extras):
            async with asyncio.timeout(self.options.send_timeout):
                await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _extras(self, outcome) -> dict:
        return {"moa": stream.proposals(outcome)} if self.call.proposals else {}

    async def _send_json(self, send, status: int, body: dict) -> None:
        data = json_dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        self.started = True
        async with asyncio.timeout(self.options.send_timeout):
            await send({"type": "http.response.body", "body": data})

    async def _say_goodbye(self, send) -> None:
        """Cancelled by the shutdown: end the response properly if the client is still there."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                error = ApiError(503, SHUTDOWN, kind="server_error", code="server_shutdown")
                if not self.started:
                    await self._send_json(send, 503, error.body())
                elif self.call.stream:
                    await send({"type": "http.response.body", "body": protocol.event(error.body()) + protocol.DONE,
                                "more_body": False})


async def _disconnected(receive) -> None:
    """Returns when the client has gone (the request body was read before the turn started)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _error(status: int, message: str, code: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(ApiError(status, message, kind=kind, code=code).body(), status_code=status)


def host_name(host: str) -> str:
    """The name in a Host header, without its port: `[::1]:80` -> `::1`, `a.b:80` -> `a.b`."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else host


class Guard:
    """Plain ASGI middleware, outermost: the browser-origin checks, refusing self-calls, one
    access-log line per request, and a one-line 500 for a bug (never a stack trace)."""

    def __init__(self, app, options: ServerOptions):
        self.app, self.options = app, options
        hosts = {*LOOPBACK_NAMES, host_name(options.bound_host), *(host_name(h) for h in options.allow_hosts)}
        self.any_host = "*" in options.allow_hosts
        self.hosts = frozenset(hosts)
        self.any_origin = "*" in options.cors_origins
        self.origins = frozenset(o.rstrip("/").lower() for o in options.cors_origins)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        note = scope.setdefault("state", {})
        status = {"code": None}

        async def watched_send(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            refusal = self._refusal(scope)
            if refusal is not None:
                note["outcome"] = "refused"
                await refusal(scope, receive, watched_send)
            else:
                await self.app(scope, receive, watched_send)
        except Exception as error:  # noqa: BLE001 - a bug in moa: one line in the log, a 500 out
            note["outcome"] = f"internal error: {type(error).__name__}: {str(error)[:300]}"
            if status["code"] is None:
                body = ApiError(500, "internal error in moa serve", kind="server_error").body()
                with contextlib.suppress(Exception):
                    await JSONResponse(body, status_code=500)(scope, receive, watched_send)
        finally:
            self._log(scope, note, status["code"], time.perf_counter() - t0)

    def _refusal(self, scope) -> Response | None:
        """The error response for a request no client of this server may send, or None."""
        seen: dict[bytes, list[bytes]] = {}
        for name, value in scope["headers"]:
            if name in (b"host", b"origin", b"authorization", b"content-type", HOP_HEADER.lower().encode()):
                seen.setdefault(name, []).append(value)
        hosts, origins = seen.get(b"host", []), seen.get(b"origin", [])
        if len(hosts) > 1 or len(origins) > 1:
            return _error(400, "the request has more than one Host or Origin header", "duplicate_header")
        if hosts and not self.any_host and host_name(hosts[0].decode("latin-1")) not in self.hosts:
            # DNS rebinding: a web page's own name resolved to this machine. Never served.
            return _error(403, "this Host is not served here: start moa serve with --allow-host NAME to serve it",
                          "host_not_allowed", "permission_error")
        if origins and not self.any_origin and origins[0].decode("latin-1").rstrip("/").lower() not in self.origins:
            # A web page (any site the user visits, or `null` from a sandbox) calling: refused
            # unless named, whatever the endpoint, with or without an API key.
            return _error(403, "requests from web pages are refused: start moa serve with --cors-origin URL "
                               "to allow one", "origin_not_allowed", "permission_error")
        if HOP_HEADER.lower().encode() in seen:
            return _error(508, "the request came from a moa server: moa serve never calls itself (check the "
                               "providers' base URLs)", "loop_detected")
        if len(seen.get(b"authorization", [])) > 1:
            return _error(400, "the request has more than one Authorization header", "duplicate_header")
        if scope["method"] == "POST":
            kind = b"".join(seen.get(b"content-type", [])[:1]).split(b";")[0].strip().lower()
            if kind != b"application/json" or len(seen.get(b"content-type", [])) > 1:
                return _error(415, "a POST must be sent with Content-Type: application/json", "unsupported_media_type")
        return None

    def _log(self, scope, note: dict, status: int | None, seconds: float) -> None:
        client = (scope.get("client") or ("-",))[0]
        parts = [str(client), scope["method"][:20], scope["path"][:200]]
        if "model" in note:
            parts.append(f"model={note['model'][:100]}")
        parts += [f"status={status or '-'}", f"{seconds * 1000:.0f}ms"]
        if "tokens" in note:
            parts.append("tokens={}+{}".format(*note["tokens"]))
        if note.get("outcome") not in (None, "ok"):
            parts.append(f"outcome={note['outcome']}")
        if "prompt" in note:
            parts.append("prompt=" + json.dumps(note["prompt"][:500], ensure_ascii=False))
        log.info(one_line_safe(redact(" ".join(parts))))


class Authorization:
    """Plain ASGI middleware, inside CORS (so a browser UI can read a 401): the API key check."""

    def __init__(self, app, api_key: str | None):
        self.app, self.api_key = app, api_key

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1") and not self._authorized(scope):
            error = ApiError(401, "missing or wrong API key: send Authorization: Bearer KEY",
                             kind="authentication_error", code="invalid_api_key")
            return await JSONResponse(error.body(), status_code=401)(scope, receive, send)
        await self.app(scope, receive, send)

    def _authorized(self, scope) -> bool:
        if self.api_key is None:
            return True
        header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = header.partition(" ")
        # Constant-time comparison: the time taken says nothing about how much of the key matched.
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.api_key.encode())
