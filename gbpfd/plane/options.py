"""The plane's options, validated without touching a device."""
from __future__ import annotations

from dataclasses import dataclass, field

from gbpfd.plane.arrays import DEFER_BOUND_NS, TOPUP_POLL_NS, Periods
from gbpfd.sim.model import SimGPU, sim_gpu

BACKENDS = ("auto", "cuda", "sim")


def _positive(owner: str, name: str, value, *, integer: bool = False) -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        raise ValueError(f"{owner}.{name} must be a positive {'integer' if integer else 'number'}, got {value!r}")


@dataclass(frozen=True)
class PlaneOptions:
    """``wait_bound_us``: the longest a worker waits for the control CTA
    to answer its admission request, or for byte tokens, before it bypasses
    the plane (and the bypass is counted).  ``defer_bound_us``: the longest a
    gate-mode CTA keeps asking while the policy answers "defer" (it then
    runs, counted as bypassed; a persistent worker that is denied leaves its
    SM instead, and its launcher forces the rest through after this long
    without progress).  ``topup_poll_us``: how often a persistent launch's
    launcher looks for tokens its tenant holds but its workers on SMs leave
    unused (a raised allowance, a tenant gone) and launches that many more
    workers.  ``active_window_us``: a best-effort tenant counts towards the fair
    share while it asked for a CTA within this window.  ``sample_every``:
    write every n-th admission decision to the event ring (0: none).
    ``cta_slots``: the worker CTA slots the policies share (None: from the
    device, SMs other than the control CTA's times ``slots_per_sm``, on a
    GPU; the simulated device takes its shape from ``sim``).
    ``telemetry_period_s``: how often NVML is sampled into the snapshot for
    ``therm_tick`` on a GPU (None: never).  ``persistent_launches``: how
    many persistent-mode launches may run at once on a GPU (their device
    words are made before the plane starts)."""

    periods: Periods = field(default_factory=Periods)
    wait_bound_us: float = 2_000.0
    defer_bound_us: float = DEFER_BOUND_NS / 1000
    topup_poll_us: float = TOPUP_POLL_NS / 1000
    active_window_us: float = 1_000.0
    sample_every: int = 0
    baseline_form: str = "auto"
    cta_slots: int | None = None
    slots_per_sm: int = 2
    ack_timeout_s: float = 5.0
    heartbeat_timeout_ms: float = 50.0
    telemetry_period_s: float | None = 1.0
    persistent_launches: int = 64
    sim: SimGPU = field(default_factory=sim_gpu)

    def __post_init__(self):
        for name in ("wait_bound_us", "defer_bound_us", "topup_poll_us", "active_window_us", "ack_timeout_s",
                     "heartbeat_timeout_ms"):
            _positive("PlaneOptions", name, getattr(self, name))
        _positive("PlaneOptions", "slots_per_sm", self.slots_per_sm, integer=True)
        _positive("PlaneOptions", "persistent_launches", self.persistent_launches, integer=True)
        if self.telemetry_period_s is not None:
            _positive("PlaneOptions", "telemetry_period_s", self.telemetry_period_s)
        if self.cta_slots is not None:
            _positive("PlaneOptions", "cta_slots", self.cta_slots, integer=True)
        if isinstance(self.sample_every, bool) or not isinstance(self.sample_every, int) or self.sample_every < 0:
            raise ValueError(f"PlaneOptions.sample_every must be an integer >= 0, got {self.sample_every!r}")
        if self.baseline_form not in ("auto", "c", "asm"):
            raise ValueError(f"PlaneOptions.baseline_form must be 'auto', 'c' or 'asm', got {self.baseline_form!r}")
        if not isinstance(self.periods, Periods):
            raise ValueError(f"PlaneOptions.periods must be a Periods, got {self.periods!r}")
