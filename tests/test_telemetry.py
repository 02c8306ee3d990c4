"""NVML telemetry through a fake ``pynvml`` module: every value on its own,
and no exception where NVML cannot be used."""
from __future__ import annotations

import re
import sys
import threading
import types

import pytest

from gbpfd.bridge.layout import SNAPSHOT
from gbpfd.isa.abi import HOOKS
from gbpfd.telemetry import POWER_MW, SM_CLOCK_MHZ, TEMP_C, THROTTLE_REASONS, VALUE_FIELDS, NvmlSampler, Telemetry

READINGS = {"temp_c": 67, "power_mw": 245_000, "sm_clock_mhz": 1980, "throttle_reasons": 0x4}


class FakeNVMLError(Exception):
    pass


def fake_pynvml(*, failing=(), init_error=None, handle_error=None,
                reasons_name="nvmlDeviceGetCurrentClocksEventReasons"):
    """A pynvml stand-in for GPU 0 whose calls named in ``failing`` raise."""
    nvml = types.ModuleType("pynvml")
    nvml.NVML_TEMPERATURE_GPU, nvml.NVML_CLOCK_SM = 0, 1
    nvml.NVMLError = FakeNVMLError

    def reading(field, handle, *args):
        assert handle == "gpu0"
        if field in failing:
            raise FakeNVMLError("Not Supported")
        return READINGS[field]

    def init():
        if init_error:
            raise FakeNVMLError(init_error)

    def handle_by_index(index):
        if handle_error:
            raise FakeNVMLError(handle_error)
        return f"gpu{index}"

    nvml.nvmlInit = init
    nvml.nvmlDeviceGetHandleByIndex = handle_by_index
    nvml.nvmlDeviceGetTemperature = lambda h, sensor: reading("temp_c", h) if sensor == 0 else None
    nvml.nvmlDeviceGetPowerUsage = lambda h: reading("power_mw", h)
    nvml.nvmlDeviceGetClockInfo = lambda h, clock: reading("sm_clock_mhz", h) if clock == 1 else None
    setattr(nvml, reasons_name, lambda h: reading("throttle_reasons", h))
    return nvml


@pytest.fixture
def install(monkeypatch):
    def put(module):
        monkeypatch.setitem(sys.modules, "pynvml", module)
    return put


def test_bits_follow_the_abi_therm_tick_valid_doc():
    ctx = {f.name: f for f in HOOKS["therm_tick"].ctx}
    assert re.findall(r"(\d+) (\w+)", ctx["valid"].doc.split("bit", 1)[1]) == \
        [(str(bit), name) for bit, name in enumerate(VALUE_FIELDS)]
    assert all(name in ctx for name in VALUE_FIELDS)
    assert (TEMP_C, POWER_MW, SM_CLOCK_MHZ, THROTTLE_REASONS) == (1, 2, 4, 8)


def test_every_value_has_a_snapshot_word():
    assert all(hasattr(SNAPSHOT, name) for name in (*VALUE_FIELDS, "tel_valid"))


def test_all_values(install):
    install(fake_pynvml())
    sampler = NvmlSampler()
    assert (sampler.available, sampler.reason) == (True, "")
    assert sampler.sample() == Telemetry(valid=0b1111, **READINGS)


def test_the_older_throttle_reasons_name(install):
    install(fake_pynvml(reasons_name="nvmlDeviceGetCurrentClocksThrottleReasons"))
    assert NvmlSampler().sample() == Telemetry(valid=0b1111, **READINGS)


@pytest.mark.parametrize("bit, field", list(enumerate(VALUE_FIELDS)))
def test_one_failing_call_clears_only_its_bit(install, bit, field):
    install(fake_pynvml(failing={field}))
    assert NvmlSampler().sample() == Telemetry(valid=0b1111 & ~(1 << bit), **{**READINGS, field: 0})


def test_every_call_failing(install):
    install(fake_pynvml(failing=set(VALUE_FIELDS)))
    assert NvmlSampler().sample() == Telemetry()


def test_nvml_init_failing(install):
    install(fake_pynvml(init_error="Driver Not Loaded"))
    sampler = NvmlSampler()
    assert (sampler.available, sampler.reason) == (False, "nvmlInit failed: Driver Not Loaded")
    assert sampler.sample() == Telemetry()


def test_no_such_gpu(install):
    install(fake_pynvml(handle_error="Invalid Argument"))
    sampler = NvmlSampler(device_index=3)
    assert (sampler.available, sampler.reason) == (False, "NVML has no GPU 3: Invalid Argument")
    assert sampler.sample() == Telemetry()


def test_pynvml_missing(install):
    install(None)  # what sys.modules holds for a module that must not import
    sampler = NvmlSampler()
    assert not sampler.available
    assert sampler.reason == ("pynvml is not installed (pip install nvidia-ml-py): "
                              "import of pynvml halted; None in sys.modules")
    assert sampler.sample() == Telemetry()


@pytest.mark.parametrize("period_s", [0, -0.5, float("nan"), True, "0.1", None])
def test_period_must_be_positive(period_s):
    with pytest.raises(ValueError) as caught:
        NvmlSampler(period_s=period_s)
    assert str(caught.value) == f"NvmlSampler: period_s must be a number of seconds > 0, got {period_s!r}"


@pytest.mark.parametrize("device_index", [-1, 1.0, True])
def test_device_index_must_be_a_gpu_number(device_index):
    with pytest.raises(ValueError) as caught:
        NvmlSampler(device_index=device_index)
    assert str(caught.value) == f"NvmlSampler: device_index must be an integer >= 0, got {device_index!r}"


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gbpfd-nvml-sampler"]


def test_start_calls_back_until_stop(install):
    install(fake_pynvml())
    sampler = NvmlSampler(period_s=0.001)
    samples, three = [], threading.Event()

    def collect(telemetry):
        samples.append(telemetry)
        if len(samples) >= 3:
            three.set()

    sampler.start(collect)
    assert sampler_threads()[0].daemon
    with pytest.raises(RuntimeError, match=r"^NvmlSampler.start: the sampler is already running; stop it first$"):
        sampler.start(collect)
    assert three.wait(timeout=10)
    sampler.stop()
    assert sampler_threads() == []
    assert set(samples) == {Telemetry(valid=0b1111, **READINGS)}
    sampler.stop()  # stopping a stopped sampler does nothing


def test_stop_from_the_callback(install):
    install(fake_pynvml())
    sampler = NvmlSampler(period_s=0.001)
    done = threading.Event()

    def stop_at_once(telemetry):
        sampler.stop()
        done.set()

    sampler.start(stop_at_once)
    assert done.wait(timeout=10)
    for thread in sampler_threads():
        thread.join(timeout=10)
    assert sampler_threads() == []


def test_without_nvml_the_thread_delivers_empty_telemetry(install):
    install(None)
    sampler = NvmlSampler(period_s=0.001)
    got = []
    first = threading.Event()
    sampler.start(lambda t: (got.append(t), first.set()))
    assert first.wait(timeout=10)
    sampler.stop()
    assert got[0] == Telemetry()
