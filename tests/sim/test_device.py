"""The simulated device (gbpfd.sim.device) running the real device code
behind a Plane: fair shares, a live swap under load, logical blocks run
once, a stalled control CTA, and paced copies.  Every figure is simulated
device time; nothing here measures wall time."""
from __future__ import annotations

import pytest

from gbpfd.bridge.layout import HEADER, REGION
from gbpfd.demo.sim_workload import swap_accounting
from gbpfd.device import state as S
from gbpfd.device.gates import counter_word, tenant_word
from gbpfd.plane.arrays import allocate
from gbpfd.plane.options import PlaneOptions
from gbpfd.plane.plane import Plane
from gbpfd.policies.catalog import baseline_programs
from gbpfd.sim.device import SimDevice
from gbpfd.sim.model import sim_gpu

MS = 1_000_000
WEIGHTED = {"tenants": {"heavy": {"class": "best-effort", "weight": 3, "max_ctas": 4096},
                        "light": {"class": "best-effort", "weight": 1, "max_ctas": 4096}}}
NEVER_ENDING = 10_000_000  # logical blocks: more than any test runs


def within(value: float, target: float, fraction: float = 0.10) -> bool:
    return abs(value - target) <= fraction * target


def run_until_done(device, runs, limit_ns: int) -> None:
    assert device.run_while(lambda: any(r.done_ns is None for r in runs), limit_ns), \
        [(r.blocks_done, r.blocks) for r in runs]


def settle(plane) -> None:
    """Two tick periods with nothing running: the counters are mirrored and no request is in flight."""
    d = plane.device
    d.run_until(d.now + 2 * plane.options.periods.tick_ns + 1)


# -------------------------------------------------------------- fair shares

def weighted_admissions(workers: int | None) -> tuple[int, int, dict]:
    """Admissions of heavy and light, each running a never-ending persistent
    kernel of ``workers`` worker CTAs (None: one per CTA slot), over 0.1 s."""
    with Plane(backend="sim", quotas=WEIGHTED) as plane:
        d = plane.device
        for t in (0, 1):
            d.launch(t, blocks=NEVER_ENDING, block_ns=2 * MS, mode="persistent", workers=workers)
        d.run_until(d.now + 100 * MS)
        counters = plane.counters()
    return counters["heavy"]["admitted"], counters["light"]["admitted"], counters


def test_weighted_best_effort_tenants_share_by_weight():
    # 200 workers each: both kernels have CTAs resident from the start, so both ask
    heavy, light, counters = weighted_admissions(200)
    assert heavy + light > 1000
    assert within(heavy / (heavy + light), 0.75), (heavy, light)
    assert within(light / (heavy + light), 0.25), (heavy, light)
    assert counters["heavy"]["bypassed"] == counters["light"]["bypassed"] == 0


def test_a_kernel_queued_behind_a_full_gpu_still_gets_its_share():
    heavy, light, _ = weighted_admissions(None)
    assert within(light / (heavy + light), 0.25), (heavy, light)


def test_a_lone_best_effort_tenant_gets_the_whole_pool():
    with Plane(backend="sim", quotas=WEIGHTED) as plane:
        d = plane.device
        d.launch(1, blocks=NEVER_ENDING, block_ns=2 * MS, mode="persistent")
        d.run_until(d.now + 5 * MS)
        assert d.a.ctl[tenant_word(1, S.TENANT.running)] == plane.total_slots
        assert d.a.ctl[S.PLANE.be_weight_sum] == 1


# ------------------------------------------------------------ live swap

def test_a_live_swap_under_load_loses_and_doubles_nothing():
    with Plane(backend="sim") as plane:
        d, q = plane.device, plane.quotas
        # every kernel is launched up front: see test_block_accounting_survives_finished_kernels
        runs = [d.launch(q.index("train"), blocks=6000, block_ns=MS, mode="persistent"),
                d.launch(q.index("batch"), blocks=2000, block_ns=MS, mode="persistent"),
                d.launch(q.index("infer"), blocks=400, block_ns=MS // 2, mode="gate")]
        d.run_until(d.now + 15 * MS)
        before = {name: c["admitted"] for name, c in plane.counters().items()}
        assert all(r.done_ns is None for r in runs[:2])
        loaded = [plane.load(program, hook) for hook, program in baseline_programs("asm").items()
                  if hook in ("tick", "cta_admit")]
        swapped = [e for e in plane.events() if e.kind == "swapped"]
        assert [e.program for e in swapped] == [p.id for p in loaded]
        for p in loaded:
            assert d.a.ctl[S.ACTIVE + S.HOOK_NAMES.index(p.hook)] == p.slot
        run_until_done(d, runs, 500 * MS)
        settle(plane)
        after = {name: c["admitted"] for name, c in plane.counters().items()}
        assert swap_accounting(plane) == (0, 0)
    assert after["train"] > before["train"] and after["batch"] > before["batch"]
    assert sum(d.stats.blocks_started.values()) == len(d.stats.blocks_started) == 6000 + 2000 + 400
    assert d.stats.posted == d.stats.answered


# -------------------------------------------------------- logical blocks

@pytest.mark.parametrize("mode,workers", [("persistent", None), ("persistent", 64), ("gate", None)])
def test_every_logical_block_runs_exactly_once(mode, workers):
    capped = {"tenants": {"capped": {"class": "best-effort", "weight": 1, "max_ctas": 32}}}
    with Plane(backend="sim", quotas=capped) as plane:
        d = plane.device
        run = d.launch(0, blocks=300, block_ns=50_000, mode=mode, workers=workers)
        run_until_done(d, [run], 100 * MS)
        assert run.blocks_done == 300
        assert sorted(block for _, block in d.stats.blocks_started) == list(range(300))
        assert set(d.stats.blocks_started.values()) == {1}
        assert d.a.ctl[tenant_word(0, S.TENANT.running)] == 0
        assert d.a.ctl[S.PLANE.total_running] == 0
        if workers:
            assert d.stats.denied_exits > 0  # workers beyond the cap were turned away, blocks not lost


def test_block_accounting_survives_finished_kernels():
    with Plane(backend="sim") as plane:
        d = plane.device
        runs = []
        for _ in range(40):
            run = d.launch(0, blocks=1, block_ns=10_000, mode="gate")
            run_until_done(d, [run], 10 * MS)
            runs.append(run)
        assert sum(r.blocks_done for r in runs) == 40
        assert len(d.stats.blocks_started) == 40
        assert swap_accounting(plane)[1] == 0


def test_swap_accounting_between_ticks():
    with Plane(backend="sim") as plane:
        d = plane.device
        d.launch(plane.quotas.index("train"), blocks=1000, block_ns=MS, mode="persistent")
        d.run_while(lambda: not d.stats.granted, 10 * MS)
        assert swap_accounting(plane) == (0, 0)


# ----------------------------------------- ungated launches and priorities

def bare_device() -> SimDevice:
    """A simulated GPU with no plane started on it: every SM's slots are free."""
    return SimDevice(allocate(), sim_gpu())


def test_an_ungated_kernel_fills_every_sm_of_a_gpu_without_a_plane():
    d = bare_device()
    slots = d.gpu.num_sms * d.gpu.slots_per_sm
    run = d.launch(0, blocks=slots, block_ns=MS, mode="none")
    run_until_done(d, [run], 10 * MS)
    assert run.latency_ns == d.gpu.launch_ns + MS  # one wave


def test_an_ungated_kernel_beside_the_plane_leaves_it_alone():
    with Plane(backend="sim") as plane:
        d = plane.device
        slots = d.gpu.num_sms * d.gpu.slots_per_sm
        run = d.launch(0, blocks=slots, block_ns=MS, mode="none")
        run_until_done(d, [run], 10 * MS)
        settle(plane)
        # the control CTA's SM is taken: the last slots_per_sm CTAs wait for a second wave
        assert run.latency_ns == d.gpu.launch_ns + 2 * MS
        assert run.blocks_done == slots
        counters = plane.counters()[plane.quotas.names[0]]
        assert counters["admitted"] == counters["bypassed"] == 0
        assert d.a.ctl[tenant_word(0, S.TENANT.running)] == 0
        assert d.a.host[REGION.demand + 0] == 0
        assert d.stats.posted == 0


@pytest.mark.parametrize("priority", [-1, 0])
def test_a_higher_priority_launch_takes_the_next_free_slots(priority):
    d = bare_device()
    slots = d.gpu.num_sms * d.gpu.slots_per_sm
    busy = d.launch(0, blocks=3 * slots, block_ns=MS, mode="none")  # three waves
    d.run_until(MS // 2)
    urgent = d.launch(1, blocks=4, block_ns=MS // 10, mode="none", priority=priority)
    run_until_done(d, [busy, urgent], 20 * MS)
    # running CTAs are never preempted: the earliest the urgent CTAs start is when the first wave ends
    waves_ahead = 1 if priority < 0 else 3
    assert urgent.done_ns == d.gpu.launch_ns + waves_ahead * MS + MS // 10
    assert busy.blocks_done == 3 * slots


@pytest.mark.parametrize("bad, message", [({"mode": "eager"}, "mode must be one of gate, persistent, none"),
                                          ({"priority": 1.5}, "priority must be an int")])
def test_a_bad_launch_is_refused_with_its_reason(bad, message):
    d = bare_device()
    with pytest.raises(ValueError, match=message):
        d.launch(0, blocks=1, block_ns=MS, **{"mode": "gate", **bad})
    assert not d._dispatch_queue and not d._events


# ------------------------------------------------------------------ stall

CAPPED = {"tenants": {"capped": {"class": "best-effort", "weight": 1, "max_ctas": 50}}}


def stalled_plane() -> Plane:
    """A plane whose workers wait at most 0.1 ms, watched with a 1 ms heartbeat timeout."""
    opts = PlaneOptions(wait_bound_us=100, heartbeat_timeout_ms=1)
    return Plane(backend="sim", quotas=CAPPED, options=opts)


def test_a_stalled_control_cta_makes_waiting_workers_bypass():
    plane = stalled_plane().start()
    d = plane.device
    d.run_until(d.now + 100_000)
    assert not plane.health().stalled
    d.stalled = True
    beat = int(plane.arrays.host[HEADER.heartbeat_ns])
    run = d.launch(0, blocks=600, block_ns=200_000, mode="gate")
    run_until_done(d, [run], 50 * MS)
    assert run.blocks_done == 600
    bypassed = int(d.a.ctl[S.PLANE.bypassed])
    assert bypassed > 0
    assert d.stats.bypassed.get(0, 0) == bypassed
    assert int(d.a.flat[counter_word(0, S.COUNTER.bypassed)]) == bypassed
    assert d.stats.granted.get(0, 0) + bypassed == 600
    d.run_until(beat + 2 * MS)
    h = plane.health()
    assert h.heartbeat_age_ns == 2 * MS
    assert h.stalled
    reason = plane.stop()
    assert "stalled" in reason
    assert not plane.health().stalled  # stopped: nothing to watch


def test_health_reports_a_stall_only_once_the_heartbeat_is_old():
    plane = stalled_plane().start()
    d = plane.device
    d.run_until(d.now + 100_000)
    d.stalled = True
    d.run_until(d.now + 200_000)  # 0.2 ms: within the 1 ms heartbeat timeout
    h = plane.health()
    try:
        assert h.heartbeat_age_ns < 1 * MS
        assert not h.stalled
    finally:
        plane.stop()


def test_stop_returns_for_a_healthy_plane_with_the_stop_command():
    plane = stalled_plane().start()
    assert plane.stop() == "stop command"
    assert plane.arrays.host[HEADER.exit_reason] == 1


# ------------------------------------------------------------- paced copy

def test_paced_copy_runs_at_the_quota_rate():
    with Plane(backend="sim") as plane:
        d, q = plane.device, plane.quotas
        batch = q.index("batch")
        target = q.tenants[batch].dma_bytes_per_epoch * 1e9 / plane.options.periods.dma_ns
        nbytes = 256 << 20
        run = d.copy(batch, nbytes, chunk=256 << 10)
        run_until_done(d, [run], 200 * MS)
        assert run.moved == nbytes and run.bypassed_chunks == 0
        rate = nbytes * 1e9 / (run.done_ns - run.started_ns)
        assert within(rate, target), (rate, target)
        assert int(d.a.flat[counter_word(batch, S.COUNTER.dma_bytes)]) == nbytes
        assert d.a.ctl[tenant_word(batch, S.TENANT.dma_pending)] == 0


def test_a_copy_without_a_byte_quota_bypasses_after_the_wait_bound():
    with Plane(backend="sim", options=PlaneOptions(wait_bound_us=50)) as plane:
        d = plane.device
        train = plane.quotas.index("train")  # no dma_bytes_per_epoch
        run = d.copy(train, 4 << 20, chunk=1 << 20)
        run_until_done(d, [run], 50 * MS)
        assert run.moved == 4 << 20
        assert run.bypassed_chunks == 4
        assert int(d.a.flat[counter_word(train, S.COUNTER.bypassed)]) == 4
        assert d.a.ctl[tenant_word(train, S.TENANT.running)] == 0


def test_a_finished_copy_leaves_nothing_pending():
    with Plane(backend="sim", options=PlaneOptions(wait_bound_us=50)) as plane:
        d = plane.device
        train = plane.quotas.index("train")
        run = d.copy(train, 4 << 20, chunk=1 << 20)
        run_until_done(d, [run], 50 * MS)
        assert d.a.ctl[tenant_word(train, S.TENANT.dma_pending)] == 0
