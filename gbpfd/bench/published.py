"""Published figures of other GPU-sharing systems (other hardware, the same
kind of quantity), as listed in the design brief's section 5, and which of
our figures each one is set beside.  They are other papers' claims, kept
as data so ``docs/results.md`` can show them next to our latest GPU run."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    system: str
    quantity: str
    figure: str          # as the source states it
    ours: tuple | None   # (case, figure) of ours set beside it, None where none measures it
    why: str             # what makes the two comparable, and where they differ


PUBLISHED = (
    Published("XSched (level 3)", "preemption latency, p99", "32 us", ("reaction", "reaction_p99"),
              "time for a scheduling decision to reach running work; ours is the decision only, "
              "work yields at its next block boundary"),
    Published("Tally", "preemption target", "100 us", ("reaction", "reaction_p99"),
              "same as above"),
    Published("gpu_ext", "cross-process preemption", "about 312 us", ("reaction", "reaction_p99"),
              "same as above"),
    Published("LithOS", "scheduling atom", "250-500 us", None,
              "no figure of ours: our unit of preemptible work is the block length the kernel chooses"),
    Published("XSched", "admission/instrumentation overhead", "2.1%", ("overhead", "overhead_gate_pct"),
              "slowdown of a saturating kernel under the scheduler"),
    Published("FLEP", "overhead of the persistent-worker transformation", "2.5%",
              ("overhead", "overhead_persistent_pct"), "slowdown of a kernel run as persistent workers"),
    Published("Tally", "latency-critical p99 inflation", "+7.2%", ("isolation", "lc_p99_ratio_plane_drain"),
              "p99 beside a best-effort tenant over p99 alone, ours with SM draining (as a ratio: 1.072 would "
              "match)"),
    Published("bpftime (empty probe)", "overhead", "+19-21%", ("overhead", "overhead_gate_pct"),
              "cost of running an empty eBPF program on the GPU path"),
)
