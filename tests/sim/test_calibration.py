"""The simulated device's calibration file (gbpfd.sim.calibration): what
is written loads back, and every malformed field is named."""
from __future__ import annotations

import copy
import json

import pytest

from gbpfd.sim import calibration as C

GPU = {"name": "NVIDIA H200", "sms": 132, "cc": "9.0", "driver": "580.65.06"}
COMMAND = "gbpfd check --backend cuda --only calibrate"
PROVENANCE = {"gpu": GPU, "date": "2026-12-02T22:00:00+00:00", "command": COMMAND}


def test_a_calibration_written_loads_back_with_its_provenance_on_every_constant(tmp_path):
    path = tmp_path / "calibration.json"
    written = C.write_calibration(path, {"global_atomic_ns": (612.5, "ns"), "compute_slowdown_1": (1.97, "x")},
                                  PROVENANCE)
    loaded = C.load_calibration(path)
    assert loaded == written
    assert loaded["format"] == "gbpfd-calibration/1"
    assert loaded["gpu"] == GPU and loaded["command"] == "gbpfd check --backend cuda --only calibrate"
    assert loaded["constants"]["global_atomic_ns"] == {
        "value": 612.5, "unit": "ns",
        "source": "measured: NVIDIA H200, 2026-12-02T22:00:00+00:00, gbpfd check calibrate"}


def test_writing_refuses_a_constant_that_could_not_be_loaded(tmp_path):
    path = tmp_path / "calibration.json"
    with pytest.raises(C.CalibrationError, match=r"constants\.cross_sm_round_trip_ns_p50\.value: expected a "
                                                 r"finite number, got nan$"):
        C.write_calibration(path, {"cross_sm_round_trip_ns_p50": (float("nan"), "ns")}, PROVENANCE)
    assert not path.exists()


def _good():
    return {"format": C.FORMAT, "gpu": dict(GPU), "date": PROVENANCE["date"], "command": COMMAND,
            "constants": {"x": {"value": 1.5, "unit": "ns", "source": "guess"}}}


def _edit(doc, where, value):
    """``doc`` with the field at dotted ``where`` set to ``value`` (``DELETE`` removes it)."""
    doc = copy.deepcopy(doc)
    *parents, last = where.split(".")
    node = doc
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


DELETE = object()


@pytest.mark.parametrize("where, value, message", [
    ("format", "gbpfd-calibration/2", "format: expected 'gbpfd-calibration/1', got 'gbpfd-calibration/2'"),
    ("format", DELETE, "format: missing"),
    ("gpu", "H200", "gpu: expected an object, got 'H200'"),
    ("gpu.name", DELETE, "gpu.name: missing"),
    ("gpu.sms", "132", "gpu.sms: expected an integer, got '132'"),
    ("gpu.sms", True, "gpu.sms: expected an integer, got True"),
    ("gpu.cc", 9.0, "gpu.cc: expected a string, got 9.0"),
    ("gpu.driver", None, "gpu.driver: expected a string, got None"),
    ("date", "yesterday", "date: expected an ISO 8601 UTC date, got 'yesterday'"),
    ("date", "2026-12-02T22:00:00+02:00", "date: expected an ISO 8601 UTC date, got '2026-12-02T22:00:00+02:00'"),
    ("date", "2026-12-02T22:00:00", "date: expected an ISO 8601 UTC date, got '2026-12-02T22:00:00'"),
    ("command", DELETE, "command: missing"),
    ("constants", [], "constants: expected an object, got []"),
    ("constants.x", 1.5, "constants.x: expected an object, got 1.5"),
    ("constants.x.value", DELETE, "constants.x.value: missing"),
    ("constants.x.value", "fast", "constants.x.value: expected a finite number, got 'fast'"),
    ("constants.x.value", False, "constants.x.value: expected a finite number, got False"),
    ("constants.x.unit", 3, "constants.x.unit: expected a string, got 3"),
    ("constants.x.source", DELETE, "constants.x.source: missing"),
    ("constants.x.source", "from a blog",
     "constants.x.source: expected 'measured: ...', 'published: ...' or 'guess', got 'from a blog'"),
])
def test_each_bad_field_is_named_in_the_error(tmp_path, where, value, message):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(_edit(_good(), where, value)))
    with pytest.raises(C.CalibrationError) as err:
        C.load_calibration(path)
    assert str(err.value) == f"{path}: {message}"


def test_a_published_or_measured_source_loads(tmp_path):
    path = tmp_path / "calibration.json"
    doc = _edit(_good(), "constants.x.source", "published: NVIDIA H100 whitepaper, table 3")
    path.write_text(json.dumps(doc))
    assert C.load_calibration(path)["constants"]["x"]["source"].startswith("published: ")


@pytest.mark.parametrize("text, message", [
    (None, "cannot read the calibration: No such file or directory"),
    ("{", "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ("[1]", "expected a JSON object, got list"),
])
def test_an_unreadable_file_is_refused_with_its_path(tmp_path, text, message):
    path = tmp_path / "calibration.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(C.CalibrationError) as err:
        C.load_calibration(path)
    assert str(err.value) == f"{path}: {message}"


def test_every_constant_of_the_simulated_device_has_a_unit_and_a_source_in_the_default_file():
    import dataclasses

    from gbpfd.sim.model import DEFAULT_CALIBRATION, SimGPU, sim_gpu
    doc = C.load_calibration(DEFAULT_CALIBRATION)
    rules = ("placement",)
    numeric = [f.name for f in dataclasses.fields(SimGPU) if f.name not in ("name", "calibration", *rules)]
    assert sorted(doc["constants"]) == sorted(numeric)
    assert sorted(doc["rules"]) == sorted(rules)
    entries = [*doc["constants"].values(), *doc["rules"].values()]
    assert all(e["source"] == "guess" or e["source"].startswith("published: ") for e in entries)
    gpu = sim_gpu()
    assert gpu.calibration == "default: published figures and guesses (default_calibration.json)"
    assert {name: getattr(gpu, name) for name in numeric} == {n: e["value"] for n, e in doc["constants"].items()}
    assert {name: getattr(gpu, name) for name in rules} == {n: e["value"] for n, e in doc["rules"].items()}


def test_a_measured_calibration_replaces_what_it_measured_and_names_itself(tmp_path, monkeypatch):
    from gbpfd.sim.model import CALIBRATION_ENV, sim_gpu
    path = tmp_path / "calibration.json"
    C.write_calibration(path, {"cross_sm_round_trip_ns_p50": (700.0, "ns"), "launch_to_start_us_p50": (3.5, "us"),
                               "compute_slowdown_1": (1.9, "x")}, PROVENANCE)
    default = sim_gpu()
    monkeypatch.setenv(CALIBRATION_ENV, str(path))
    gpu = sim_gpu()
    assert (gpu.visibility_ns, gpu.launch_ns) == (350, 3500)
    assert (gpu.host_ns, gpu.gate_step_ns, gpu.insn_ns) == (default.host_ns, default.gate_step_ns, default.insn_ns)
    assert gpu.num_sms == 132 and gpu.name == "simulated NVIDIA H200 (132 SMs)"
    assert gpu.calibration == ("calibration.json: measured on NVIDIA H200 2026-12-02T22:00:00+00:00 "
                               "(launch_ns, visibility_ns measured, the rest default)")


def test_the_plane_says_which_calibration_its_simulated_device_ran_under():
    from gbpfd.plane.plane import Plane
    with Plane(backend="sim") as plane:
        assert plane._backend.describe().endswith(
            "(simulated; calibration default: published figures and guesses (default_calibration.json))")


def test_a_measured_timer_step_launch_tail_and_clock_droop_replace_the_guesses(tmp_path, monkeypatch):
    import math

    from gbpfd.sim.model import CALIBRATION_ENV, sim_gpu
    path = tmp_path / "calibration.json"
    C.write_calibration(path, {"globaltimer_resolution_ns": (32, "ns"), "launch_to_start_us_p50": (4.0, "us"),
                               "launch_to_start_us_p99": (4.0 + 3 * math.log(50), "us"),
                               "sm_clock_idle_mhz": (1980.0, "MHz"), "sm_clock_load_mhz": (1782.0, "MHz")},
                        PROVENANCE)
    monkeypatch.setenv(CALIBRATION_ENV, str(path))
    gpu = sim_gpu()
    assert (gpu.globaltimer_step_ns, gpu.launch_ns, gpu.launch_jitter_ns) == (32, 4000, 3000)
    assert gpu.clock_droop == 0.1
    assert "clock_droop, globaltimer_step_ns, launch_jitter_ns, launch_ns measured" in gpu.calibration


@pytest.mark.parametrize("rules, message", [
    ([], "rules: expected an object, got []"),
    ({"placement": "most_free"}, "rules.placement: expected an object, got 'most_free'"),
    ({"placement": {"value": 1, "source": "guess"}}, "rules.placement.value: expected a string, got 1"),
    ({"placement": {"value": "most_free", "source": "folklore"}},
     "rules.placement.source: expected 'measured: ...', 'published: ...' or 'guess', got 'folklore'"),
])
def test_each_bad_rule_is_named_in_the_error(tmp_path, rules, message):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({**_good(), "rules": rules}))
    with pytest.raises(C.CalibrationError) as err:
        C.load_calibration(path)
    assert str(err.value) == f"{path}: {message}"


@pytest.mark.parametrize("slowdown_3, issue", [(4.0, 1.0), (3.2, 0.8), (4.6, 1.0)])
def test_a_measured_read_bandwidth_and_compute_slowdown_replace_their_guesses(
        tmp_path, monkeypatch, slowdown_3, issue):
    from gbpfd.sim.model import CALIBRATION_ENV, sim_gpu
    path = tmp_path / "calibration.json"
    C.write_calibration(path, {"hbm_read_bytes_per_s": (4.1e12, "bytes/s"), "compute_slowdown_3": (slowdown_3, "x"),
                               "host_read_ns": (912.4, "ns")}, PROVENANCE)
    default = sim_gpu()
    monkeypatch.setenv(CALIBRATION_ENV, str(path))
    gpu = sim_gpu()
    assert (gpu.hbm_bytes_per_s, gpu.compute_issue) == (4.1e12, issue)
    assert gpu.memory_issue == default.memory_issue   # not measured: stays the guess
    assert "(compute_issue, hbm_bytes_per_s measured, the rest default)" in gpu.calibration   # host_read_ns: unread


def test_the_model_reads_the_slowdown_of_the_calibrate_stages_fullest_sm():
    from gbpfd.check.calibrate import CO_RESIDENTS
    from gbpfd.sim.model import FULLEST
    assert FULLEST == CO_RESIDENTS[-1]


def test_an_issue_utilisation_above_one_is_refused():
    import dataclasses

    from gbpfd.sim.model import sim_gpu
    with pytest.raises(ValueError, match=r"^SimGPU\.memory_issue must be at most 1 \(an SM's whole issue rate\), "
                                         r"got 1\.5$"):
        dataclasses.replace(sim_gpu(), memory_issue=1.5)
