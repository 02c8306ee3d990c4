"""The plane on the simulated device (virtual time; every figure simulated)."""
from __future__ import annotations

from gbpfd.bridge.layout import HEADER
from gbpfd.plane.arrays import PlaneArrays, set_sms
from gbpfd.plane.options import PlaneOptions
from gbpfd.sim.device import SimDevice

#: virtual time a host-side wait may cover before it gives up
WAIT_LIMIT_NS = 50_000_000


class SimBackend:
    name = "sim"

    def __init__(self, arrays: PlaneArrays, options: PlaneOptions):
        self.device = SimDevice(arrays, options.sim, int(options.topup_poll_us * 1000))
        self.arrays = arrays
        self.sms = options.sim.num_sms
        set_sms(arrays, self.sms, "SimBackend")
        self.total_slots = options.cta_slots or (options.sim.num_sms - 1) * options.sim.slots_per_sm
        self.heartbeat_timeout_ns = int(options.heartbeat_timeout_ms * 1e6)

    def describe(self) -> str:
        gpu = self.device.gpu
        return f"{gpu.name}, {self.total_slots} worker CTA slots (simulated; calibration {gpu.calibration})"

    def start(self) -> None:
        self.arrays.host[HEADER.smid] = 0
        self.arrays.host[HEADER.ready] = 1
        self.device.start()

    def staged(self, hook: int, slot: int) -> None:
        """The program is already in the arrays the simulated device reads."""

    def notify_command(self) -> None:
        self.device.host_wrote()

    def wait(self, done, timeout_s: float) -> bool:
        """Advance virtual time until ``done()`` (``timeout_s`` is wall time
        on a GPU; here the bound is WAIT_LIMIT_NS of virtual time)."""
        return self.device.run_while(lambda: not done(), WAIT_LIMIT_NS)

    def device_now(self) -> int:
        return self.device.now

    def ctl_words(self):
        """The control words as the device holds them (here: the array it runs on)."""
        return self.arrays.ctl

    def heartbeat_age_ns(self) -> int:
        return self.device.now - int(self.arrays.host[HEADER.heartbeat_ns])

    def stalled(self, heartbeat_age_ns: int) -> bool:
        return heartbeat_age_ns > self.heartbeat_timeout_ns

    def close(self, stopped: bool) -> None:
        self.device.running = False
