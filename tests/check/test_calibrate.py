"""Stage ``calibrate`` without a GPU: its kernels (and the bench kernels it
borrows) compile to sm_90 PTX with their bounds, the analysis of synthetic
stamps, the calibration file's round trip and every validation error, and
the stage's bookkeeping of a measurement that fails."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from cuda_stub import TARGET_CC, nvvm_missing_reason
from gbpfd.check import calibrate as C
from gbpfd.check.stage import StageContext, StageSkip
from gbpfd.sim import calibration as F

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (numba's own numba.cuda is not enough)")

GPU = {"name": "NVIDIA H200", "sms": 132, "cc": "9.0", "driver": "580.65.06"}
PROVENANCE = {"gpu": GPU, "date": "2026-12-02T22:00:00+00:00", "command": C.COMMAND}


@pytest.fixture(scope="module")
def device_code():
    reason = nvvm_missing_reason()
    if reason:
        pytest.skip(reason)
    from gbpfd.ptx import compile_ptx, stand_in_device
    path, imported = list(sys.path), "gpu_kernels" in sys.modules
    with stand_in_device():
        from gbpfd.check import gpu_clock
        bench = C.bench_kernels()

    def compile_(fn, sig):
        text = compile_ptx(fn, sig)
        assert f".target sm_{TARGET_CC[0]}{TARGET_CC[1]}" in text
        return text
    yield gpu_clock, bench, compile_
    sys.path[:] = path   # bench_kernels() put bench/ on the path, as gbpfd bench does; the other tests do without
    if not imported:
        sys.modules.pop("gpu_kernels", None)


@pytest.mark.parametrize("name, needles", [
    ("atomic_chain", ("%globaltimer", "atom.global.add")),
    ("mapped_echo", ("%globaltimer", "ld.acquire.sys.b64", "st.release.sys.b64")),
    ("interference", ("%globaltimer", "%smid", "bar.red.and", "fma.rn.f32", "ld.global.f32")),
    ("placement", ("%globaltimer", "%smid")),
    ("host_read_chain", ("%globaltimer", "ld.global.u64")),
])
def test_each_calibration_kernel_compiles_with_its_time_bound(device_code, name, needles):
    gpu_clock, _, compile_ = device_code
    text = compile_(getattr(gpu_clock, name), gpu_clock.SIGS[name])
    for needle in needles:
        assert needle in text, needle


def test_ready_finds_each_kernels_launch_types_by_its_name(device_code):
    gpu_clock, _, _ = device_code
    for name in gpu_clock.SIGS:
        assert getattr(gpu_clock, name).__name__ == name   # what ready() looks SIGS up by


def test_four_interference_ctas_fit_on_one_sm_by_their_registers(device_code):
    from gbpfd import ptx as P
    if P.ptxas() is None:
        pytest.skip("ptxas was not found on PATH or under the CUDA toolkit")
    gpu_clock, _, compile_ = device_code
    (cost,), _ = P.assemble(compile_(gpu_clock.interference, gpu_clock.SIGS["interference"]))
    ctas = 1 + max(C.CO_RESIDENTS)
    assert cost.registers * C.THREADS * ctas <= 65536   # sm_90: 64K registers per SM
    assert cost.spill_stores == 0 and cost.stack_frame == 0


def test_the_atomic_chain_cannot_overlap_its_atomics(device_code):
    gpu_clock, _, compile_ = device_code
    text = compile_(gpu_clock.atomic_chain, gpu_clock.SIGS["atomic_chain"])
    assert "atom.global.add.u64" in text
    assert "shr.u64" in text   # the next address is taken from the last result


@pytest.mark.parametrize("name", ["clock_probe", "ping_pong"])
def test_the_borrowed_bench_kernels_compile_with_the_types_the_stage_launches(device_code, name):
    gpu_clock, bench, compile_ = device_code
    text = compile_(getattr(bench, name), gpu_clock.BENCH_SIGS[name])
    assert "%globaltimer" in text and "%clock64" in text


def test_the_timer_resolution_is_the_smallest_nonzero_step():
    assert C.timer_resolution(np.array([0, 1024, 32, 0, 992, 32])) == 32
    with pytest.raises(ValueError, match="^no %globaltimer step was seen$"):
        C.timer_resolution(np.zeros(4, np.int64))


def test_cycles_per_ns_refuses_an_unfinished_span():
    assert C.cycles_per_ns(1_000, 1_980) == pytest.approx(1.98)
    with pytest.raises(ValueError, match=r"^the kernel's span is empty \(0 ns, 0 cycles\)$"):
        C.cycles_per_ns(0, 0)


def _rec(rows):
    """Interference records from (sm, start, end, finished) tuples."""
    from gbpfd.check import gpu_clock as G
    out = np.full((len(rows), G.REC_COLUMNS), -1, np.int64)
    for i, (sm, start, end, done) in enumerate(rows):
        out[i, [G.REC_SM, G.REC_START, G.REC_END, G.REC_DONE]] = sm, start, end, done
    return out


def test_ctas_are_grouped_by_the_sm_they_report_and_unfinished_ones_dropped():
    groups = C.sm_groups(_rec([(3, 0, 100, 1), (5, 10, 60, 1), (3, 0, 120, 1), (5, 0, 999, 0)]))
    assert groups == {3: [100, 120], 5: [50]}


def test_slowdown_compares_ctas_sharing_an_sm_with_ctas_alone():
    alone = {0: [100], 1: [104], 2: [96]}                       # k = 0: one CTA per SM
    pairs = {0: [190, 210], 1: [200, 200], 2: [100]}           # SM 2 got one CTA only: it counts as alone
    fours = {0: [380, 400, 410, 420]}
    ratios = C.slowdowns([alone, pairs, fours])
    assert ratios == {0: pytest.approx(1.0), 1: pytest.approx(2.0), 3: pytest.approx(4.05)}


def test_slowdown_needs_a_cta_alone():
    with pytest.raises(ValueError, match="^no SM ran a CTA alone: there is nothing to compare with$"):
        C.slowdowns([{0: [1, 2]}])


def test_work_is_scaled_to_the_target_in_whole_chunks():
    from gbpfd.check.gpu_clock import CHUNK
    assert C.scaled_work(16_384, 500_000, 2_000_000) == 65_536
    assert C.scaled_work(16_384, 3_000_000, 2_000_000) % CHUNK == 0
    assert C.scaled_work(256, 1e12) == CHUNK      # never less than one chunk
    with pytest.raises(ValueError, match="^a CTA of 256 iterations took 0 ns$"):
        C.scaled_work(256, 0)


def test_placement_summary_says_how_a_fresh_launch_spreads():
    breadth_first = [0, 2, 4, 6, 1, 3, 5, 7, 0, 2, 4, 6, 1, 3, 5, 7]
    assert C.placement_summary(breadth_first, 8) == {"placement_distinct_share": (1.0, "ratio"),
                                                     "placement_most_per_sm": (2, "CTAs")}
    packed = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    assert C.placement_summary(packed, 8)["placement_distinct_share"] == (0.25, "ratio")
    most = C.placement_summary(packed, 8)["placement_most_per_sm"]
    assert most == (4, "CTAs") and type(most[0]) is int   # a numpy integer would not go into JSON


def test_spread_gives_p50_and_p99_scaled():
    assert C.spread(list(range(1, 101)), "rtt_ns", "ns", 0.5) == {"rtt_ns_p50": (25.25, "ns"),
                                                                 "rtt_ns_p99": (49.505, "ns")}
    with pytest.raises(ValueError, match="^rtt_ns: no samples$"):
        C.spread([], "rtt_ns", "ns")


class _Dev:
    def __init__(self, tmp_path):
        self.ctx = StageContext("cuda", tmp_path)


def _launching_dev(tmp_path, sms: int) -> _Dev:
    """A stand-in device of ``sms`` SMs whose fake launches log (kind, blocks, work) in ``launched``."""
    from gbpfd.check import gpu_clock
    dev = _Dev(tmp_path)
    dev.sms, dev.G, dev.launched = sms, gpu_clock, []
    return dev


def test_a_failing_measurement_is_noted_and_the_others_still_run(tmp_path):
    dev = _Dev(tmp_path)

    def broken(_dev):
        raise TimeoutError("ping_pong did not finish within 10.0 s")

    constants, failed = C.collect(dev, (("atomic", lambda _d: {"global_atomic_ns": (600.0, "ns")}),
                                        ("cross_sm", broken),
                                        ("timer", lambda _d: {"globaltimer_resolution_ns": (32, "ns")})))
    assert constants == {"global_atomic_ns": (600.0, "ns"), "globaltimer_resolution_ns": (32, "ns")}
    assert failed == ["cross_sm"]
    assert dev.ctx.notes == ["cross_sm: not measured: TimeoutError: ping_pong did not finish within 10.0 s"]
    assert dev.ctx.figures["globaltimer_resolution_ns"] == {"value": 32, "unit": "ns"}


def test_provenance_falls_back_to_the_cuda_version_without_nvidia_smi():
    facts = {"gpu": "NVIDIA H200", "sms": 132, "compute_capability": "9.0", "driver": None,
             "cuda_driver_api": "13.0"}
    made = C.provenance(facts)
    assert made["gpu"] == {"name": "NVIDIA H200", "sms": 132, "cc": "9.0", "driver": "CUDA 13.0"}
    F.validate({"format": F.FORMAT, **made, "constants": {}}, "here")   # a date the loader accepts


def test_the_stage_skips_on_the_simulated_device(tmp_path):
    with pytest.raises(StageSkip, match="^needs a GPU: the constants are measured on the GPU they describe$"):
        C.run(StageContext("sim", tmp_path))


def test_the_slowdown_scales_the_work_then_compares_each_co_resident_count(tmp_path, monkeypatch):
    from gbpfd.check import gpu_clock
    dev = _launching_dev(tmp_path, 4)
    launched = dev.launched

    def fake_launch(_dev, kind, blocks, work):
        """Every SM gets blocks / sms CTAs, which share its issue slots evenly (10 ns per iteration alone)."""
        launched.append((kind, blocks, work))
        per_sm = blocks // dev.sms
        return {sm: [10 * work * per_sm] * per_sm for sm in range(dev.sms)}

    monkeypatch.setattr(C, "_interference", fake_launch)
    found = C.measure_slowdown(dev, gpu_clock.COMPUTE)
    assert found == {"compute_slowdown_1": (2.0, "x"), "compute_slowdown_2": (3.0, "x"),
                     "compute_slowdown_3": (4.0, "x"), "compute_cta_work": (199_936, "iterations")}
    assert launched[0] == (gpu_clock.COMPUTE, 4, C.PROBE_WORK)       # the probe: one CTA per SM
    assert [b for _, b, _ in launched[1:]] == [4, 8, 12, 16]         # then 1 + k CTAs per SM
    assert dev.ctx.notes == []


def test_a_co_resident_count_no_sm_ran_is_noted(tmp_path, monkeypatch):
    from gbpfd.check import gpu_clock
    dev = _Dev(tmp_path)
    dev.sms, dev.G = 2, gpu_clock
    # the scheduler put 3 CTAs on SM 0 and 1 on SM 1 where 2 per SM were asked: no SM ran exactly 2
    monkeypatch.setattr(C, "_interference", lambda _d, _k, blocks, work: (
        {0: [1000], 1: [1000]} if blocks == 2 else {0: [3000] * 3, 1: [1000]} if blocks == 4 else
        {0: [3000] * 3, 1: [3000] * 3} if blocks == 6 else {0: [4000] * 4, 1: [4000] * 4}))
    found = C.measure_slowdown(dev, gpu_clock.MEMORY)
    assert "memory_slowdown_1" not in found and found["memory_slowdown_2"] == (3.0, "x")
    assert dev.ctx.notes == ["memory slowdown: no SM ran 2 CTAs of one launch"]


def _rows(spans, done=1):
    """Interference records (start, end, SM, finished), one per (start, end)."""
    return np.array([[start, end, i, done] for i, (start, end) in enumerate(spans)], np.int64)


def test_read_bandwidth_is_every_ctas_bytes_over_the_launchs_span():
    # 4 CTAs of 1 MB over 0..2000 ns, overlapping as they may
    assert C.read_bandwidth(_rows([(0, 1000), (500, 1500), (1000, 2000), (0, 2000)]), 1_000_000) == 2e12
    with pytest.raises(ValueError, match="^2 of 2 streaming CTAs did not finish within their bound$"):
        C.read_bandwidth(_rows([(0, 10), (0, 10)], done=0), 1)
    with pytest.raises(ValueError, match="^the streaming launch's span is 0 ns$"):
        C.read_bandwidth(_rows([(5, 5)]), 1)


def test_hbm_streams_the_fullest_launch_and_counts_float32_reads(tmp_path, monkeypatch):
    from gbpfd.check import gpu_clock
    dev = _launching_dev(tmp_path, 2)
    launched = dev.launched

    def fake_records(_dev, kind, blocks, work):
        launched.append((kind, blocks, work))
        return _rows([(0, 1_000_000)] * blocks)   # every CTA 1 ms, all at once

    monkeypatch.setattr(C, "_interference_records", fake_records)
    found = C.measure_hbm(dev)
    work = launched[1][2]
    assert launched[0] == (gpu_clock.MEMORY, 2, C.PROBE_WORK) and launched[1][:2] == (gpu_clock.MEMORY, 8)
    assert found == {"hbm_read_bytes_per_s": (round(8 * work * C.THREADS * 4 * 1e3, -6), "bytes/s")}


@pytest.mark.parametrize("slowdowns, error", [
    ({1: 2.0, 2: 3.0, 3: 4.0}, 0.0),                # the law exactly, issue 1
    ({1: 1.0, 2: 1.5, 3: 2.0}, 0.0),                # issue 0.5: no slowdown until the SM is oversubscribed
    ({1: 1.5, 2: 3.0, 3: 4.0}, 0.333),              # slower beside one than the law allows: the gap says so
])
def test_the_issue_law_error_is_the_largest_relative_gap_to_the_model(slowdowns, error):
    constants = {f"compute_slowdown_{k}": (v, "x") for k, v in slowdowns.items()}
    assert C.issue_law_error(constants) == {"compute_issue_law_error": (error, "ratio")}


def test_no_issue_law_error_without_the_fullest_sm():
    assert C.issue_law_error({"compute_slowdown_1": (2.0, "x")}) == {}


def test_the_read_chain_visits_every_line_once_and_returns_to_the_start():
    chain = C.read_chain(8, 16)
    at, seen = 0, []
    for _ in range(8):
        seen.append(at)
        at = int(chain[at])
    assert at == 0 and sorted(seen) == [16 * i for i in range(8)]   # each a fresh 128-byte line


def test_host_read_is_the_chains_time_per_load(tmp_path):
    from gbpfd.check import gpu_clock

    class FakeCuda:
        @staticmethod
        def mapped_array(n, dtype):
            return np.zeros(n, dtype)

    class Launch:
        def __getitem__(self, config):
            def run(chain, reads, out):
                out[0], out[1] = 2_048_000, 0   # 1000 ns a load, back at the start
            return run

    dev = _Dev(tmp_path)
    dev.cuda, dev.G, dev.stream = FakeCuda, gpu_clock, None
    dev.kernel = lambda name: Launch()
    dev.finish = lambda what: None
    assert C.measure_host_read(dev) == {"host_read_ns": (1000.0, "ns")}
