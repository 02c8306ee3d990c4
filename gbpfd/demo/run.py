"""Run the demo on the plane's backend."""
from __future__ import annotations

from dataclasses import dataclass

from gbpfd.plane.options import PlaneOptions
from gbpfd.plane.plane import Plane
from gbpfd.resources import shared_file


@dataclass(frozen=True)
class DemoConfig:
    """The demo workload.  Durations are device time."""
    seconds: float = 1.0
    backend: str = "auto"
    lc_tenant: str = "infer"
    lc_ctas: int = 16              # one latency-critical kernel's CTAs
    lc_cta_us: int = 500
    lc_period_us: int = 5_000      # a latency-critical kernel is launched this often
    be_block_us: int = 2_000       # a best-effort logical block
    copy_tenant: str = "batch"
    copy_bytes: int = 64 << 20
    copy_chunk: int = 256 << 10
    swap_to: str = "asm"           # the baseline's other form goes in live half-way

    def __post_init__(self):
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float)) or not 0 < self.seconds <= 3600:
            raise ValueError(f"DemoConfig.seconds must be in (0, 3600], got {self.seconds!r}")


def demo_quotas_path():
    return shared_file("quotas", "demo.toml")


def run_demo(config: DemoConfig = DemoConfig(), *, options: PlaneOptions | None = None, progress=None) -> dict:
    if options is None and config.backend != "sim":
        options = PlaneOptions(sample_every=16)  # on a GPU, reaction time comes from sampled decisions
    plane = Plane(config.backend, quotas=demo_quotas_path(), options=options)
    if plane.simulated:
        from gbpfd.demo.sim_workload import run_on_sim
        with plane:
            return run_on_sim(plane, config, progress)
    from gbpfd.demo.gpu_workload import GpuKernels, run_on_gpu
    kernels = GpuKernels(plane, config)  # loaded before the control kernel is resident
    with plane:
        return run_on_gpu(plane, config, kernels, progress)
