"""What one program run returns, identical for both VMs and the device plane."""
from __future__ import annotations

from dataclasses import dataclass

# Helper return codes (negated errno values, as the kernel's helpers return them).
EPERM = 1    # map_update_elem on a read-only (quota / counters) map
E2BIG = 7    # map_update_elem index out of range
EINVAL = 22  # bad flags, tenant or counter index


@dataclass(frozen=True)
class Result:
    """``r0`` is unsigned 64-bit; ``pc`` is the faulting slot, or the exit slot."""

    status: int
    r0: int
    steps: int
    pc: int
