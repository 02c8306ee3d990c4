"""Talking to a running ``gbpfd serve``: ``Client`` sends one request at a
time and returns its result (or raises the daemon's refusal as a
``ServiceError``); ``attach`` gives a handle for one tenant."""
from __future__ import annotations

import base64
import itertools
import socket
import time
from pathlib import Path

from gbpfd.service import protocol as P

CONNECT_TIMEOUT_S = 5.0
REPLY_TIMEOUT_S = 30.0


class Client:
    """``wait_s``: how long to keep trying to connect (a daemon just started
    takes a few seconds to serve); 0 tries once."""

    def __init__(self, path: str | None = None, *, timeout_s: float = REPLY_TIMEOUT_S, wait_s: float = 0.0):
        self.path = path or P.default_socket()
        self._ids = itertools.count(1)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self.sock = self._connect()
                break
            except OSError as err:
                if time.monotonic() >= deadline:
                    raise P.ServiceError(f"cannot reach a gbpfd daemon at {self.path}: {err.strerror or err}; "
                                         "start one with 'gbpfd serve' (or name its socket with --socket / "
                                         "$GBPFD_SOCKET)", "unreachable") from None
                time.sleep(0.05)
        self.sock.settimeout(timeout_s)

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        return sock

    def call(self, op: str, **args):
        mid = next(self._ids)
        try:
            self.sock.sendall(P.encode({"v": P.VERSION, "id": mid, "op": op, "args": args}))
            answer = P.read_frame(self.sock)
        except socket.timeout:
            raise P.ServiceError(f"{op}: no reply from the daemon within {self.sock.gettimeout():g} s",
                                 "timeout") from None
        except OSError as err:
            raise P.ServiceError(f"{op}: the connection to the daemon broke: {err}", "closed") from None
        if not answer.get("ok"):
            error = answer.get("error", {})
            raise P.ServiceError(error.get("message", "the daemon refused the request"), error.get("kind", "error"))
        return answer.get("result")

    def load(self, path: str, *, hook: str | None = None, section: str | None = None) -> dict:
        """Send a program file (read here, verified by the daemon) to be loaded."""
        data = Path(path).read_bytes()
        return self.call("prog.load", name=Path(path).name, data=base64.b64encode(data).decode(), hook=hook,
                         section=section)

    def set_quotas(self, path: str) -> dict:
        return self.call("quotas.set", name=Path(path).name, text=Path(path).read_text())

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Tenant:
    """A tenant attached from this process: launches run on the daemon's
    (simulated) device under its policy; closing detaches."""

    def __init__(self, client: Client, tenant: str):
        self.client, self.name = client, tenant
        self.index = client.call("attach", tenant=tenant)["index"]

    def launch(self, *, blocks: int, block_ns: int, mode: str = "gate") -> int:
        return self.client.call("launch", blocks=blocks, block_ns=block_ns, mode=mode)["launch"]

    def status(self, launch: int) -> dict:
        return self.client.call("launch.status", launch=launch)

    def wait(self, launch: int, timeout_s: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.status(launch)
            if state["done"]:
                return state
            if time.monotonic() > deadline:
                raise P.ServiceError(f"launch {launch} of tenant {self.name!r} not done within {timeout_s:g} s",
                                     "timeout")
            time.sleep(0.01)

    def counters(self) -> dict:
        return next(t for t in self.client.call("top")["tenants"] if t["name"] == self.name)

    def detach(self) -> None:
        self.client.call("detach")
        self.client.close()

    def __enter__(self) -> "Tenant":
        return self

    def __exit__(self, *exc) -> None:
        self.detach()


def attach(tenant: str, *, socket_path: str | None = None, wait_s: float = 0.0) -> Tenant:
    """``gbpfd.attach(tenant="train")``: this process becomes a client of the daemon as ``tenant``."""
    return Tenant(Client(socket_path, wait_s=wait_s), tenant)
