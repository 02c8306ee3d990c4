"""A real ``gbpfd serve`` process on the simulated device, for the service
tests: started on a socket in a folder of its own, stopped with SIGTERM."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from gbpfd.resources import shared_file

START_TIMEOUT_S = 120.0
NOBODY = 65534   # uid and gid of Debian's nobody / nogroup: the "other user" of the access tests

ACCESS = """
[access]
socket_group = 65534
[access.tenants.train]
uids = [65534]
"""


class Daemon:
    def __init__(self, proc: subprocess.Popen, socket_path: str, log: Path):
        self.proc, self.socket, self.log = proc, socket_path, log

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, sig=signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout_s)


def start_daemon(folder: Path, *extra: str, quotas_text: str | None = None) -> Daemon:
    quotas = folder / "quotas.toml"
    quotas.write_text(shared_file("quotas", "demo.toml").read_text() + (quotas_text or ""))
    sock = str(folder / "run" / "gbpfd.sock")
    os.makedirs(folder / "run", mode=0o755)
    os.chmod(folder / "run", 0o755)       # the access tests' other user must reach the socket
    log = folder / "daemon.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gbpfd", "serve", "--backend", "sim", "--quotas",
                                 str(quotas), "--socket", sock, *extra], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    daemon = Daemon(proc, sock, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while "serving " not in daemon.output():
        if proc.poll() is not None or time.monotonic() > deadline:
            daemon.stop(signal.SIGKILL)
            pytest.fail(f"gbpfd serve did not start:\n{daemon.output()}")
        time.sleep(0.05)
    return daemon


@pytest.fixture
def folder():
    path = Path(tempfile.mkdtemp(prefix="gbpfd-serve-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def daemon(folder):
    d = start_daemon(folder, "--idle-timeout", "1", quotas_text=ACCESS)
    yield d
    d.stop(signal.SIGKILL)
