"""The demo's workload on the simulated device."""
from __future__ import annotations

from functools import partial

import numpy as np

from gbpfd.demo.report import class_shares, percentiles_us
from gbpfd.plane.plane import Plane
from gbpfd.policies.catalog import baseline_programs

SWAPPED_HOOKS = ("tick", "cta_admit")
#: logical blocks per persistent launch: more than the demo can finish
BE_BLOCKS = 10_000_000


class SimDemoWorkload:
    """The demo's kernels and copies on the simulated device: persistent
    best-effort tenants that never run out of blocks, a latency-critical
    gate-mode kernel every ``lc_period_us`` for each of ``lc_tenants``, and
    for each of ``copy_tenants`` a paced copy that starts again as soon as it
    ends.  The demo names its tenants in ``cfg``; ``over_all_tenants``
    serves any quota file."""

    def __init__(self, plane: Plane, cfg, seconds: float, *, lc_tenants: tuple[int, ...] | None = None,
                 copy_tenants: tuple[int, ...] | None = None):
        self.plane, self.cfg = plane, cfg
        self.d = plane.device
        self.start = self.d.now
        self.end = self.start + int(seconds * 1e9)
        self.lc_runs, self.copies, self.swapped = [], [], []
        qs = plane.quotas
        self.lc_tenants = (qs.index(cfg.lc_tenant),) if lc_tenants is None else lc_tenants
        self.copy_tenants = (qs.index(cfg.copy_tenant),) if copy_tenants is None else copy_tenants
        for t in qs.tenants:
            if not t.latency_critical:
                self.d.launch(qs.index(t.name), blocks=BE_BLOCKS, block_ns=cfg.be_block_us * 1000, mode="persistent")
        for tenant in self.lc_tenants:
            self._launch_lc(tenant)
        for tenant in self.copy_tenants:
            self._copy_again(tenant)

    @classmethod
    def over_all_tenants(cls, plane: Plane, cfg, seconds: float) -> SimDemoWorkload:
        """The same kernels for whatever tenants the plane's quota file has:
        gate-mode kernels for each latency-critical one, a paced copy for
        each one with a DMA rate."""
        tenants = plane.quotas.tenants
        return cls(plane, cfg, seconds,
                   lc_tenants=tuple(i for i, t in enumerate(tenants) if t.latency_critical),
                   copy_tenants=tuple(i for i, t in enumerate(tenants) if t.dma_bytes_per_epoch > 0))

    def _launch_lc(self, tenant: int) -> None:
        d, cfg = self.d, self.cfg
        if d.now < self.end:
            self.lc_runs.append(d.launch(tenant, blocks=cfg.lc_ctas, block_ns=cfg.lc_cta_us * 1000, mode="gate"))
            d.at(d.now + cfg.lc_period_us * 1000, self._launch_lc, tenant)

    def _copy_again(self, tenant: int, _finished=None) -> None:
        # a chunk is granted whole from one epoch's byte tokens: a larger one would wait forever
        chunk = min(self.cfg.copy_chunk, self.plane.quotas.tenants[tenant].dma_bytes_per_epoch)
        if self.d.now < self.end:
            self.copies.append(self.d.copy(tenant, self.cfg.copy_bytes, chunk=chunk,
                                           on_done=partial(self._copy_again, tenant)))

    def run_until(self, fraction: float) -> None:
        self.d.run_until(self.start + int((self.end - self.start) * fraction))

    def swap(self, form: str) -> None:
        for hook, program in baseline_programs(form).items():
            if hook in SWAPPED_HOOKS:
                self.swapped.append(self.plane.load(program, hook))


def run_on_sim(plane: Plane, cfg, progress=None) -> dict:
    w = SimDemoWorkload(plane, cfg, cfg.seconds)
    steps = 20
    for i in range(1, steps + 1):
        w.run_until(i / steps)
        if i == steps // 2:
            w.swap(cfg.swap_to)
        if progress:
            progress(i / steps)
    return _report(plane, cfg, w.lc_runs, w.copies, w.swapped, w.start, w.end)


def _report(plane: Plane, cfg, lc_runs, copies, swapped, start, end) -> dict:
    d = plane.device
    counters = plane.counters()
    tenants = []
    for i, t in enumerate(plane.quotas.tenants):
        row = {"name": t.name, "class": t.klass, "weight": t.weight, "admitted": counters[t.name]["admitted"]}
        if t.latency_critical:
            row["p50_us"], row["p99_us"] = percentiles_us([r.latency_ns for r in lc_runs if r.done_ns])
            row["kernels"] = sum(1 for r in lc_runs if r.done_ns)
        tenants.append(row)
    class_shares(tenants)

    copy_tenant = plane.quotas.tenants[plane.quotas.index(cfg.copy_tenant)]
    moved = sum(c.moved for c in copies)
    elapsed = (min(d.now, end) - copies[0].started_ns) if copies else 0
    period_ns = plane.options.periods.dma_ns
    stats = plane.plane_stats()
    lost, doubled = swap_accounting(plane)
    p50, p99 = percentiles_us(d.stats.reaction_ns)
    return {
        "backend": plane.backend_name,
        "backend_reason": plane.backend_reason,
        "simulated": True,
        "device": plane._backend.describe(),
        "seconds": cfg.seconds,
        "tenants": tenants,
        "copy": {"tenant": cfg.copy_tenant, "bytes": moved,
                 "target_bytes_per_s": copy_tenant.dma_bytes_per_epoch * 1e9 / period_ns,
                 "achieved_bytes_per_s": moved * 1e9 / elapsed if elapsed else 0.0},
        "swap": {"lost": lost, "doubled": doubled, "at_s": round(cfg.seconds / 2, 6),
                 "program": ", ".join(f"{p.name} -> {p.hook}" for p in swapped)},
        "reaction": {"p50_us": p50, "p99_us": p99, "samples": len(d.stats.reaction_ns)},
        "plane": {"ticks": stats["ticks"], "loop_period_ns": stats["loop_period_ns"],
                  "bypassed": stats["bypassed"],
                  "faults": sum(c["faults"] for c in plane.counters().values())},
    }


def swap_accounting(plane: Plane) -> tuple[int, int]:
    """Admissions lost and doubled over the run (the swap included): the
    device's live admitted/bypassed counters against the blocks the workers
    started (both are counted as a block starts), requests neither answered
    nor still open, and logical blocks started twice."""
    from gbpfd.device import state as S
    d = plane.device
    flat, ctl = plane.arrays.flat, plane.arrays.ctl  # the simulated device's live state
    slots = ctl[S.SLOT_BASE:S.SLOT_BASE + S.NSLOTS * S.SLOT_STRIDE].reshape(S.NSLOTS, S.SLOT_STRIDE)
    lost = doubled = 0
    for t in range(len(plane.quotas.names)):
        row = S.COUNTERS_WORD + t * S.COUNTER_RECORD_WORDS
        device_side = int(flat[row + S.COUNTER.admitted] + flat[row + S.COUNTER.bypassed])
        worker_side = d.stats.granted.get(t, 0) + d.stats.bypassed.get(t, 0)
        lost += max(0, worker_side - device_side)
        doubled += max(0, device_side - worker_side)
    still_open = int(np.isin(slots[:, S.SLOT.state], (S.POSTED, S.SERVING, S.DECIDED)).sum())
    lost += max(0, d.stats.posted - d.stats.answered - still_open)
    doubled += sum(n - 1 for n in d.stats.blocks_started.values() if n > 1)
    return lost, doubled
