"""Running the server: the safety checks, the listening socket, uvicorn, and the SIGTERM drain.

On SIGTERM (or Ctrl-C) uvicorn stops accepting connections, lets the requests in flight finish
for up to `grace` seconds, then cancels the rest (each sends its client a closing error event and
closes its upstream streams), and the process exits 0.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import socket
import sys
from dataclasses import asdict

from ..config import ConfigSource, Overrides, Settings, load_source
from ..errors import UsageError
from ..sanitize import one_line_safe
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


def serve(*, mix: str | None, host: str, port: int, api_key: str | None, insecure: bool, workers: int,
          grace: float, max_body: int, keep_alive: float, log_prompts: bool) -> int:
    import uvicorn

    api_key = (api_key or "").strip() or None  # a key pasted with a newline still works
    if not is_loopback(host) and api_key is None and not insecure:
        raise UsageError(f"refusing to serve on {one_line_safe(host)} without an API key: anyone who can reach it "
                         f"could spend your providers' credit. Set --api-key or {API_KEY_ENV}, or pass --insecure")
    for name, value, low in (("--port", port, 0), ("--workers", workers, 1), ("--grace", grace, 0),
                             ("--max-body", max_body, 1), ("--keep-alive", keep_alive, 0.1)):
        if value < low or (name == "--port" and value > 65535):
            raise UsageError(f"invalid value for {name}: {value}")
    options = ServerOptions(api_key=api_key, max_body=max_body, keep_alive=keep_alive, log_prompts=log_prompts)
    source = load_source()
    settings = _settings(source, mix)
    sock = _bind(host, port)
    _setup_logging()
    logging.getLogger("moa.serve").warning(
        one_line_safe(f"listening on http://{_url_host(host)}:{sock.getsockname()[1]}/v1 "
                      f"(default mix '{settings.mix.name}', {workers} worker{'s' if workers > 1 else ''})"))
    for notice in settings.all_notices():
        logging.getLogger("moa.serve").warning(one_line_safe(f"warning: {notice}"))
    config_args = dict(log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=grace,
                       server_header=False, log_config=None)
    if workers > 1:
        # Each worker is its own process with its own event loop, provider pool and local models;
        # it rebuilds the app from the flags handed down in the environment.
        # The key travels in its own variable, never inside the spec.
        os.environ[WORKER_SPEC] = json.dumps({**asdict(options), "api_key": None, "mix": mix})
        if api_key:
            os.environ[API_KEY_ENV] = api_key
        # uvicorn's public entry point runs the workers; it binds the port itself, so the
        # socket bound above (to report a taken port in one line, and to pick port 0) is freed.
        port = sock.getsockname()[1]
        sock.close()
        runner = lambda: uvicorn.run("moa_cli.server.run:worker_app", factory=True, host=host.strip("[]"),  # noqa: E731
                                     port=port, workers=workers, **config_args)
    else:
        config = uvicorn.Config(create_app(settings, options, source=source), **config_args)
        server = uvicorn.Server(config)
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
    options = ServerOptions(**{**spec, "api_key": os.environ.get(API_KEY_ENV, "").strip() or None})
    source = load_source()
    return create_app(_settings(source, mix), options, source=source)


def _settings(source: ConfigSource, mix: str | None) -> Settings:
    return source.settings(Overrides(mix=mix, log=False))  # the server keeps no sessions


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a taken port is one clear line, not a traceback."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.set_inheritable(True)
    except OSError as error:
        raise UsageError(f"cannot listen on {one_line_safe(host)}:{port}: {error.strerror or error}") from None
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _setup_logging() -> None:
    """The access log and the server's own lines go to stderr, one line each."""
    logger = logging.getLogger("moa.serve")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("moa serve: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
