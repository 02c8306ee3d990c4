"""Who is at the other end of a UNIX socket: the kernel's SO_PEERCRED
(pid, uid, gid at connect time) and the process's supplementary groups."""
from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

CREDS = struct.Struct("3i")


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gids: frozenset[int]

    def __str__(self) -> str:
        return f"uid {self.uid} (pid {self.pid})"


def _groups(pid: int) -> set[int]:
    """The supplementary groups of ``pid`` from /proc (empty where it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except OSError:
        pass
    return set()


def peer_of(sock: socket.socket) -> Peer:
    pid, uid, gid = CREDS.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, CREDS.size))
    return Peer(pid, uid, frozenset({gid} | _groups(pid)))
