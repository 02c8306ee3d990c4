"""The stages of ``gbpfd check``, cheapest and most telling first.

The bounds are sized for one lent GPU call of about 9 minutes (480 s of
budget): the first three answer whether the toolchain and the host calls
beside a resident kernel work at all; ``plane`` whether the control CTA
serves; the rest fill in the figures.
"""
from __future__ import annotations

from gbpfd.check.stage import Stage

GPU_ONLY = ("cuda",)

STAGES = (
    Stage("env", "machine, packages, NVVM and the PTX ISA it emits against what the driver accepts", 60,
          "gbpfd.check.env_stage:run"),
    Stage("compile", "every device kernel compiled: registers, spills, stack frame, seconds", 300,
          "gbpfd.check.compile_stage:run"),
    Stage("resident", "host calls timed beside a self-ending resident kernel", 90,
          "gbpfd.check.resident:run", GPU_ONLY),
    Stage("plane", "start, one admission by token, one through cta_admit, stop", 150,
          "gbpfd.check.plane_stage:run"),
    Stage("gpu-tests", "pytest -m gpu, each test bounded", 240, "gbpfd.check.command_stages:gpu_tests", GPU_ONLY),
    Stage("calibrate", "the simulated device's constants measured on this GPU", 90,
          "gbpfd.check.calibrate:run", GPU_ONLY),
    Stage("bench", "gbpfd bench (quick on the simulated device)", 240, "gbpfd.check.command_stages:bench"),
    Stage("demo", "the demo, once", 120, "gbpfd.check.command_stages:demo"),
)
NAMES = tuple(s.name for s in STAGES)


def select(only: list[str] | None) -> list[Stage]:
    """The stages named in ``only`` (in the check's order), or all of them."""
    if not only:
        return list(STAGES)
    unknown = [n for n in only if n not in NAMES]
    if unknown:
        raise ValueError(f"--only: no stage {', '.join(map(repr, unknown))}; the stages are {', '.join(NAMES)}")
    return [s for s in STAGES if s.name in only]
