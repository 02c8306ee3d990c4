"""The simulated GPU's parameters.  The latencies are modelled, not
measured: they are chosen near published H100 figures (an L2 round trip
of a few hundred ns, a kernel launch of a few us) so that the simulated
plane behaves like the real one in shape, not in exact numbers."""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class SimGPU:
    name: str = "simulated GPU (H100-like: 132 SMs)"
    num_sms: int = 132
    slots_per_sm: int = 2          # CTA slots per SM for the modelled kernels (1024-thread CTAs)
    loop_ns: int = 250             # one control-loop iteration that finds nothing to do
    insn_ns: int = 6               # one interpreted policy instruction on the control CTA
    gate_step_ns: int = 40         # one worker gate step (an atomic in L2)
    visibility_ns: int = 300       # a store on one SM seen by a poller on another (L2 round trip)
    host_ns: int = 1_500           # a host write to mapped memory seen by the device (PCIe)
    launch_ns: int = 5_000         # host launch to the first CTA of a kernel starting
    retry_ns: int = 2_000          # a deferred gate-mode CTA's back-off before it asks again
    copy_bytes_per_s: float = 1.6e12  # device-side copy bandwidth, bytes/s

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "name":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"SimGPU.{f.name} must be a positive number, got {value!r}")
        if self.num_sms < 2:
            raise ValueError(f"SimGPU.num_sms must be at least 2 (one is the control CTA's), got {self.num_sms}")

    @property
    def worker_slots(self) -> int:
        """CTA slots left to workers once the control CTA's SM is reserved."""
        return (self.num_sms - 1) * self.slots_per_sm
