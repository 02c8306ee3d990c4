"""Admission converges after live changes and late arrivals (issue 13), on
the simulated device through the public API: the users' five scenarios, each
with the figure it must reach, and the bound K within which it must.

K (docs/admission.md, "Convergence"): an over-allowance tenant is within
its allowance one tick period after the change is adopted, plus the time
its CTAs running then take to finish their current block (persistent
workers re-ask at every block boundary).  Every figure is simulated.
"""
from __future__ import annotations

import gbpfd
from gbpfd.device import state as S
from gbpfd.device.gates import tenant_word

MS = 1_000_000
BLOCK_NS = MS
FOREVER = 10_000_000  # logical blocks: more than any test runs


def be(**fields) -> dict:
    return {"class": "best-effort", "weight": 1, "max_ctas": 4096, **fields}


def quotas(**tenants) -> dict:
    return {"tenants": tenants}


def k_bound_ns(plane) -> int:
    """K: one tick period after adoption, plus one block in flight, plus the
    launch latency a relaunched worker wave pays."""
    return plane.options.periods.tick_ns + BLOCK_NS + plane.device.gpu.launch_ns


def sample_running(plane, names, span_ns: int, every_ns: int = 100_000) -> dict[str, list[int]]:
    d = plane.device
    seen = {n: [] for n in names}
    end = d.now + span_ns
    while d.now < end:
        d.run_until(d.now + every_ns)
        gauges = plane.gauges()
        for n in names:
            seen[n].append(gauges[n]["running"])
    return seen


def lower_cap_while_running(mode: str) -> list[int]:
    """120 -> 30 while a saturating kernel runs: the running count from K on."""
    with gbpfd.Plane(backend="sim", quotas=quotas(a=be(max_ctas=120))) as plane:
        d = plane.device
        d.launch(0, blocks=FOREVER, block_ns=BLOCK_NS, mode=mode)
        d.run_until(d.now + 3 * MS)
        assert plane.gauges()["a"]["running"] == 120
        plane.set_quotas(quotas(a=be(max_ctas=30)))  # returns once the device adopted it
        d.run_until(d.now + k_bound_ns(plane))
        return sample_running(plane, ["a"], 10 * MS)["a"]


def test_a_lowered_cap_holds_within_k_persistent_mode():
    # before issue 13: 73 kept running (tokens circulated from exit to entry)
    assert max(lower_cap_while_running("persistent")) == 30


def test_a_lowered_cap_holds_within_k_gate_mode():
    # before issue 13: 40-52 (the same, and waiting gate CTAs bypassed)
    running = lower_cap_while_running("gate")
    assert max(running) == 30
    assert min(running) >= 27  # still using its cap, not starved by the change


def test_a_raised_cap_is_used_within_a_top_up_poll_persistent_mode():
    """30 -> 120 while a saturating persistent kernel runs: its workers were
    denied down to 30, so the launcher tops them up (every topup_poll_us)
    with workers for the tokens tick now grants."""
    with gbpfd.Plane(backend="sim", quotas=quotas(a=be(max_ctas=30))) as plane:
        d = plane.device
        d.launch(0, blocks=FOREVER, block_ns=BLOCK_NS, mode="persistent")
        d.run_until(d.now + 3 * MS)
        assert plane.gauges()["a"]["running"] == 30
        plane.set_quotas(quotas(a=be(max_ctas=120)))
        d.run_until(d.now + k_bound_ns(plane) + int(plane.options.topup_poll_us * 1000))
        running = sample_running(plane, ["a"], 5 * MS)["a"]
    assert min(running) == max(running) == 120


def test_when_one_tenant_leaves_the_other_grows_into_the_whole_gpu():
    with gbpfd.Plane(backend="sim", quotas=quotas(a=be(), b=be())) as plane:
        d = plane.device
        d.launch(0, blocks=FOREVER, block_ns=BLOCK_NS, mode="persistent")
        short = d.launch(1, blocks=20 * plane.total_slots // 2, block_ns=BLOCK_NS, mode="persistent")
        assert d.run_while(lambda: short.done_ns is None, 50 * MS)
        d.run_until(d.now + int(plane.options.active_window_us * 1000) + k_bound_ns(plane)
                    + int(plane.options.topup_poll_us * 1000))
        running = sample_running(plane, ["a"], 5 * MS)["a"]
    assert min(running) == plane.total_slots


def test_a_late_arrival_gets_its_equal_share_within_k():
    """Two equal best-effort tenants, the second 2 ms late: 131/131 within 10%."""
    with gbpfd.Plane(backend="sim", quotas=quotas(a=be(), b=be())) as plane:
        d = plane.device
        share = plane.total_slots // 2
        d.launch(0, blocks=FOREVER, block_ns=BLOCK_NS, mode="persistent")
        d.run_until(d.now + 2 * MS)
        assert plane.gauges()["a"]["running"] == plane.total_slots
        d.launch(1, blocks=FOREVER, block_ns=BLOCK_NS, mode="persistent")
        d.run_until(d.now + k_bound_ns(plane))
        seen = sample_running(plane, ["a", "b"], 10 * MS)
    # before issue 13: 184 / 78, for good
    for name in ("a", "b"):
        assert all(abs(r - share) <= 0.10 * share for r in seen[name]), (name, min(seen[name]), max(seen[name]))


def test_a_gate_mode_tenant_beside_a_saturating_persistent_one_gets_its_share():
    """A saturating tenant in persistent mode beside a gate-mode service that
    launches kernels of half the GPU back to back: the first's denied workers
    leave their SMs, so the second's CTAs are dispatched, ask, and run; over
    time each holds its half within 10%."""
    with gbpfd.Plane(backend="sim", quotas=quotas(a=be(), b=be())) as plane:
        d = plane.device
        share = plane.total_slots // 2

        def next_b(_run=None):
            d.launch(1, blocks=share, block_ns=BLOCK_NS, mode="gate", on_done=next_b)
        d.launch(0, blocks=FOREVER, block_ns=BLOCK_NS, mode="persistent")
        next_b()
        assert d.run_while(lambda: plane.gauges()["b"]["running"] == 0, k_bound_ns(plane))
        d.run_until(d.now + k_bound_ns(plane))
        seen = sample_running(plane, ["a", "b"], 20 * MS)
        counters = plane.counters()
    for name in ("a", "b"):
        mean = sum(seen[name]) / len(seen[name])
        assert abs(mean - share) <= 0.10 * share, (name, mean)
    assert max(seen["a"]) <= share + plane.quotas.tenants[0].burst, max(seen["a"])
    assert counters["b"]["admitted"] > 0 and counters["b"]["bypassed"] == 0


def test_behind_a_gate_grid_larger_than_the_gpu_a_tenant_waits_until_that_grid_is_issued():
    """The limit gate mode has on a GPU, modelled as the hardware has it: the
    block scheduler dispatches a kernel's CTAs in launch order, and a CTA the
    policy defers keeps its SM slot while it waits (CUDA cannot put a CTA
    back), so a second tenant's CTAs reach an SM only once the first's grid
    is fully issued, whatever the policy decides.  The first tenant still
    keeps to its share while the second waits, with no bypass."""
    with gbpfd.Plane(backend="sim", quotas=quotas(a=be(), b=be())) as plane:
        d = plane.device
        share = plane.total_slots // 2
        first = d.launch(0, blocks=4 * plane.total_slots, block_ns=BLOCK_NS, mode="gate")
        d.launch(1, blocks=FOREVER, block_ns=BLOCK_NS, mode="gate")
        d.run_until(d.now + k_bound_ns(plane))
        a_running = []
        while plane.gauges()["b"]["running"] == 0 and d.now < 50 * MS:
            a_running.append(plane.gauges()["a"]["running"])
            d.run_until(d.now + 100_000)
        issued_all = not any(entry[2].run is first for entry in d._dispatch_queue)  # none of its CTAs queued
        counters, b_in = plane.counters(), plane.gauges()["b"]["running"]
    assert issued_all and b_in > 0
    assert max(a_running) <= share + plane.quotas.tenants[0].burst, max(a_running)
    assert counters["a"]["bypassed"] == 0


def test_admitted_counts_logical_blocks_not_workers():
    """A 1-block persistent kernel: 1 admitted (before issue 13: 262, one per
    worker that got in), and the live worker gauge falls back to 0."""
    with gbpfd.Plane(backend="sim", quotas=quotas(a=be())) as plane:
        d = plane.device
        run = d.launch(0, blocks=1, block_ns=BLOCK_NS, mode="persistent")
        workers = tenant_word(0, S.TENANT.workers)  # the device's own word (Plane.gauges() reads S.GAUGES)
        d.run_until(d.now + d.gpu.launch_ns + 1)  # every worker is on an SM, none has asked yet
        assert plane.arrays.ctl[workers] == d.gpu.worker_slots
        assert d.run_while(lambda: run.done_ns is None, 5 * MS)
        d.run_until(d.now + 2 * plane.options.periods.tick_ns)
        assert plane.counters()["a"]["admitted"] == 1
        assert plane.arrays.ctl[workers] == 0
        assert (plane.gauges()["a"]["running"], plane.gauges()["a"]["queued"]) == (0, 0)
