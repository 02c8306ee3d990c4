"""The simulated GPU's parameters, each from a calibration file with its
unit and source (gbpfd.sim.calibration): by default
``default_calibration.json`` beside this module, whose figures are published
ones or guesses and say which; with ``$GBPFD_CALIBRATION`` (or
``sim_gpu(path)``), a ``calibration.json`` measured on a GPU by ``gbpfd check``
replaces the defaults it has measurements for.  ``SimGPU.calibration``
names what it ran under, and so does every simulated output that shows the
device's name."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from gbpfd.sim.calibration import load_calibration

DEFAULT_CALIBRATION = Path(__file__).with_name("default_calibration.json")
CALIBRATION_ENV = "GBPFD_CALIBRATION"
#: SimGPU field -> (the calibrate stage's constant, factor): what a GPU
#: measurement replaces (the one-way visibility is half the round trip)
MEASURED = {
    "visibility_ns": ("cross_sm_round_trip_ns_p50", 0.5),
    "host_ns": ("mapped_host_to_device_ns_p50", 1.0),
    "launch_ns": ("launch_to_start_us_p50", 1000.0),
    "gate_step_ns": ("global_atomic_ns", 1.0),
}


@dataclass(frozen=True)
class SimGPU:
    """The model's constants (units in the field names; their sources in
    the calibration file they came from: build one with ``sim_gpu``)."""
    name: str
    calibration: str               # which calibration file, and what it measured
    num_sms: int
    slots_per_sm: int              # CTA slots per SM for the modelled kernels (1024-thread CTAs)
    loop_ns: int                   # one control-loop iteration that finds nothing to do
    insn_ns: int                   # one interpreted policy instruction on the control CTA
    gate_step_ns: int              # one worker gate step (an atomic in L2)
    visibility_ns: int             # a store on one SM seen by a poller on another
    host_ns: int                   # a host write to mapped memory seen by the device (PCIe)
    launch_ns: int                 # host launch to the first CTA of a kernel starting
    retry_ns: int                  # a deferred gate-mode CTA's back-off before it asks again
    copy_bytes_per_s: float        # device-side copy bandwidth

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("name", "calibration"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"SimGPU.{f.name} must be a positive number, got {value!r}")
        if self.num_sms < 2:
            raise ValueError(f"SimGPU.num_sms must be at least 2 (one is the control CTA's), got {self.num_sms}")

    @property
    def worker_slots(self) -> int:
        """CTA slots left to workers once the control CTA's SM is reserved."""
        return (self.num_sms - 1) * self.slots_per_sm


def _constants(doc: dict) -> dict:
    return {name: entry["value"] for name, entry in doc["constants"].items()}


def sim_gpu(path: str | os.PathLike | None = None) -> SimGPU:
    """The default calibration's SimGPU, with the measured constants of
    ``path`` (default: ``$GBPFD_CALIBRATION``, when set) in their places."""
    values = _constants(load_calibration(DEFAULT_CALIBRATION))
    path = path or os.environ.get(CALIBRATION_ENV)
    if not path:
        return SimGPU(**values, name=f"simulated GPU (H100-like: {values['num_sms']} SMs)",
                      calibration=f"default: published figures and guesses ({DEFAULT_CALIBRATION.name})")
    doc = load_calibration(path)
    measured = _constants(doc)
    replaced = {field: round(measured[name] * factor) for field, (name, factor) in MEASURED.items()
                if name in measured}
    values.update(replaced, num_sms=doc["gpu"]["sms"])
    return SimGPU(**values, name=f"simulated {doc['gpu']['name']} ({doc['gpu']['sms']} SMs)",
                  calibration=f"{Path(path).name}: measured on {doc['gpu']['name']} {doc['date']} "
                              f"({', '.join(sorted(replaced)) or 'no constant'} measured, the rest default)")

