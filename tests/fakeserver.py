"""A small OpenAI-compatible HTTP server for tests and benchmarks.

Serves `/v1/chat/completions` (streaming SSE or plain JSON, with usage) and `/v1/models` on
127.0.0.1. Each model can be scripted: delays, injected HTTP errors (with Retry-After), a hang,
or a stream that drops mid-answer. Every request is logged with what it carried and when.

Use it in-process (`FakeServer().start()`), or run it: `python tests/fakeserver.py --port 8123
--script script.json` where the JSON maps model names to behaviours.
"""

from __future__ import annotations

import argparse
import json
import select
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    reply: str | None = None  # default: "<model> answer <n>: <start of last user message>"
    delay: float = 0.0  # seconds before the first token
    chunk_delay: float = 0.0  # seconds between tokens
    chunk_words: int = 1  # words per streamed chunk
    errors: list = field(default_factory=list)  # [{"status": 429, "retry_after": 0.1}], used up in order;
    # an entry without "status" changes one request instead: [{"drop_after": 2}] drops it once
    status: int | None = None  # a permanent HTTP error
    hang: bool = False  # send headers, then nothing until the client leaves or the server stops
    drop_after: int | None = None  # close the connection after this many chunks, with no [DONE]
    message: str | None = None  # the error message of injected errors (default "injected <status>")
    finish_reason: str = "stop"  # "length" pretends the reply hit max_tokens
    # Hostile servers. `raw`: stream these pieces verbatim (str or bytes, each written as it is,
    # so the script supplies the `data: ` and blank lines), `raw_delay` seconds apart, then close;
    # `raw_forever`: after `raw`, send this piece every `raw_delay` seconds until the client leaves.
    raw: list | None = None
    raw_delay: float = 0.0
    raw_forever: str | bytes | None = None
    # `response`: {"status": 302, "body": str or JSON value, "headers": {...}}, sent as it is.
    response: dict | None = None
    usage: dict | None = None  # the usage object of the stream's last event, as given
    # {substring of the last user message: reply}; the first that matches wins over `reply`
    replies: dict = field(default_factory=dict)
    # {substring of the system message: reply}, checked before `replies`: an aggregator whose
    # answer depends on the proposals it was shown
    system_replies: dict = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the default 5 drops connections when many calls start at once


class FakeServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str | None = None,
                 keep_alive: bool = False):
        self.behaviours: dict[str, Behaviour] = {}
        # Streams close their connection by default; with keep_alive they are sent chunked and
        # the connection stays open for the client's next request, as real APIs do.
        self.keep_alive = keep_alive
        self.log: list[dict] = []
        self.counts: dict[str, int] = {}
        self.api_key = api_key
        self.known_models: set[str] | None = None  # when set, other models get a 404
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.httpd = _Server((host, port), _make_handler(self))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        """The root URL (the together SDK appends /v1 itself)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def script(self, model: str, **behaviour) -> "FakeServer":
        self.behaviours[model] = Behaviour(**behaviour)
        return self

    def requests(self, model: str | None = None) -> list[dict]:
        with self._lock:
            return [r for r in self.log if r.get("path", "").endswith("/chat/completions")
                    and (model is None or r.get("model") == model)]

    def start(self) -> "FakeServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- used by the handler
    def _next(self, model: str) -> tuple[int, Behaviour, dict | None]:
        with self._lock:
            n = self.counts.get(model, 0) + 1
            self.counts[model] = n
            behaviour = self.behaviours.get(model) or self.behaviours.get("*") or Behaviour()
            error = behaviour.errors.pop(0) if behaviour.errors else None
        return n, behaviour, error

    def _record(self, entry: dict) -> dict:
        with self._lock:
            self.log.append(entry)
        return entry


def _make_handler(server: FakeServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY: each streamed chunk leaves at once, as from a real API, instead of waiting
        # ~40 ms for the client's delayed ACK (which made every streamed answer look slow).
        disable_nagle_algorithm = True

        def log_message(self, *args):  # keep test output quiet
            pass

        def _json(self, status: int, payload: dict, headers: dict | None = None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            self.end_headers()
            self.wfile.write(body)

        def _authorized(self) -> bool:
            if server.api_key is None:
                return True
            return self.headers.get("Authorization") == f"Bearer {server.api_key}"

        def do_GET(self):
            entry = server._record({"path": self.path, "received": time.time()})
            if not self._authorized():
                entry["outcome"] = 401
                return self._json(401, {"error": {"message": "Invalid API key", "type": "auth"}})
            if self.path.rstrip("/").endswith("/models"):
                names = sorted(server.known_models or server.behaviours.keys() - {"*"})
                entry["outcome"] = 200
                return self._json(200, {"object": "list", "data": [{"id": n, "object": "model"} for n in names]})
            self._json(404, {"error": {"message": "not found"}})

        def do_POST(self):
            received = time.time()
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            model = body.get("model", "")
            entry = server._record({
                "path": self.path, "model": model, "body": body, "received": received,
                "authorized": self.headers.get("Authorization") is not None,
                "headers": {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"},
            })
            if not self.path.rstrip("/").endswith("/chat/completions"):
                entry["outcome"] = 404
                return self._json(404, {"error": {"message": f"no route {self.path}"}})
            if not self._authorized():
                entry["outcome"] = 401
                return self._json(401, {"error": {"message": "Invalid API key provided", "type": "auth"}})
            if server.known_models is not None and model not in server.known_models:
                entry["outcome"] = 404
                return self._json(404, {"error": {"message": f"The model `{model}` does not exist"}})
            n, behaviour, error = server._next(model)
            if error and not error.get("status"):
                behaviour = replace(behaviour, **{k: v for k, v in error.items() if k != "retry_after"})
            if behaviour.response is not None:
                entry["outcome"] = behaviour.response.get("status", 200)
                return self._verbatim(behaviour.response)
            status = (error or {}).get("status") or behaviour.status
            if status:
                entry["outcome"] = status
                headers = {}
                retry_after = (error or {}).get("retry_after")
                if retry_after is not None:
                    headers["Retry-After"] = retry_after
                message = behaviour.message if behaviour.message is not None else f"injected {status}"
                return self._json(status, {"error": {"message": message, "type": "injected"}}, headers)
            reply = _matching_system_reply(behaviour.system_replies, body)
            if reply is None:
                reply = _matching_reply(behaviour.replies, body)
            if reply is None:
                reply = behaviour.reply if behaviour.reply is not None else _default_reply(model, n, body)
            words = reply.split(" ")
            pieces = [" ".join(words[i:i + behaviour.chunk_words]) for i in range(0, len(words), behaviour.chunk_words)]
            pieces = [p if i == 0 else " " + p for i, p in enumerate(pieces)]
            usage = {"prompt_tokens": _count_prompt(body), "completion_tokens": len(pieces),
                     "total_tokens": _count_prompt(body) + len(pieces)}
            if behaviour.usage is not None:
                usage = behaviour.usage
            entry["n"] = n
            if body.get("stream"):
                self._stream(entry, behaviour, model, pieces, usage)
            else:
                if behaviour.delay:
                    time.sleep(behaviour.delay)
                entry["outcome"] = 200
                entry["finished"] = time.time()
                self._json(200, {
                    "id": f"fake-{n}", "object": "chat.completion", "created": int(received), "model": model,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                    "usage": usage,
                })

        def _stream(self, entry, behaviour, model, pieces, usage):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            if server.keep_alive:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
            self.close_connection = True  # until the stream has ended cleanly

            def write(data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if server.keep_alive else data)

            if behaviour.hang:
                entry["outcome"] = "hang"
                entry["client_closed"] = self._wait_for_close(None)
                entry["finished"] = time.time()
                return
            if behaviour.delay and self._wait_for_close(behaviour.delay):
                entry["outcome"], entry["client_closed"] = "client closed", True
                return
            if behaviour.raw is not None or behaviour.raw_forever is not None:
                return self._raw(entry, behaviour, write)

            def event(payload) -> bytes:
                return b"data: " + json.dumps(payload).encode() + b"\n\n"

            try:
                for i, piece in enumerate(pieces):
                    if behaviour.drop_after is not None and i >= behaviour.drop_after:
                        entry["outcome"] = "dropped"
                        entry["finished"] = time.time()
                        self.connection.shutdown(2)
                        return
                    if i and behaviour.chunk_delay and self._wait_for_close(behaviour.chunk_delay):
                        entry["outcome"], entry["client_closed"] = "client closed", True
                        return
                    delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
                    entry.setdefault("first_chunk", time.time())  # when the first token left
                    write(event({
                        "id": f"fake-{entry['n']}", "object": "chat.completion.chunk", "model": model,
                        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                    }))
                    self.wfile.flush()
                write(event({
                    "id": f"fake-{entry['n']}", "object": "chat.completion.chunk", "model": model,
                    "choices": [{"index": 0, "delta": {}, "finish_reason": behaviour.finish_reason}],
                }))
                write(event({
                    "id": f"fake-{entry['n']}", "object": "chat.completion.chunk", "model": model,
                    "choices": [], "usage": usage,
                }))
                write(b"data: [DONE]\n\n")
                if server.keep_alive:
                    self.wfile.write(b"0\r\n\r\n")
                    self.close_connection = False
                self.wfile.flush()
                entry["outcome"] = 200
            except (BrokenPipeError, ConnectionResetError):
                entry["outcome"], entry["client_closed"] = "client closed", True
            entry["finished"] = time.time()

        def _verbatim(self, response: dict) -> None:
            body = response.get("body", "")
            data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(response.get("status", 200))
            headers = {"Content-Type": "application/json", **response.get("headers", {})}
            for k, v in headers.items():
                self.send_header(k, str(v))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _raw(self, entry, behaviour, write) -> None:
            """Scripted bytes, verbatim: malformed events, escape codes, endless drips."""
            def send(piece) -> bool:
                if behaviour.raw_delay and self._wait_for_close(behaviour.raw_delay):
                    return False
                write(piece if isinstance(piece, bytes) else piece.encode("utf-8", "surrogateescape"))
                self.wfile.flush()
                return True

            try:
                for piece in behaviour.raw or []:
                    if not send(piece):
                        break
                else:
                    while behaviour.raw_forever is not None and not server._stop.is_set():
                        if not send(behaviour.raw_forever):
                            break
                    entry["outcome"] = "raw sent"
            except (BrokenPipeError, ConnectionResetError):
                pass
            entry.setdefault("outcome", "client closed")
            entry["client_closed"] = entry["outcome"] == "client closed"
            entry["finished"] = time.time()

        def _wait_for_close(self, seconds: float | None) -> bool:
            """Sleep up to `seconds` (forever if None); True as soon as the client hangs up."""
            end = None if seconds is None else time.monotonic() + seconds
            while not server._stop.is_set():
                left = 0.05 if end is None else min(0.05, end - time.monotonic())
                if left <= 0:
                    return False
                readable, _, _ = select.select([self.connection], [], [], left)
                if readable:
                    try:
                        if not self.connection.recv(1, 0x40):  # MSG_DONTWAIT: EOF means closed
                            return True
                    except BlockingIOError:
                        pass
                    except OSError:
                        return True
            return False

    return Handler


def _last_user_text(body: dict) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def _default_reply(model: str, n: int, body: dict) -> str:
    return f"{model} answer {n}: {' '.join(_last_user_text(body).split()[:8])}"


def _matching_reply(replies: dict, body: dict) -> str | None:
    user = _last_user_text(body)
    return next((reply for key, reply in replies.items() if key in user), None)


def _matching_system_reply(replies: dict, body: dict) -> str | None:
    system = " ".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "system")
    return next((reply for key, reply in replies.items() if key in system), None)


def _count_prompt(body: dict) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--script", help="JSON file: {model: {behaviour fields}}")
    parser.add_argument("--log", help="write the request log here as JSON lines on exit")
    parser.add_argument("--keep-alive", action="store_true", help="chunked streams on kept-alive connections")
    args = parser.parse_args()
    # Run as its own process (benchmarks), the server is a handful of threads sharing one GIL;
    # with Python's default 5 ms switch interval a thread ready to answer can wait that long,
    # which would be charged to the client being measured.
    sys.setswitchinterval(1e-4)
    server = FakeServer(port=args.port, keep_alive=args.keep_alive)
    if args.script:
        with open(args.script) as handle:
            for model, behaviour in json.load(handle).items():
                server.script(model, **behaviour)
    print(server.url, flush=True)
    try:
        server.httpd.serve_forever(poll_interval=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        if args.log:
            with open(args.log, "w") as handle:
                for entry in server.log:
                    handle.write(json.dumps(entry) + "\n")


if __name__ == "__main__":
    main()
