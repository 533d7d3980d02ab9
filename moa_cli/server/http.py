"""The HTTP/1.1 connection: uvicorn's h11 protocol with bounded waits and buffers.

uvicorn bounds the wait between two requests on a kept-alive connection, but not the wait for a
request itself: a client that connects and sends half a header (or a body at a trickle) holds
its socket open for ever. Here every connection has
  - a header deadline: the whole request head within `header_timeout` seconds of the
    connection (or of the previous response), however slowly it drips;
  - an idle limit while the body arrives: no `idle_timeout` seconds without a byte;
  - a head size limit: `max_head` bytes, past which the client gets a 431 and the connection
    closes (uvicorn would answer a plain-text 400);
  - TCP_NODELAY, so small writes (an SSE event, a short JSON answer) leave at once instead of
    waiting for the client's delayed ACK, in every worker process.
"""

from __future__ import annotations

import asyncio
import json
import socket

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

TOO_LARGE = json.dumps({"error": {"message": "the request headers are too large", "type": "invalid_request_error",
                                  "param": None, "code": "headers_too_large"}}).encode()


class Limits:
    """Set once per process, before the first connection (a worker sets its own at start)."""

    header_timeout = 10.0
    idle_timeout = 60.0
    max_head = 16 * 1024


class BoundedH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self._deadline: asyncio.TimerHandle | None = None
        self._wait(Limits.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:  # a request head is arriving
            buffered = self.conn.trailing_data[0]
            if len(buffered) + len(data) > Limits.max_head:
                end = (bytes(buffered) + data).find(b"\r\n\r\n")
                if end < 0 or end > Limits.max_head:
                    return self._refuse_head()
        super().data_received(data)
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            if self._deadline is None:  # the next request has begun: its head has a deadline
                self._wait(Limits.header_timeout)
        elif state is h11.SEND_BODY:
            self._cancel()
            self._wait(Limits.idle_timeout)  # counted from the last byte
        else:
            self._cancel()  # the request is whole: the response is the server's business

    def on_response_complete(self) -> None:
        self._cancel()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _wait(self, seconds: float) -> None:
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        # A response under way is never cut: only a request that is not whole yet.
        if not self.transport.is_closing() and self.conn.their_state in (h11.IDLE, h11.SEND_BODY) \
                and (self.cycle is None or self.cycle.response_complete or not self.cycle.response_started):
            if self.cycle is not None and not self.cycle.response_complete:
                self.cycle.disconnected = True  # the app sees the client gone
                self.cycle.message_event.set()
            self.transport.close()

    def _refuse_head(self) -> None:
        self._cancel()
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(TOO_LARGE), TOO_LARGE))
        self.transport.close()
