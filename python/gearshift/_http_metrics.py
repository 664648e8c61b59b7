"""The metrics endpoint's HTTP server: one thread, one event loop, bounded connections.

prometheus_client's own server spends a thread per connection and waits on it forever, so idle
connections pile up until the process runs out of descriptors (in the clock daemon, whose
clients then cannot connect) . Here every connection has a deadline to send its request and
read the answer, at most ``max_connections`` are open (the oldest is closed to make room), and
when accept() runs out of descriptors the listening socket rests instead of spinning.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

MAX_CONNECTIONS = 64
TIMEOUT_S = 5.0
MAX_REQUEST_BYTES = 8192
ACCEPT_PAUSE_S = 0.2


@dataclass
class _Conn:
    sock: socket.socket
    deadline: float
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: memoryview | None = None


def _response(status: str, body: bytes, content_type: str, head_only: bool = False) -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return head if head_only else head + body


class MetricsHTTPServer:
    """Serves ``render()`` (bytes) at ``/metrics`` and ``/`` from a background thread."""

    def __init__(self, addr: str, port: int, render, content_type: str,
                 max_connections: int = MAX_CONNECTIONS, timeout_s: float = TIMEOUT_S):
        family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self._listen = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listen.bind((addr, port))
            self._listen.listen(128)
        except OSError:
            self._listen.close()
            raise
        self._listen.setblocking(False)
        self.server_port = self._listen.getsockname()[1]
        self._render, self._content_type = render, content_type
        self._max, self._timeout = max_connections, timeout_s
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listen, selectors.EVENT_READ)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._conns: dict[socket.socket, _Conn] = {}
        self._paused_until = 0.0
        self._stop = False
        self.served = 0      # responses written, for tests and curiosity
        self.timed_out = 0   # connections closed at their deadline
        self.evicted = 0     # connections closed to make room
        self._thread = threading.Thread(target=self._run, name="gearshift-metrics", daemon=True)
        self._thread.start()

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def close(self) -> None:
        self._stop = True
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._thread.join(timeout=5)
        for c in list(self._conns.values()):
            self._drop(c)
        for s in (self._listen, self._wake_r, self._wake_w):
            s.close()
        self._sel.close()

    # ---- the loop (its thread only) ----
    def _run(self) -> None:
        while not self._stop:
            now = time.monotonic()
            if self._paused_until and now >= self._paused_until:
                self._paused_until = 0.0
                self._sel.register(self._listen, selectors.EVENT_READ)
            due = [c.deadline for c in self._conns.values()]
            if self._paused_until:
                due.append(self._paused_until)
            timeout = max(0.0, min(due) - now) if due else None
            for key, mask in self._sel.select(timeout):
                if key.fileobj is self._listen:
                    self._accept()
                elif key.fileobj is self._wake_r:
                    self._wake_r.recv(64)
                else:
                    c = self._conns.get(key.fileobj)
                    if c is not None:
                        self._on_event(c, mask)
            now = time.monotonic()
            for c in [c for c in self._conns.values() if c.deadline <= now]:
                self.timed_out += 1
                self._drop(c)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listen.accept()
            except BlockingIOError:
                return
            except OSError:  # EMFILE/ENFILE and kin: rest rather than spin on a readable socket
                self._sel.unregister(self._listen)
                self._paused_until = time.monotonic() + ACCEPT_PAUSE_S
                return
            if len(self._conns) >= self._max:
                oldest = min(self._conns.values(), key=lambda c: c.deadline)
                self.evicted += 1
                self._drop(oldest)
            sock.setblocking(False)
            self._conns[sock] = _Conn(sock, time.monotonic() + self._timeout)
            self._sel.register(sock, selectors.EVENT_READ)

    def _drop(self, c: _Conn) -> None:
        self._conns.pop(c.sock, None)
        try:
            self._sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    def _on_event(self, c: _Conn, mask: int) -> None:
        try:
            if c.outbuf is None and mask & selectors.EVENT_READ:
                data = c.sock.recv(4096)
                if not data:
                    return self._drop(c)
                c.inbuf += data
                end = c.inbuf.find(b"\r\n\r\n")
                if end < 0:
                    if len(c.inbuf) > MAX_REQUEST_BYTES:
                        self._reply(c, _response("431 Request Header Fields Too Large", b"",
                                                 "text/plain"))
                    return None
                self._reply(c, self._answer(bytes(c.inbuf[:end])))
            elif c.outbuf is not None and mask & selectors.EVENT_WRITE:
                self._send(c)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            self._drop(c)
        return None

    def _answer(self, head: bytes) -> bytes:
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            return _response("400 Bad Request", b"bad request\n", "text/plain")
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return _response("405 Method Not Allowed", b"use GET\n", "text/plain")
        if target not in (b"/metrics", b"/"):
            return _response("404 Not Found", b"see /metrics\n", "text/plain")
        try:
            body = self._render()
        except Exception as exc:  # a failing collector must not take the endpoint down
            return _response("500 Internal Server Error", f"{exc}\n".encode(), "text/plain")
        return _response("200 OK", body, self._content_type, head_only=method == b"HEAD")

    def _reply(self, c: _Conn, data: bytes) -> None:
        c.outbuf = memoryview(data)
        c.deadline = time.monotonic() + self._timeout
        self._sel.modify(c.sock, selectors.EVENT_WRITE)
        self._send(c)

    def _send(self, c: _Conn) -> None:
        assert c.outbuf is not None
        n = c.sock.send(c.outbuf)
        c.outbuf = c.outbuf[n:]
        if not len(c.outbuf):
            self.served += 1
            self._drop(c)
