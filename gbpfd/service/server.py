"""The control socket's transport: a UNIX stream socket served from one
thread with a selector, so every request reaches the plane in turn.

Bad clients cannot hold it up: a frame over the size limit is refused and
the connection closed; a client that connects and says nothing, or stops
half-way through a frame, is closed after ``idle_s``; at most
``REQUESTS_PER_ROUND`` requests of one client are served per round; a
client that stops reading its replies is closed once they pile up.
"""
from __future__ import annotations

import os
import selectors
import socket
import time
from dataclasses import dataclass, field

from gbpfd.service import protocol as P
from gbpfd.service.peers import Peer, peer_of

REQUESTS_PER_ROUND = 64
MAX_PENDING_OUT = 2 * P.MAX_FRAME
BACKLOG = 64


@dataclass
class Connection:
    sock: socket.socket
    peer: Peer
    opened: float
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    waiting_since: float | None = None    # when the frame now being read began (or the connection opened)
    closing: bool = False
    session: dict = field(default_factory=dict)   # what the operations keep per client


def _prepare_path(path: str) -> None:
    """Make the socket's folder (owner-only when made here) and clear a stale socket;
    refuse when a daemon still answers on it."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, mode=0o700, exist_ok=True)
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)          # nobody listens: a daemon that died left it
        return
    finally:
        probe.close()
    raise P.ServiceError(f"a daemon already serves {path}", "busy")


class Server:
    def __init__(self, path: str, handle, on_close, *, group: int | None = None, idle_s: float = 10.0, log=print):
        self.path, self.handle, self.on_close, self.idle_s, self.log = path, handle, on_close, idle_s, log
        _prepare_path(path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)    # the socket exists owner-only from its first instant
        try:
            self.listener.bind(path)
        finally:
            os.umask(old)
        if group is not None:
            os.chown(path, -1, group)
            os.chmod(path, 0o660)
        self.listener.listen(BACKLOG)
        self.listener.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.connections: dict[socket.socket, Connection] = {}

    # ------------------------------------------------------------ rounds
    def poll(self, timeout_s: float) -> None:
        for key, events in self.selector.select(timeout_s):
            if key.fileobj is self.listener:
                self._accept()
                continue
            conn = self.connections.get(key.fileobj)
            if conn is None:
                continue
            if events & selectors.EVENT_READ:
                self._read(conn)
            if events & selectors.EVENT_WRITE and not conn.closing:
                self._write(conn)
        for conn in list(self.connections.values()):
            if conn.inbuf and not conn.closing:
                self._serve_frames(conn)   # what a flood left over from the last round, in turn with the rest
        self._close_idle()

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        now = time.monotonic()
        conn = Connection(sock, peer_of(sock), now, waiting_since=now)
        self.connections[sock] = conn
        self.selector.register(sock, selectors.EVENT_READ)

    def _read(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        conn.inbuf += data
        if conn.waiting_since is None:
            conn.waiting_since = time.monotonic()
        self._serve_frames(conn)

    def _serve_frames(self, conn: Connection) -> None:
        for _ in range(REQUESTS_PER_ROUND):
            if len(conn.inbuf) < P.HEADER.size:
                break
            try:
                length = P.frame_length(bytes(conn.inbuf[:P.HEADER.size]))
            except P.ServiceError as err:
                self._refuse_and_close(conn, err)
                return
            if len(conn.inbuf) < P.HEADER.size + length:
                break
            body = bytes(conn.inbuf[P.HEADER.size:P.HEADER.size + length])
            del conn.inbuf[:P.HEADER.size + length]
            self._send(conn, self.handle(conn, body))
        conn.waiting_since = time.monotonic() if conn.inbuf else None

    def _send(self, conn: Connection, message: dict) -> None:
        conn.outbuf += P.encode(message)
        if len(conn.outbuf) > MAX_PENDING_OUT:
            self.log(f"closed {conn.peer}: it stopped reading its replies")
            self._drop(conn)
            return
        self._write(conn)

    def _write(self, conn: Connection) -> None:
        try:
            sent = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(conn)
            return
        del conn.outbuf[:sent]
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbuf else 0)
        self.selector.modify(conn.sock, want)
        if conn.closing and not conn.outbuf:
            self._drop(conn)

    def _refuse_and_close(self, conn: Connection, err: P.ServiceError) -> None:
        self.log(f"refused {conn.peer}: {err}")
        conn.closing = True
        conn.inbuf.clear()
        self._send(conn, P.reply(0, error=err))

    def _close_idle(self) -> None:
        now = time.monotonic()
        for conn in list(self.connections.values()):
            if conn.waiting_since is not None and now - conn.waiting_since > self.idle_s and not conn.closing:
                what = "sent no request" if not conn.inbuf else "did not send the rest of its request"
                self._refuse_and_close(conn, P.ServiceError(f"the client {what} within {self.idle_s:g} s", "idle"))
                if conn.sock in self.connections:
                    self._drop(conn)   # it need not read the reason: it is not listening

    def _drop(self, conn: Connection) -> None:
        if self.connections.pop(conn.sock, None) is None:
            return
        self.selector.unregister(conn.sock)
        conn.sock.close()
        self.on_close(conn)

    def close(self) -> None:
        for conn in list(self.connections.values()):
            self._drop(conn)
        self.selector.unregister(self.listener)
        self.listener.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
