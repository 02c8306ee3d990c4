"""GPU telemetry from NVML (``pynvml``) for the snapshot and ``therm_tick``.

Each value is read on its own: a query the GPU or driver does not support
clears only its bit in ``valid``.  Where NVML cannot be used at all (no
``pynvml``, no driver, no GPU) the sampler says why in ``reason`` and hands
out ``Telemetry()`` (nothing valid) instead of raising.
"""
from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Real

#: the value fields in ``valid`` bit order (the abi therm_tick ctx ``valid`` doc)
VALUE_FIELDS = ("temp_c", "power_mw", "sm_clock_mhz", "throttle_reasons")
TEMP_C, POWER_MW, SM_CLOCK_MHZ, THROTTLE_REASONS = (1 << bit for bit in range(len(VALUE_FIELDS)))


@dataclass(frozen=True)
class Telemetry:
    valid: int = 0             # bit i set: VALUE_FIELDS[i] holds a reading
    temp_c: int = 0            # GPU temperature, degrees C
    power_mw: int = 0          # board power, milliwatts
    sm_clock_mhz: int = 0      # SM clock, MHz
    throttle_reasons: int = 0  # NVML clocks-event reasons bit mask


class NvmlSampler:
    """Samples one GPU's telemetry, on demand (``sample``) or every
    ``period_s`` seconds on a daemon thread (``start``/``stop``)."""

    def __init__(self, device_index: int = 0, period_s: float = 0.1):
        if isinstance(device_index, bool) or not isinstance(device_index, int) or device_index < 0:
            raise ValueError(f"NvmlSampler: device_index must be an integer >= 0, got {device_index!r}")
        if isinstance(period_s, bool) or not isinstance(period_s, Real) or not period_s > 0:
            raise ValueError(f"NvmlSampler: period_s must be a number of seconds > 0, got {period_s!r}")
        self.device_index = device_index
        self.period_s = float(period_s)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # a fresh one per start: an old thread never sees a new clear
        self._nvml, self._handle, self.reason = self._open(device_index)

    @property
    def available(self) -> bool:
        return self._handle is not None

    @staticmethod
    def _open(device_index: int):
        """(pynvml module, device handle, "") or (None, None, why not)."""
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError as err:
            return None, None, f"pynvml is not installed (pip install nvidia-ml-py): {err}"
        try:
            nvml.nvmlInit()
        except Exception as err:  # pynvml.NVMLError and whatever a broken driver raises
            return None, None, f"nvmlInit failed: {err}"
        try:
            return nvml, nvml.nvmlDeviceGetHandleByIndex(device_index), ""
        except Exception as err:
            return None, None, f"NVML has no GPU {device_index}: {err}"

    def sample(self) -> Telemetry:
        if not self.available:
            return Telemetry()
        nvml, handle = self._nvml, self._handle
        readers = (lambda: nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
                   lambda: nvml.nvmlDeviceGetPowerUsage(handle),
                   lambda: nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM),
                   lambda: _clocks_event_reasons(nvml, handle))
        valid, values = 0, {}
        for bit, (name, read) in enumerate(zip(VALUE_FIELDS, readers)):
            try:
                values[name] = int(read())
            except Exception:  # NVMLError_NotSupported and kin: this value only is missing
                continue
            valid |= 1 << bit
        return Telemetry(valid, **values)

    def start(self, callback: Callable[[Telemetry], object]) -> None:
        """Call ``callback(sample())`` now and then every ``period_s`` until ``stop``."""
        if self._thread is not None:
            raise RuntimeError("NvmlSampler.start: the sampler is already running; stop it first")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(callback, self._stop),
                                        name="gbpfd-nvml-sampler", daemon=True)
        self._thread.start()

    def _run(self, callback: Callable[[Telemetry], object], stop: threading.Event) -> None:
        while True:
            callback(self.sample())
            if stop.wait(self.period_s):
                return

    def stop(self) -> None:
        """Stop the sampling thread and wait for it; a no-op when not running."""
        if self._thread is None:
            return
        self._stop.set()
        if self._thread is not threading.current_thread():  # stop() from the callback: it exits on return
            self._thread.join()
        self._thread = None


def _clocks_event_reasons(nvml, handle) -> int:
    read = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) \
        or nvml.nvmlDeviceGetCurrentClocksThrottleReasons  # its name before NVML 12.2
    return read(handle)
