"""Running the server: the safety checks, the listening socket, uvicorn, and the SIGTERM drain.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections, lets the requests in flight finish
for up to `grace` seconds, then cancels the rest (each sends its client a closing error event and
closes its upstream streams), and the process exits 0. A second signal (SIGTERM or Ctrl-C) ends
the wait at once, the same clean way.

moa binds the listening socket itself, for one worker and for N (uvicorn's supervisor is handed
the socket): a taken port is one clear line, and the socket has TCP_NODELAY, which uvicorn's own
multi-worker socket lacks (every small write would wait ~40 ms for the client's delayed ACK).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
from dataclasses import asdict

import uvicorn

from ..config import ConfigSource, Overrides, Settings, load_source
from ..errors import UsageError
from ..sanitize import one_line_safe
from ..secrets import redact
from .app import ServerOptions, create_app

WORKER_SPEC = "MOA_SERVE_WORKER_SPEC"  # how the parent hands its flags to `--workers` processes
API_KEY_ENV = "MOA_SERVER_API_KEY"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


DEFAULT_PORT = 8484  # not vLLM's 8000, llama.cpp's 8080, LiteLLM's 4000 nor Ollama's 11434


def serve(*, mix: str | None, host: str, port: int, api_key: str | None, insecure: bool, workers: int,
          grace: float, max_body: int, keep_alive: float, log_prompts: bool, allow_hosts: tuple[str, ...] = (),
          cors_origins: tuple[str, ...] = (), header_timeout: float = 10.0, idle_timeout: float = 60.0,
          max_messages: int = 64) -> int:
    api_key = (api_key or "").strip() or None  # a key pasted with a newline still works
    if not is_loopback(host) and api_key is None and not insecure:
        raise UsageError(f"refusing to serve on {one_line_safe(host)} without an API key: anyone who can reach it "
                         f"could spend your providers' credit. Set --api-key or {API_KEY_ENV}, or pass --insecure")
    for name, value, low in (("--port", port, 0), ("--workers", workers, 1), ("--grace", grace, 0),
                             ("--max-body", max_body, 1), ("--keep-alive", keep_alive, 0.1),
                             ("--header-timeout", header_timeout, 0.05), ("--idle-timeout", idle_timeout, 0.05),
                             ("--max-messages", max_messages, 1)):
        if value < low or (name == "--port" and value > 65535):
            raise UsageError(f"invalid value for {name}: {value}")
    cors_origins = tuple(_origin(o) for o in cors_origins)
    allow_hosts = tuple(_allowed_host(h) for h in allow_hosts)
    options = ServerOptions(api_key=api_key, max_body=max_body, keep_alive=keep_alive, log_prompts=log_prompts,
                            bound_host=host, allow_hosts=allow_hosts, cors_origins=cors_origins,
                            send_timeout=idle_timeout, max_messages=max_messages)
    source = load_source()
    settings = _settings(source, mix)
    sock = _bind(host, port)
    _setup_logging()
    _set_limits(header_timeout, idle_timeout)
    _share_the_gil()
    logging.getLogger("moa.serve").warning(
        one_line_safe(f"listening on http://{_url_host(host)}:{sock.getsockname()[1]}/v1 "
                      f"(default mix '{settings.mix.name}', {workers} worker{'s' if workers > 1 else ''})"))
    for notice in settings.all_notices():
        logging.getLogger("moa.serve").warning(one_line_safe(f"warning: {notice}"))
    from .http import BoundedH11Protocol, Limits

    config_args = dict(log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=grace,
                       server_header=False, log_config=None, http=BoundedH11Protocol,
                       h11_max_incomplete_event_size=Limits.max_head + 1024)
    if workers > 1:
        from uvicorn.supervisors import Multiprocess

        # Each worker is its own process with its own event loop, provider pool and local models;
        # it rebuilds the app from the flags handed down in the environment.
        # The key travels in its own variable, never inside the spec.
        os.environ[WORKER_SPEC] = json.dumps({**asdict(options), "api_key": None, "mix": mix,
                                              "header_timeout": header_timeout, "idle_timeout": idle_timeout})
        if api_key:
            os.environ[API_KEY_ENV] = api_key
        # uvicorn's supervisor runs the workers on moa's own socket (it has TCP_NODELAY).
        config = uvicorn.Config("moa_cli.server.run:worker_app", factory=True, workers=workers, **config_args)
        runner = lambda: Multiprocess(config, sockets=[sock]).run()  # noqa: E731
    else:
        config = uvicorn.Config(create_app(settings, options, source=source), **config_args)
        server = GracefulServer(config)
        runner = lambda: server.run(sockets=[sock])  # noqa: E731
    # uvicorn re-raises the signal that stopped it once it has drained; by then the work is done
    # cleanly, so that second delivery must not kill the process with a non-zero status.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        runner()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


def worker_app():
    """The app of one `--workers` process (uvicorn calls this in each of them)."""
    _setup_logging()
    spec = json.loads(os.environ[WORKER_SPEC])
    mix = spec.pop("mix")
    _set_limits(spec.pop("header_timeout"), spec.pop("idle_timeout"))
    _share_the_gil()
    spec = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
    options = ServerOptions(**{**spec, "api_key": os.environ.get(API_KEY_ENV, "").strip() or None})
    source = load_source()
    return create_app(_settings(source, mix), options, source=source)


def _share_the_gil() -> None:
    """While a worker thread parses a large body, the event loop's thread gets the GIL back
    within 1 ms instead of Python's default 5 ms, after each of the several system calls a
    request makes: `/health` stays fast while a huge request is parsed."""
    sys.setswitchinterval(0.001)


def _set_limits(header_timeout: float, idle_timeout: float) -> None:
    from .http import Limits

    Limits.header_timeout, Limits.idle_timeout = header_timeout, idle_timeout


class GracefulServer(uvicorn.Server):
    """uvicorn's server, where a second signal (SIGTERM or Ctrl-C) ends the drain at once the
    way the end of the grace period does: every request still running is cancelled (its client
    gets the closing error, its upstream streams are closed) and the app shuts down normally.
    uvicorn's own force-exit would skip that shutdown and print a traceback."""

    def handle_exit(self, sig, frame) -> None:
        if not self.should_exit:
            return super().handle_exit(sig, frame)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        loop.call_soon_threadsafe(self._cancel_requests)

    def _cancel_requests(self) -> None:
        for task in list(self.server_state.tasks):
            task.cancel(msg="a second signal: shutting down now")


def _origin(value: str) -> str:
    """A `--cors-origin`: `*`, or scheme://host[:port] with nothing after it."""
    from urllib.parse import urlsplit

    value = value.strip().rstrip("/")
    if value == "*":
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise UsageError(f"invalid value for --cors-origin: expected an origin like http://localhost:3000, "
                         f"got {one_line_safe(value[:100])}")
    return value.lower()


def _allowed_host(value: str) -> str:
    value = value.strip().lower()
    if not value or any(ch.isspace() or ch in "/@" for ch in value):
        raise UsageError(f"invalid value for --allow-host: expected a host name like myhost.lan, "
                         f"got {one_line_safe(value[:100])}")
    return value


def _settings(source: ConfigSource, mix: str | None) -> Settings:
    return source.settings(Overrides(mix=mix, log=False))  # the server keeps no sessions


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port is one clear line, not a traceback."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: small writes go out at once (see the module's doc).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError as error:
        raise UsageError(f"cannot listen on {one_line_safe(host)}:{port}: {error.strerror or error}") from None
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class _SafeFormatter(logging.Formatter):
    """One line, control characters made visible, secrets removed: uvicorn's lines too."""

    def format(self, record: logging.LogRecord) -> str:
        return "moa serve: " + one_line_safe(redact(record.getMessage()[:2000]))


def _setup_logging() -> None:
    """The access log and the server's own lines go to stderr, one line each; uvicorn's own
    lines ("Invalid HTTP request received.") the same way, with the same prefix."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_SafeFormatter())
    for name, level in (("moa.serve", logging.INFO), ("uvicorn", logging.WARNING)):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
            logger.setLevel(level)
            logger.propagate = False
