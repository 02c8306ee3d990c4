"""Stage ``resident`` without a GPU: its kernels compile to sm_90 PTX with
their bounds, and the timing, the would-hang judgement and the report work
on fake calls beside a fake spinner."""
from __future__ import annotations

import contextlib
import threading
import time
from types import SimpleNamespace

import pytest

from cuda_stub import TARGET_CC, nvvm_missing_reason
from gbpfd.check import resident as R
from gbpfd.check.stage import StageContext, StageSkip


class FakeSpinner(R.Lifetime):
    """A spinner that lives ``life_s`` of host time from each launch."""

    def __init__(self, life_s: float):
        self.life_s = life_s

    def launch(self) -> None:
        self.ends_at = time.monotonic() + self.life_s


@pytest.fixture(scope="module")
def ptx():
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (numba's own numba.cuda is not enough)")
    reason = nvvm_missing_reason()
    if reason:
        pytest.skip(reason)
    from gbpfd.ptx import compile_ptx, stand_in_device
    with stand_in_device():
        from gbpfd.check import gpu_clock

    def compile_(name):
        text = compile_ptx(getattr(gpu_clock, name), gpu_clock.SIGS[name])
        assert f".target sm_{TARGET_CC[0]}{TARGET_CC[1]}" in text
        return text
    return compile_


def test_the_spinner_is_bounded_by_the_global_timer_and_naps(ptx):
    text = ptx("spinner")
    assert "%globaltimer" in text
    assert "nanosleep" in text
    assert text.count("st.release.sys.b64") == 3   # start, clock feed, end: each visible to the host


def test_the_stamp_kernel_writes_the_clock_for_the_host(ptx):
    text = ptx("stamp")
    assert "%globaltimer" in text
    assert "st.release.sys.b64" in text


def test_the_fresh_module_is_loaded_by_its_full_mangled_entry(ptx, monkeypatch):
    text = ptx("stamp")
    seen = _fake_driver(monkeypatch, lambda d: d.CUresult.CUDA_SUCCESS)
    R.load_module(text)
    entry = seen[1][1].decode()
    assert f".entry {entry}(" in text and "stamp" in entry


@pytest.mark.parametrize("seconds, left_s, hangs", [
    (0.001, 2.0, False),
    (1.79, 2.0, False),
    (1.8, 2.0, True),     # 90% of the life it had left: waited for the spinner
    (2.4, 2.0, True),     # returned after the spinner ended
    (None, 2.0, True),    # never returned
])
def test_a_call_would_hang_when_it_took_nine_tenths_of_the_spinners_life(seconds, left_s, hangs):
    assert R.Timing("x", seconds, left_s).would_hang is hangs


def test_timed_call_times_a_call_in_a_bound_thread():
    bound = []
    seconds, error = R.timed_call(lambda: time.sleep(0.05), 5.0, bind=lambda: bound.append(threading.get_ident()))
    assert 0.05 <= seconds < 1.0 and error is None
    assert bound and bound[0] != threading.get_ident()   # the context is bound in the worker, not here


def test_timed_call_reports_an_error_by_type_and_message():
    def boom():
        raise ValueError("CUDA_ERROR_INVALID_CONTEXT")
    seconds, error = R.timed_call(boom, 5.0)
    assert seconds is not None
    assert error == "ValueError: CUDA_ERROR_INVALID_CONTEXT"


def test_timed_call_gives_up_on_a_call_past_its_bound():
    release = threading.Event()
    started = time.monotonic()
    seconds, error = R.timed_call(release.wait, 0.2)
    release.set()
    assert (seconds, error) == (None, None)
    assert time.monotonic() - started < 1.0


def test_a_call_that_waits_for_the_spinner_is_named_and_the_next_gets_a_fresh_spinner():
    spinner = FakeSpinner(0.5)
    calls = [("quick", lambda: None),
             ("synchronising", lambda: time.sleep(max(spinner.left_s(), 0) + 0.02)),
             ("after", lambda: None)]
    timings, not_run = R.measure(calls, spinner, min_left_s=0.3, grace_s=0.3)
    assert [(t.name, t.would_hang) for t in timings] == [("quick", False), ("synchronising", True), ("after", False)]
    assert not_run == []
    assert spinner.launched == 2          # the synchronising call used up the first spinner
    assert timings[2].left_s > 0.3        # the last call ran beside the second one


def test_a_call_still_running_after_the_grace_stops_the_run():
    release = threading.Event()
    try:
        timings, not_run = R.measure([("load", release.wait), ("free", lambda: None), ("more", lambda: None)],
                                     FakeSpinner(0.2), min_left_s=0.1, grace_s=0.1)
    finally:
        release.set()
    assert [(t.name, t.seconds) for t in timings] == [("load", None)]
    assert not_run == ["free", "more"]


class Deferral:
    """Stands in for ``cuda.defer_cleanup``: says whether frees are deferred now."""

    def __init__(self):
        self.on = False

    @contextlib.contextmanager
    def __call__(self):
        self.on = True
        try:
            yield
        finally:
            self.on = False


def test_the_free_runs_last_and_alone_outside_the_deferral(tmp_path):
    deferral, seen = Deferral(), []
    todo = [("device_alloc", lambda: seen.append(("device_alloc", deferral.on)))]
    free = ("device_free", lambda: seen.append(("device_free", deferral.on)))
    timings, not_run = R.time_calls(StageContext("cuda", tmp_path), todo, free, FakeSpinner(1.0), deferred=deferral)
    assert seen == [("device_alloc", True), ("device_free", False)]
    assert [t.name for t in timings] == ["device_alloc", "device_free"] and not_run == []


def test_no_free_is_tried_after_a_call_hung_for_real(tmp_path):
    release, freed = threading.Event(), []
    ctx = StageContext("cuda", tmp_path)
    try:
        timings, not_run = R.time_calls(ctx, [("module_load", release.wait)], ("device_free", lambda: freed.append(1)),
                                        FakeSpinner(0.2), deferred=Deferral())
    finally:
        release.set()
    assert freed == [] and not_run == ["device_free"]
    assert ctx.figures["module_load_ms"] == {"value": None, "unit": "ms"}   # recorded the moment it was given up


def test_the_verdict_names_every_hang_failure_and_call_not_run():
    timings = [R.Timing("device_alloc", 0.001, 2.0), R.Timing("module_load", 1.95, 2.0),
               R.Timing("cupy_alloc", 0.002, 2.0, "OutOfMemoryError: out of memory"), R.Timing("free", None, 2.0)]
    assert R.verdict(timings, ["more"]) == ("would hang beside the real plane: module_load, free; "
                                            "cupy_alloc failed: OutOfMemoryError: out of memory; "
                                            "not run after a call hung: more")
    assert R.verdict(timings[:1], []) is None


def test_each_timing_is_recorded_as_it_lands_and_the_report_names_the_hangs(tmp_path):
    ctx = StageContext("cuda", tmp_path)
    landed = []
    timings, _ = R.measure([("stream_create", lambda: None), ("cupy_alloc", lambda: 1 / 0)], FakeSpinner(1.0),
                           on_timing=lambda t: (landed.append(t.name), R.record(ctx, t)), min_left_s=0.5)
    assert landed == ["stream_create", "cupy_alloc"]
    assert ctx.figures["stream_create_ms"]["unit"] == "ms" and ctx.figures["stream_create_ms"]["value"] < 100
    assert ctx.notes == ["cupy_alloc: ZeroDivisionError: division by zero"]
    R.record(ctx, R.Timing("device_free", None, 2.0))
    R.report(ctx, timings + [R.Timing("device_free", None, 2.0)], ["x"])
    assert ctx.figures["device_free_ms"] == {"value": None, "unit": "ms"}
    assert ctx.figures["would_hang"] == {"value": ["device_free"], "unit": "calls"}
    assert ctx.notes[-1] == f"x: not run (an earlier call still had not returned {R.GRACE_S} s after its spinner ended)"


def test_a_timing_is_recorded_in_ms_to_the_microsecond(tmp_path):
    ctx = StageContext("cuda", tmp_path)
    R.record(ctx, R.Timing("stream_create", 0.0012345, 2.0))
    assert ctx.figures["stream_create_ms"] == {"value": 1.234, "unit": "ms"}


@pytest.mark.parametrize("cupy, extra", [(None, []), (object(), ["cupy_alloc"])])
def test_the_calls_run_safe_first_and_the_module_load_last(cupy, extra):
    kit = SimpleNamespace(kept=[], cupy=cupy)
    names = [name for name, _ in R.calls(SimpleNamespace(), kit)]
    assert names == ["stream_create", "pinned_alloc", "mapped_alloc", "device_alloc", "copy_h2d", "copy_d2h",
                     "launch_non_blocking", "launch_high_priority", "launch_default_stream", *extra, "module_load"]


def test_the_stage_skips_on_the_simulated_device(tmp_path):
    with pytest.raises(StageSkip, match="^needs a GPU: the simulated device has no driver calls to time beside a "
                                        "resident kernel$"):
        R.run(StageContext("sim", tmp_path))


def _fake_driver(monkeypatch, load_result):
    pytest.importorskip("cuda.bindings", reason="cuda-bindings is not installed")
    from cuda.bindings import driver
    seen = []

    def load(image):
        seen.append(image)
        return load_result(driver), "module"

    def get_function(module, name):
        seen.append((module, name))
        return driver.CUresult.CUDA_SUCCESS, "function"

    monkeypatch.setattr(driver, "cuModuleLoadData", load)
    monkeypatch.setattr(driver, "cuModuleGetFunction", get_function)
    return seen


PTX = ".version 8.5\n.visible .entry _Z5stampP1x(\n.param .u64 p\n)\n{ ret; }\n"


def test_the_module_load_loads_the_entry_the_ptx_declares(monkeypatch):
    seen = _fake_driver(monkeypatch, lambda d: d.CUresult.CUDA_SUCCESS)
    R.load_module(PTX)
    assert seen[0] == PTX.encode() + b"\0"   # the driver reads PTX as a NUL-terminated string
    assert seen[1] == ("module", b"_Z5stampP1x")


def test_a_refused_module_load_names_the_driver_call_and_its_error(monkeypatch):
    _fake_driver(monkeypatch, lambda d: d.CUresult.CUDA_ERROR_INVALID_PTX)
    with pytest.raises(RuntimeError, match="^cuModuleLoadData failed: .*CUDA_ERROR_INVALID_PTX"):
        R.load_module(PTX)


def test_a_free_that_waits_for_the_resident_kernel_is_reported_but_fails_nothing():
    timings = [R.Timing("device_free", None, 2.0)]
    assert timings[0].would_hang and R.verdict(timings, []) is None
    assert R.verdict(timings + [R.Timing("module_load", None, 2.0)], []) == \
        "would hang beside the real plane: module_load"
