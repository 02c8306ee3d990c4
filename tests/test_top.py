"""``gbpfd top``: the frame dict, its text form, and the command on the
simulated device."""
from __future__ import annotations

import dataclasses
import json

import pytest

from gbpfd.bridge.layout import HIST_BUCKETS
from gbpfd.cli import main
from gbpfd.device import state as S
from gbpfd.isa.abi import RECORDS
from gbpfd.plane.plane import Health, Plane
from gbpfd.top import COLUMNS, format_frame, frame, hist_median_bound_ns

FRAME_KEYS = ["backend", "simulated", "device_time_ns", "health", "tenants", "events"]
COUNTER_FIELDS = [f.name for f in RECORDS["counters"].fields]
TENANT_KEYS = ["name", *S.GAUGES] + COUNTER_FIELDS + ["latency_histogram", "decision_wait_median_below_ns"]
HEALTH_FIELDS = [f.name for f in dataclasses.fields(Health)]


@pytest.fixture
def plane():
    with Plane(backend="sim") as p:
        yield p


@pytest.mark.parametrize("hist,bound", [
    ([0] * HIST_BUCKETS, None),
    ([1] + [0] * (HIST_BUCKETS - 1), 128),
    ([0, 0, 3] + [0] * (HIST_BUCKETS - 3), 512),
    ([1, 1, 1] + [0] * (HIST_BUCKETS - 3), 256),
    ([5, 0, 0, 1] + [0] * (HIST_BUCKETS - 4), 128),
])
def test_hist_median_bound_ns(hist, bound):
    assert hist_median_bound_ns(hist) == bound


def test_frame_shape(plane):
    d = plane.device
    d.launch(plane.quotas.index("train"), blocks=20, block_ns=10_000, mode="gate")
    d.run_until(d.now + 500_000)
    f = frame(plane)
    assert list(f) == FRAME_KEYS
    assert (f["backend"], f["simulated"]) == ("sim", True)
    assert f["device_time_ns"] == d.now
    assert list(f["health"]) == HEALTH_FIELDS
    assert [t["name"] for t in f["tenants"]] == ["infer", "train", "batch"]
    for t in f["tenants"]:
        assert list(t) == TENANT_KEYS
        assert len(t["latency_histogram"]) == HIST_BUCKETS
    train = f["tenants"][1]
    assert train["admitted"] + train["bypassed"] == 20
    assert f["events"] == ["quotas"]
    assert frame(plane)["events"] == []  # drained by the first frame
    json.dumps(f)


def test_format_frame(plane):
    plane.device.run_until(plane.device.now + 100_000)
    f = frame(plane)
    lines = format_frame(f).splitlines()
    assert lines[0].startswith("gbpfd top [sim SIMULATED] t=0.000s  control CTA on SM 0: ready, heartbeat age ")
    assert "epoch 1" in lines[0]
    assert lines[1].split() == ["tenant", *COLUMNS, "wait", "p50", "<"]
    assert [line.split()[0] for line in lines[2:5]] == ["infer", "train", "batch"]
    assert lines[5] == "events: quotas"
    assert len(lines) == 6


def test_format_frame_shows_a_stall_and_no_label_off_the_simulator(plane):
    f = frame(plane)
    f = dict(f, simulated=False, backend="cuda", health=dict(f["health"], stalled=True), events=[])
    lines = format_frame(f).splitlines()
    assert lines[0].startswith("gbpfd top [cuda] ") and ": STALLED, " in lines[0]
    assert len(lines) == 5


def run_top(capsys, *argv):
    code = main(["top", "--backend", "sim", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_top_once(capsys):
    code, out, err = run_top(capsys, "--once", "--interval", "0.01")
    assert code == 0, err
    assert err == "gbpfd top: backend sim (asked for the simulated device)\n"
    lines = out.splitlines()
    assert sum(line.startswith("gbpfd top [") for line in lines) == 1
    assert lines[0].startswith("gbpfd top [sim SIMULATED] t=0.01")
    assert [line.split()[0] for line in lines[2:5]] == ["infer", "train", "batch"]


def test_top_json_frames(capsys):
    code, out, err = run_top(capsys, "--json", "--frames", "2", "--interval", "0.01")
    assert code == 0, err
    frames = [json.loads(line) for line in out.splitlines()]
    assert len(frames) == 2
    for f in frames:
        assert list(f) == FRAME_KEYS
        assert f["simulated"] is True
    assert frames[1]["device_time_ns"] - frames[0]["device_time_ns"] == 10_000_000
    admitted = [sum(t["admitted"] for t in f["tenants"]) for f in frames]
    assert 0 < admitted[0] < admitted[1]  # the demo workload runs under top


def test_top_idle_runs_no_workload(capsys):
    code, out, _ = run_top(capsys, "--json", "--once", "--idle", "--interval", "0.001")
    assert code == 0
    (f,) = [json.loads(line) for line in out.splitlines()]
    assert all(t["admitted"] == 0 for t in f["tenants"])
    assert f["health"]["ticks"] > 0


def test_top_with_a_quota_file(tmp_path, capsys):
    quotas = tmp_path / "q.toml"
    quotas.write_text('[tenants.solo]\nclass = "best-effort"\nweight = 1\nmax_ctas = 8\n')
    code, out, err = run_top(capsys, "--json", "--once", "--idle", "--interval", "0.001", "--quotas", str(quotas))
    assert code == 0, err
    assert [t["name"] for t in json.loads(out)["tenants"]] == ["solo"]


def test_top_with_a_bad_quota_file_exits_2(tmp_path, capsys):
    quotas = tmp_path / "q.toml"
    quotas.write_text('[tenants.solo]\nclass = "nope"\nweight = 1\nmax_ctas = 8\n')
    code, out, err = run_top(capsys, "--once", "--quotas", str(quotas))
    assert code == 2
    assert out == ""
    assert err.startswith("gbpfd top: ") and str(quotas) in err and "'nope'" in err
