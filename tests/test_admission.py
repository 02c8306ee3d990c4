"""gbpfd.admit's launch checks, with a stand-in for the compiled kernel (no
GPU needed): a kernel is loaded by ``preload`` before the plane starts, and
a launch that would load a module under the resident control kernel is
refused instead of waiting for it forever."""
from __future__ import annotations

import numpy as np
import pytest

from gbpfd.admission import AdmitError, AdmittedKernel, admit
from gbpfd.quotas.load import load_quotas
from gbpfd.resources import shared_file


def body(marks, cta_ns):
    pass


def workers_body(block, marks, block_ns):
    pass


class Plane:
    """Stands in for a GPU plane; ``log`` records announcements and launches."""

    def __init__(self, log: list, running: bool = True):
        self.simulated, self.running, self.log = False, running, log
        self.quotas = load_quotas(shared_file("quotas", "demo.toml"))
        self.device = {"ctl": np.zeros(4, np.int64), "flat": np.zeros(4, np.int64)}

    def announce_launch(self, tenant: int, ctas: int) -> None:
        self.log.append(("announce", tenant, ctas))

    def report_when_done(self, tenant: int, stream) -> None:
        self.log.append(("report when done", tenant, stream))


class Compiled:
    """Stands in for the wrapper's numba dispatcher: types are the Python type names."""

    def __init__(self, log: list):
        self.overloads, self.log = {}, log

    @staticmethod
    def typeof_pyval(value) -> str:
        return type(value).__name__

    def compile(self, types: tuple):
        self.overloads[types] = self
        self.log.append(("compile", types))
        return self

    def bind(self) -> None:
        self.log.append(("bind",))

    def __getitem__(self, config):
        return lambda *args: self.log.append(("launch", config, args))


@pytest.fixture
def log():
    return []


@pytest.fixture
def gated(log, monkeypatch):
    import numba.cuda
    monkeypatch.setattr(numba.cuda, "device_array", lambda n, dtype: np.zeros(n, dtype), raising=False)
    compiled = Compiled(log)
    monkeypatch.setattr(AdmittedKernel, "_compiled", lambda self: compiled)
    return admit(Plane(log), tenant="infer")(body)


def test_a_launch_of_a_kernel_not_loaded_for_its_argument_types_is_refused(gated, log):
    with pytest.raises(AdmitError, match=r"^body: not loaded for arguments of types \(ndarray, int\); call "
                                         r"body\.preload\(\.\.\.\) with such arguments before the plane starts"):
        gated[4, 32](np.zeros(4, np.int64), 500)
    assert log == [], "nothing announced, nothing launched"


def test_preload_compiles_and_loads_for_the_launch_types_and_the_launch_then_runs(gated, log):
    gated.preload(np.zeros(1, np.int64), 500)
    assert log == [("compile", ("ndarray", "ndarray", "int", "ndarray", "int")), ("bind",)]
    gated[4, 32](np.zeros(4, np.int64), 500)
    infer = gated.plane.quotas.index("infer")
    assert log[2] == ("announce", infer, 4)   # with its CTAs
    what, config, args = log[3]
    assert (what, config) == ("launch", (4, 32, 0))
    assert (args[2], args[4]) == (infer, 500)  # ctl, flat, tenant, then the body's own arguments
    assert log[4] == ("report when done", infer, 0)  # its stream reports the launch finished once it ends


def test_preload_checks_the_argument_count(gated):
    with pytest.raises(AdmitError, match=r"^body: takes 2 arguments, got 1$"):
        gated.preload(np.zeros(1, np.int64))


def test_a_launch_on_a_stopped_plane_is_refused(gated, log):
    gated.plane.running = False
    with pytest.raises(AdmitError, match=r"^body: the plane is not running; launch inside its with block"):
        gated[4, 32](np.zeros(4, np.int64), 500)
    assert log == []


def test_persistent_preload_types_the_wrappers_own_arguments(log, monkeypatch):
    import numba.cuda
    monkeypatch.setattr(numba.cuda, "device_array", lambda n, dtype: np.zeros(n, dtype), raising=False)
    compiled = Compiled(log)
    monkeypatch.setattr(AdmittedKernel, "_compiled", lambda self: compiled)
    workers = admit(Plane(log), tenant="train", mode="persistent")(workers_body)
    workers.preload(np.zeros(1, np.int64), 2000)
    # ctl, flat, tenant, next_block, nblocks, force, then the body's own (not 'block')
    assert log[0] == ("compile", ("ndarray", "ndarray", "int", "ndarray", "int", "int", "ndarray", "int"))


def test_preload_on_a_simulated_plane_is_refused_by_name_before_numba_is_asked(log, monkeypatch):
    import numba.cuda
    monkeypatch.setattr(numba.cuda, "device_array", lambda *a, **k: pytest.fail("numba was asked"), raising=False)
    plane = Plane(log)
    plane.simulated = True
    kernel = admit(plane, tenant="infer")(body)
    with pytest.raises(AdmitError, match=r"^body\.preload: admitted kernels run on the GPU backend; this plane is on "
                                         r"the simulated device \(model the work with plane\.device\.launch"):
        kernel.preload(np.zeros(1, np.int64), 500)
    assert log == []


def test_preload_on_a_real_simulated_plane_under_the_cuda_simulator_is_refused_cleanly(monkeypatch):
    import gbpfd
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    monkeypatch.setattr("gbpfd.plane.gpu_probe.gpu_missing_reason",
                        lambda: "NUMBA_ENABLE_CUDASIM=1 selects Numba's CUDA simulator")
    with gbpfd.Plane(backend="auto") as plane:
        kernel = admit(plane, tenant="infer")(body)
        with pytest.raises(AdmitError, match=r"^body\.preload: admitted kernels run on the GPU backend"):
            kernel.preload(np.zeros(1, np.int64), 500)


def test_a_persistent_launch_with_every_launch_word_in_use_is_refused_naming_the_option(log, monkeypatch):
    from types import SimpleNamespace

    from gbpfd.plane.options import PlaneOptions
    compiled = Compiled(log)
    monkeypatch.setattr(AdmittedKernel, "_compiled", lambda self: compiled)
    plane = Plane(log)
    plane.options = PlaneOptions(persistent_launches=1)
    plane._backend = SimpleNamespace(launch_words=SimpleNamespace(take=lambda: None))
    workers = admit(plane, tenant="train", mode="persistent")(workers_body)
    with pytest.raises(AdmitError, match=r"^workers_body: 1 persistent launches are already running; raise "
                                         r"PlaneOptions\.persistent_launches"):
        workers._run_persistent(8, 64, 0, (np.zeros(1, np.int64), 2000))
    assert log == []
