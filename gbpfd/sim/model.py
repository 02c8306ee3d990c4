"""The simulated GPU's parameters, each from a calibration file with its
unit and source (gbpfd.sim.calibration): by default
``default_calibration.json`` beside this module, whose figures are published
ones or guesses and say which; with ``$GBPFD_CALIBRATION`` (or
``sim_gpu(path)``), a ``calibration.json`` measured on a GPU by ``gbpfd check``
replaces the defaults it has measurements for.  ``SimGPU.calibration``
names what it ran under, and so does every simulated output that shows the
device's name."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path

from gbpfd.sim.calibration import load_calibration
from gbpfd.sim.sm import PLACEMENTS, CtaShape, SmLimits

DEFAULT_CALIBRATION = Path(__file__).with_name("default_calibration.json")
CALIBRATION_ENV = "GBPFD_CALIBRATION"
FULLEST = 3   # the calibrate stage's most co-resident CTAs beside one (its CO_RESIDENTS[-1])
#: SimGPU field -> (the calibrate stage's constants, how the field follows
#: from them): what a GPU measurement replaces.  The one-way visibility is
#: half the round trip; an exponential tail of mean m has its p99 m * ln(50)
#: above its p50; the droop is what the SM clock loses with every SM busy;
#: a CTA beside k others of the same body takes max(1, (k + 1) * issue)
#: times as long as alone, so the fullest measured SM gives the issue.
MEASURED = {
    "visibility_ns": (("cross_sm_round_trip_ns_p50",), lambda rtt: round(rtt / 2)),
    "host_ns": (("mapped_host_to_device_ns_p50",), round),
    "launch_ns": (("launch_to_start_us_p50",), lambda us: round(us * 1000)),
    "launch_jitter_ns": (("launch_to_start_us_p50", "launch_to_start_us_p99"),
                         lambda p50, p99: round(max(0.0, p99 - p50) * 1000 / math.log(50))),
    "gate_step_ns": (("global_atomic_ns",), round),
    "globaltimer_step_ns": (("globaltimer_resolution_ns",), round),
    "clock_droop": (("sm_clock_idle_mhz", "sm_clock_load_mhz"), lambda idle, load: round(max(0.0, 1 - load / idle), 4)),
    "hbm_bytes_per_s": (("hbm_read_bytes_per_s",), float),
    "compute_issue": ((f"compute_slowdown_{FULLEST}",), lambda slowdown: round(min(1.0, slowdown / (FULLEST + 1)), 3)),
}
#: fields that may be zero (everything else is a positive number)
MAY_BE_ZERO = ("kernel_shared_bytes", "launch_jitter_ns", "clock_droop")


@dataclass(frozen=True)
class SimGPU:
    """The model's constants (units in the field names; their sources in
    the calibration file they came from: build one with ``sim_gpu``)."""
    name: str
    calibration: str               # which calibration file, and what it measured
    num_sms: int
    sm_max_threads: int            # one SM's limits (compute capability 9.0) ...
    sm_max_ctas: int
    sm_registers: int
    sm_shared_bytes: int
    cta_max_threads: int           # ... and one CTA's
    cta_max_shared_bytes: int
    thread_max_registers: int
    kernel_threads: int            # the modelled kernels' CTA, unless a launch says otherwise
    kernel_registers: int          # per thread
    kernel_shared_bytes: int
    hbm_bytes_per_s: float         # the bandwidth memory-moving blocks share
    compute_issue: float           # the issue utilisation of a compute-bound CTA (the benches' bodies) ...
    memory_issue: float            # ... and of a memory-bound one
    clock_droop: float             # the fraction of the SM clock lost with every SM busy
    globaltimer_step_ns: int       # %globaltimer advances in steps of this
    loop_ns: int                   # one control-loop iteration that finds nothing to do
    insn_ns: int                   # one interpreted policy instruction on the control CTA
    gate_step_ns: int              # one worker gate step (an atomic in L2)
    visibility_ns: int             # a store on one SM seen by a poller on another
    host_ns: int                   # a host write to mapped memory seen by the device (PCIe)
    launch_ns: int                 # host launch to the first CTA of a kernel starting (the median)
    launch_jitter_ns: int          # mean of the exponential tail of that time (0: always launch_ns)
    retry_ns: int                  # a deferred gate-mode CTA's back-off before it asks again
    copy_bytes_per_s: float        # device-side copy bandwidth
    placement: str = "most_free"   # the SM a new CTA goes to: one of gbpfd.sim.sm.PLACEMENTS

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("name", "calibration", "placement"):
                continue
            least = "a number >= 0" if f.name in MAY_BE_ZERO else "a positive number"
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
                    or (value == 0 and f.name not in MAY_BE_ZERO)):
                raise ValueError(f"SimGPU.{f.name} must be {least}, got {value!r}")
        if self.num_sms < 2:
            raise ValueError(f"SimGPU.num_sms must be at least 2 (one is the control CTA's), got {self.num_sms}")
        if self.clock_droop >= 1:
            raise ValueError(f"SimGPU.clock_droop must be below 1, got {self.clock_droop!r}")
        for name in ("compute_issue", "memory_issue"):
            if getattr(self, name) > 1:
                raise ValueError(f"SimGPU.{name} must be at most 1 (an SM's whole issue rate), "
                                 f"got {getattr(self, name)!r}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"SimGPU.placement must be one of {', '.join(PLACEMENTS)}, got {self.placement!r}")
        refusal = self.sm_limits.refusal(self.kernel_shape)
        if refusal:
            raise ValueError(f"SimGPU: the default kernel's CTA cannot run on an SM: {refusal}")

    @property
    def sm_limits(self) -> SmLimits:
        return SmLimits(self.sm_max_threads, self.sm_registers, self.sm_shared_bytes, self.sm_max_ctas,
                        self.cta_max_threads, self.cta_max_shared_bytes, self.thread_max_registers)

    @property
    def kernel_shape(self) -> CtaShape:
        """The CTA of a launch that does not say its own."""
        return CtaShape(self.kernel_threads, self.kernel_registers, self.kernel_shared_bytes)

    @property
    def slots_per_sm(self) -> int:
        """CTAs of the default kernel one SM holds (its occupancy)."""
        return self.sm_limits.per_sm(self.kernel_shape)

    @property
    def worker_slots(self) -> int:
        """Default-kernel CTA slots left to workers once the control CTA's SM is reserved."""
        return (self.num_sms - 1) * self.slots_per_sm


def _constants(doc: dict) -> dict:
    return {name: entry["value"] for name, entry in doc["constants"].items()}


def _rules(doc: dict) -> dict:
    return {name: entry["value"] for name, entry in doc.get("rules", {}).items()}


def sim_gpu(path: str | os.PathLike | None = None) -> SimGPU:
    """The default calibration's SimGPU, with the measured constants of
    ``path`` (default: ``$GBPFD_CALIBRATION``, when set) in their places."""
    default = load_calibration(DEFAULT_CALIBRATION)
    values = {**_constants(default), **_rules(default)}
    path = path or os.environ.get(CALIBRATION_ENV)
    if not path:
        return SimGPU(**values, name=f"simulated GPU (H100-like: {values['num_sms']} SMs)",
                      calibration=f"default: published figures and guesses ({DEFAULT_CALIBRATION.name})")
    doc = load_calibration(path)
    measured = _constants(doc)
    replaced = {field: derive(*(measured[name] for name in names)) for field, (names, derive) in MEASURED.items()
                if all(name in measured for name in names)}
    values.update(replaced, **_rules(doc), num_sms=doc["gpu"]["sms"])
    return SimGPU(**values, name=f"simulated {doc['gpu']['name']} ({doc['gpu']['sms']} SMs)",
                  calibration=f"{Path(path).name}: measured on {doc['gpu']['name']} {doc['date']} "
                              f"({', '.join(sorted(replaced)) or 'no constant'} measured, the rest default)")

