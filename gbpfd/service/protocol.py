"""The control socket's messages: one JSON object per frame, a frame being
a 4-byte big-endian length and that many bytes of UTF-8.

Request: ``{"v": 1, "id": N, "op": "prog.list", "args": {...}}``.
Reply:   ``{"v": 1, "id": N, "ok": true, "result": ...}`` or
         ``{"v": 1, "id": N, "ok": false, "error": {"kind": K, "message": M}}``.

A frame longer than ``MAX_FRAME`` is refused before it is read.
"""
from __future__ import annotations

import json
import os
import socket
import struct

from gbpfd.errors import GbpfdError

VERSION = 1
MAX_FRAME = 4 << 20        # a program object and its BTF, base64, fit many times over
HEADER = struct.Struct(">I")
SOCKET_ENV = "GBPFD_SOCKET"


class ServiceError(GbpfdError):
    """The daemon refused a request, or could not be reached; ``kind`` says which."""

    def __init__(self, message: str, kind: str = "error"):
        self.kind = kind
        super().__init__(message)


def default_socket() -> str:
    """``$GBPFD_SOCKET``, else ``$XDG_RUNTIME_DIR/gbpfd/gbpfd.sock``, else a
    folder of the user's own under the temporary directory."""
    if os.environ.get(SOCKET_ENV):
        return os.environ[SOCKET_ENV]
    runtime = os.environ.get("XDG_RUNTIME_DIR") or os.path.join("/tmp", f"gbpfd-{os.getuid()}")
    return os.path.join(runtime, "gbpfd", "gbpfd.sock")


def encode(message: dict) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME:
        raise ServiceError(f"message of {len(body)} bytes is over the {MAX_FRAME}-byte limit", "too_large")
    return HEADER.pack(len(body)) + body


def frame_length(header: bytes) -> int:
    """The body length a frame header announces; ``ServiceError`` when over the limit."""
    (length,) = HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ServiceError(f"frame of {length} bytes announced; at most {MAX_FRAME} are accepted", "too_large")
    return length


def decode(body: bytes) -> dict:
    try:
        message = json.loads(body.decode())
    except (UnicodeDecodeError, ValueError) as err:
        raise ServiceError(f"not a JSON message: {err}", "malformed") from None
    if not isinstance(message, dict):
        raise ServiceError(f"a message is a JSON object, got {type(message).__name__}", "malformed")
    return message


def check_request(message: dict) -> tuple[int, str, dict]:
    """(id, op, args) of a well-formed request."""
    if message.get("v") != VERSION:
        raise ServiceError(f"protocol version {message.get('v')!r} is not served; this daemon speaks {VERSION}",
                           "version")
    op, args, mid = message.get("op"), message.get("args", {}), message.get("id", 0)
    if not isinstance(op, str) or not isinstance(args, dict) or not isinstance(mid, int):
        raise ServiceError("a request needs 'op' (a string), 'args' (an object) and 'id' (an integer)", "malformed")
    return mid, op, args


def reply(mid: int, result=None, error: ServiceError | None = None) -> dict:
    if error is None:
        return {"v": VERSION, "id": mid, "ok": True, "result": result}
    return {"v": VERSION, "id": mid, "ok": False, "error": {"kind": error.kind, "message": str(error)}}


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ServiceError("the daemon closed the connection", "closed")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> dict:
    """One message from a blocking socket (the client's side)."""
    return decode(recv_exact(sock, frame_length(recv_exact(sock, HEADER.size))))
