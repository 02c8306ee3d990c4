"""Tiny bench cases in a temporary bench/ folder: the runner's own tests
need cases that are fast and fail on purpose."""
from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest

from cuda_stub import TARGET_CC, nvvm_missing_reason, stand_in_device

TINY_CASES = {
    "bench_good.py": '''
        NAME, TITLE, BACKENDS, PARAMS = "good", "a case that measures", ("sim", "cuda"), {"n": (100, 3)}
        from gbpfd.bench.case import Target
        TARGETS = (Target("latency_p50", "<", 10.0, "< 10 ns", "a test"),)
        def measure(run):
            run.step("measuring")
            samples = list(range(1, run.params["n"] + 1))
            run.figure("latency_p50", 2.0, "ns", len(samples))
            run.cdf("latency", samples, "ns")
            run.cdf("floor", [1, 1, 1], "ns", floor=True)
            run.bar_chart("ratio", {"a": 0.5, "b": None}, "x", target=1.0)
            run.check("n", run.params["n"])
    ''',
    "bench_broken.py": '''
        NAME, TITLE, BACKENDS, PARAMS, TARGETS = "broken", "a case that fails", ("sim",), {}, ()
        def measure(run):
            raise RuntimeError("the measurement broke")
    ''',
    "bench_gpu_only.py": '''
        NAME, TITLE, BACKENDS, PARAMS, TARGETS = "gpu_only", "a GPU-only case", ("cuda",), {}, ()
        def measure(run):
            raise AssertionError("never run on the simulated device")
    ''',
}


@pytest.fixture
def tiny_bench(tmp_path, monkeypatch):
    folder = tmp_path / "bench"
    folder.mkdir()
    for name, text in TINY_CASES.items():
        (folder / name).write_text(textwrap.dedent(text))
    monkeypatch.setenv("GBPFD_BENCH_DIR", str(folder))
    return folder


BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench_gpu_module():
    """``bench_gpu_module("gpu_kernels")``: a bench/ device-code module imported
    on the stand-in device (skipped, with the reason, where PTX cannot be made)."""
    pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (numba's own numba.cuda is not enough)")
    reason = nvvm_missing_reason()
    if reason:
        pytest.skip(reason)

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        with pytest.MonkeyPatch.context() as mp, stand_in_device():
            mp.syspath_prepend(str(BENCH))  # a module may share another's device functions, as the suite lets it
            spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(scope="module")
def ptx(bench_gpu_module):
    """``ptx(fn, sig)``: the PTX of ``fn`` (a kernel, a device function or a
    plain function) for the target GPU."""
    def compile_(fn, sig) -> str:
        from numba import cuda
        with stand_in_device():
            text, _ = cuda.compile_ptx(getattr(fn, "py_func", fn), sig, cc=TARGET_CC)
        assert f".target sm_{TARGET_CC[0]}{TARGET_CC[1]}" in text
        return text
    return compile_
