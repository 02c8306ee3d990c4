"""``gbpfd serve`` with real processes on the simulated device: the CLI
verbs against it, tenants attached from other processes, who may do what,
bad clients, and how it ends."""
from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from conftest import NOBODY, start_daemon
from gbpfd.policies.catalog import policy_path
from gbpfd.service import protocol as P
from gbpfd.service.client import Client


def gbpfd(daemon, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gbpfd", *args, "--socket", daemon.socket], capture_output=True,
                          text=True, timeout=60)


CLIENT = """
import json, sys
from gbpfd.service.client import attach
with attach(sys.argv[2], socket_path=sys.argv[1]) as tenant:
    runs = [tenant.launch(blocks=int(sys.argv[3]), block_ns=20_000) for _ in range(3)]
    done = [tenant.wait(r) for r in runs]
    print(json.dumps({"done": done, "admitted": tenant.counters()["admitted"]}))
"""


def client_process(daemon, tenant: str, blocks: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLIENT, daemon.socket, tenant, str(blocks)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_client_processes_attach_as_two_tenants_and_their_work_is_admitted(daemon):
    clients = {name: client_process(daemon, name, 200) for name in ("train", "batch")}
    results = {}
    for name, proc in clients.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results[name] = json.loads(out)
    for name, result in results.items():
        assert [d["blocks_done"] for d in result["done"]] == [200, 200, 200]
        assert result["admitted"] >= 600, name
    log = daemon.output()
    assert "attached as train" in log and "attached as batch" in log


def test_prog_list_load_show_dump_unload(daemon):
    listed = json.loads(gbpfd(daemon, "prog", "list", "--json").stdout)
    assert {p["hook"] for p in listed if p["active"]} == {"tick", "cta_admit", "dma_tick", "warp_throttle_tick",
                                                              "sm_tick"}
    done = gbpfd(daemon, "prog", "load", str(policy_path("tenant_cap.s")))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("loaded program ")
    pid = int(done.stdout.split()[2])
    table = gbpfd(daemon, "prog", "list").stdout.splitlines()
    assert table[0].split() == ["id", "hook", "name", "tag", "slot", "active", "loaded_at", "insns", "cost"]
    row = next(line.split() for line in table[1:] if line.split()[0] == str(pid))
    assert row[2] == "tenant_cap" and row[5] == "True"
    shown = gbpfd(daemon, "prog", "show", str(pid)).stdout
    assert f"id: {pid}" in shown and "source: tenant_cap.s" in shown
    dump = gbpfd(daemon, "prog", "dump", str(pid), "--verifier")
    assert dump.returncode == 0 and "exit" in dump.stdout
    hook = row[1]
    assert gbpfd(daemon, "prog", "unload", hook).stdout.strip() == f"{hook} returned to the baseline"
    assert pid not in {p["id"] for p in json.loads(gbpfd(daemon, "prog", "list", "--json").stdout)}


def test_a_program_the_verifier_refuses_changes_nothing_and_names_the_file(daemon, tmp_path):
    bad = tmp_path / "bad.s"
    bad.write_text(".name bad\n.hook cta_admit\n    ldxdw %r0, [%r1+4096]\n    exit\n")
    before = gbpfd(daemon, "prog", "list", "--json").stdout
    done = gbpfd(daemon, "prog", "load", str(bad))
    assert done.returncode == 1
    assert "bad: rejected by the verifier for hook 'cta_admit'" in done.stderr
    assert gbpfd(daemon, "prog", "list", "--json").stdout == before
    unparsable = tmp_path / "typo.s"
    unparsable.write_text(".hook cta_admit\n    movv %r0, 1\n")
    done = gbpfd(daemon, "prog", "load", str(unparsable))
    assert done.returncode == 2 and done.stderr.startswith("gbpfd prog: typo.s:2")


def test_quotas_show_and_set_all_or_nothing(daemon, tmp_path):
    shown = json.loads(gbpfd(daemon, "quotas", "show").stdout)
    assert shown["tenants"]["train"]["max_ctas"] == 4096
    new = tmp_path / "new.toml"
    new.write_text(open(daemon.log.parent / "quotas.toml").read().replace("max_ctas = 4096", "max_ctas = 30", 1))
    done = gbpfd(daemon, "quotas", "set", str(new))
    assert done.returncode == 0, done.stderr
    assert json.loads(gbpfd(daemon, "quotas", "show").stdout)["tenants"]["train"]["max_ctas"] == 30
    broken = tmp_path / "broken.toml"
    broken.write_text('[tenants.train]\nclass = "best-effort"\nweight = 0\nmax_ctas = 4\n')
    done = gbpfd(daemon, "quotas", "set", str(broken))
    assert done.returncode == 2
    assert done.stderr.strip() == "gbpfd quotas: broken.toml:3: tenant 'train': field 'weight': 0 is out of range 1..10000"
    assert json.loads(gbpfd(daemon, "quotas", "show").stdout)["tenants"]["train"]["max_ctas"] == 30


def test_events_follow_the_device(daemon):
    gbpfd(daemon, "prog", "load", str(policy_path("tenant_cap.s")))
    done = gbpfd(daemon, "events", "--count", "1", "--timeout", "20")
    assert done.returncode == 0
    event = json.loads(done.stdout.splitlines()[0])
    assert {"seq", "kind", "time_ns", "args"} <= set(event)


AS_NOBODY = """
import base64, os, sys
from gbpfd.service.client import Client, attach
from gbpfd.service.protocol import ServiceError
program = open(sys.argv[2], "rb").read()   # read while still root: the checkout is not nobody's to read
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
for name in ("train", "batch"):
    try:
        attach(name, socket_path=sys.argv[1]).detach()
        print(name, "ok")
    except ServiceError as err:
        print(name, err.kind, err)
try:
    Client(sys.argv[1]).call("prog.load", name="tenant_cap.s", data=base64.b64encode(program).decode())
except ServiceError as err:
    print("load", err.kind, err)
"""


def test_another_user_may_attach_only_as_the_tenant_it_is_allowed_and_may_not_administer(daemon):
    # the process drops to nobody after its imports: the interpreter under /root is not nobody's to start
    done = subprocess.run([sys.executable, "-c", AS_NOBODY, daemon.socket, str(policy_path("tenant_cap.s"))],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "train ok",
        "batch denied attach as 'batch': uid 65534 is not allowed this tenant by the quota file's [access] table",
        "load denied prog.load: uid 65534 is not the daemon's owner (uid 0) nor in an admin group of the quota "
        "file's [access] table"]
    assert "refused uid 65534" in daemon.output()


def test_the_socket_is_owner_only_unless_the_quota_file_names_a_group(daemon, folder):
    import stat
    info = os.stat(daemon.socket)
    assert (stat.S_IMODE(info.st_mode), info.st_gid) == (0o660, NOBODY)
    other = folder / "other"
    other.mkdir()
    plain = start_daemon(other)
    try:
        info = os.stat(plain.socket)
        assert stat.S_IMODE(info.st_mode) == 0o600
    finally:
        plain.stop()


def raw(daemon) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(daemon.socket)
    return s


def test_bad_clients_get_clear_errors_and_the_plane_is_untouched(daemon):
    s = raw(daemon)
    s.sendall(struct.pack(">I", 5) + b"{oops")
    answer = P.read_frame(s)
    assert answer["ok"] is False and answer["error"]["kind"] == "malformed"
    s.sendall(P.encode({"v": 99, "id": 1, "op": "hello"}))
    assert P.read_frame(s)["error"]["message"] == "protocol version 99 is not served; this daemon speaks 1"
    s.sendall(P.encode({"v": 1, "id": 2, "op": "prog.lsit"}))
    assert P.read_frame(s)["error"]["message"].startswith("unknown op 'prog.lsit'; the daemon serves hello, ")
    s.sendall(P.encode({"v": 1, "id": 3, "op": "launch", "args": {}}))
    assert P.read_frame(s)["error"]["message"] == "not attached: send 'attach' with a tenant first"
    # a flood, pipelined: every request answered, in order
    s.sendall(b"".join(P.encode({"v": 1, "id": i, "op": "hello"}) for i in range(10, 510)))
    assert [P.read_frame(s)["id"] for _ in range(500)] == list(range(10, 510))
    s.sendall(struct.pack(">I", P.MAX_FRAME + 1))
    answer = P.read_frame(s)
    assert answer["error"]["kind"] == "too_large"
    with pytest.raises(P.ServiceError, match="closed the connection"):
        P.read_frame(s)
    with Client(daemon.socket) as client:
        assert client.call("hello")["backend"] == "sim"


def test_a_client_that_never_speaks_is_closed_after_the_idle_timeout(daemon):
    s = raw(daemon)
    started = time.monotonic()
    answer = P.read_frame(s)
    assert answer["error"] == {"kind": "idle", "message": "the client sent no request within 1 s"}
    assert time.monotonic() - started < 5
    with Client(daemon.socket) as client:
        assert client.call("hello")["simulated"] is True


def test_sigterm_stops_the_daemon_with_its_exit_reason(folder):
    daemon = start_daemon(folder)
    time.sleep(1.5)
    assert daemon.stop(signal.SIGTERM) == 0
    out = daemon.output()
    assert "SIMULATED loop=" in out                      # the once-a-second stats line
    assert out.strip().splitlines()[-1] == "gbpfd serve: exit: SIGTERM; plane: stop command"
    assert not os.path.exists(daemon.socket)


def test_a_second_daemon_on_the_same_socket_is_refused(daemon, folder):
    done = subprocess.run([sys.executable, "-m", "gbpfd", "serve", "--backend", "sim", "--socket", daemon.socket],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == f"gbpfd serve: a daemon already serves {daemon.socket}"


def test_top_attaches_to_the_daemon(daemon):
    done = gbpfd(daemon, "top", "--once", "--json")
    assert done.returncode == 0, done.stderr
    frame = json.loads(done.stdout)
    assert frame["backend"] == "sim" and frame["simulated"] is True
    assert [t["name"] for t in frame["tenants"]] == ["infer", "train", "batch"]
    text = gbpfd(daemon, "top", "--frames", "2", "--interval", "0.1").stdout
    assert text.count("gbpfd top [sim SIMULATED]") == 2 and "\x1b[2J" not in text   # no redraw into a pipe


KILLED = """
import sys, time
from gbpfd.service.client import attach
tenant = attach("train", socket_path=sys.argv[1])
tenant.launch(blocks=1_000_000, block_ns=200_000, mode="persistent")
print("launched", flush=True)
time.sleep(600)
"""


def test_a_killed_clients_work_drains_to_zero(daemon):
    proc = subprocess.Popen([sys.executable, "-c", KILLED, daemon.socket], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "launched"

    def running() -> int:
        with Client(daemon.socket) as client:
            return next(t for t in client.call("top")["tenants"] if t["name"] == "train")["running"]
    deadline = time.monotonic() + 30
    while running() == 0:
        assert time.monotonic() < deadline, "the client's work never ran"
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 30
    while running() != 0:
        assert time.monotonic() < deadline, "the killed client's CTAs are still running"
        time.sleep(0.05)
    assert "detached from train: 1 unfinished launches cancelled" in daemon.output()
