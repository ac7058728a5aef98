"""uvicorn's h11 protocol, with an answer for requests whose head is too long.

h11 stops reading a request head past ``h11_max_incomplete_event_size`` bytes, and
uvicorn then answers a bare 400 and closes the socket while the client is still
sending: the client sees its connection reset, not an answer. This protocol answers
**414** (the request line alone is too long) or **431** (the headers are) with a
message, then closes the way RFC 9112 §9.6 asks: it sends its answer and a FIN, and
reads and drops what the client still sends for a few seconds, so the answer is not
lost to a reset.
"""

from __future__ import annotations

from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Longest request head (request line and headers) a server reads: 64 KiB.
MAX_HEAD = 64 * 1024
#: Seconds a refused connection is drained before it is closed.
LINGER = 5.0


class _Connection(h11.Connection):
    """An h11 connection that keeps the protocol error it raised, for the answer."""

    refused: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.refused = exc
            raise


class BoundedH11Protocol(H11Protocol):
    """:class:`H11Protocol` answering 414 / 431 to an over-long request head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = self.config.h11_max_incomplete_event_size or MAX_HEAD
        self.conn = _Connection(h11.SERVER, limit)
        self.limit = limit
        self.draining = False

    def data_received(self, data: bytes) -> None:
        if self.draining:  # the rest of a refused request: read and dropped
            return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        refused = self.conn.refused if isinstance(self.conn, _Connection) else None
        if refused is None or refused.error_status_hint != 431:
            super().send_400_response(msg)
            return
        pending, _ = self.conn.trailing_data  # h11's public view of the unread bytes
        if b"\r\n" in pending[: self.limit]:
            status, reason = 431, b"Request Header Fields Too Large"
            text = f"The request headers are over {self.limit} bytes: refused\n"
        else:
            status, reason = 414, b"URI Too Long"
            text = f"The request line (the URL) is over {self.limit} bytes: refused\n"
        body = text.encode()
        head = (
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n" % (status, reason, len(body))
        )
        self.logger.warning("Refused a request head over %d bytes (%d)", self.limit, status)
        self.transport.write(head + body)
        self.draining = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(LINGER, self.transport.close)
