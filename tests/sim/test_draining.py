"""SM draining, SM masks and per-SM caps on the simulated device, through
the public API (issue 14): best-effort persistent workers leave the SMs the
baseline's sm_tick drains for a latency-critical tenant, its CTAs land on
them alone, and the workers come back once the drain clears.  Every figure
is simulated, on the default calibration.
"""
from __future__ import annotations

import gbpfd
from gbpfd.device import state as S
from gbpfd.device.gates import sm_word

MS = 1_000_000
BLOCK_NS = 200_000
FOREVER = 10_000_000   # logical blocks: more than any test runs
HOLD_NS = 20 * MS      # the baseline sm_tick's hold (baseline.bpf.c)
LC_CTAS = 8


def quotas(**train) -> dict:
    return {"tenants": {"infer": {"class": "latency-critical", "max_ctas": LC_CTAS},
                        "train": {"class": "best-effort", "max_ctas": 4096, **train}}}


def drained(plane) -> list[int]:
    ctl = plane.arrays.ctl
    return [sm for sm in range(plane.device.gpu.num_sms) if ctl[sm_word(sm, S.SM.drained)] == 1]


def lc_kernel(plane, done: list, ctas: int = LC_CTAS) -> None:
    plane.device.launch(0, blocks=ctas, block_ns=100_000, mode="gate", priority=-1,
                        issue_utilisation=1.0, on_done=done.append)


def saturated(plane):
    """The BE tenant's persistent kernel on every worker SM, warmed up."""
    d = plane.device
    d.launch(1, blocks=FOREVER, block_ns=BLOCK_NS, mode="persistent", issue_utilisation=1.0)
    d.run_until(d.now + 2 * MS)
    return d


def test_best_effort_workers_leave_the_drained_sms_and_latency_critical_ctas_land_there_alone():
    with gbpfd.Plane(backend="sim", quotas=quotas()) as plane:
        d = saturated(plane)
        assert drained(plane) == []
        runs: list = []
        lc_kernel(plane, runs)
        d.run_while(lambda: not runs, 5 * MS)
        marked = drained(plane)
        assert marked == list(range(d.gpu.num_sms - LC_CTAS, d.gpu.num_sms))
        # the first launch found BE blocks still on the marked SMs: the next ones find them empty
        for _ in range(3):
            before = len(runs)
            d.run_until(d.now + MS)
            lc_kernel(plane, runs)
            d.run_while(lambda: len(runs) == before, 5 * MS)
            assert sorted(runs[-1].sms) == marked and runs[-1].beside == 0
            assert runs[-1].latency_ns <= d.gpu.launch_ns + 100_000 + 10_000  # alone, plus the admission
        assert all(d.occupancy(1)[sm] == 0 for sm in marked)
        stats = plane.plane_stats()
        assert stats["drains"] == LC_CTAS and stats["drained_sms"] == LC_CTAS
        assert 0 < stats["drain_wait_max_ns"] <= BLOCK_NS + plane.options.periods.tick_ns
        assert plane.counters()["train"]["drained"] >= stats["drains"]  # each drain saw at least one leave


def test_a_drain_is_sized_by_the_latency_critical_launch_not_by_its_max_ctas():
    with gbpfd.Plane(backend="sim", quotas=quotas()) as plane:
        d = saturated(plane)
        runs: list = []
        for ctas in (3, 5):   # each launch's CTAs, one SM each; the drain follows the latest
            lc_kernel(plane, runs, ctas)
            d.run_while(lambda: len(runs) < (1 if ctas == 3 else 2), 5 * MS)
            assert drained(plane) == list(range(d.gpu.num_sms - ctas, d.gpu.num_sms))
        lc_kernel(plane, runs, 4 * LC_CTAS)   # a grid beyond the tenant's max_ctas drains max_ctas SMs
        d.run_while(lambda: len(runs) < 3, 10 * MS)
        assert len(drained(plane)) == LC_CTAS


def test_the_workers_come_back_once_the_drain_clears():
    with gbpfd.Plane(backend="sim", quotas=quotas()) as plane:
        d = saturated(plane)
        full = plane.gauges()["train"]["workers"]
        assert full == plane.total_slots - LC_CTAS  # its allowance: the slots infer's max_ctas leaves
        runs: list = []
        lc_kernel(plane, runs)
        d.run_while(lambda: not runs, 5 * MS)
        marked = drained(plane)
        d.run_until(d.now + MS)
        # the SMs left are topped up to the full
        assert plane.gauges()["train"]["workers"] == (d.gpu.num_sms - 1 - LC_CTAS) * d.gpu.slots_per_sm
        d.run_until(d.now + HOLD_NS + 2 * MS)  # the hold, one more tick and a top-up poll
        assert drained(plane) == []
        assert plane.gauges()["train"]["workers"] == full
        assert all(d.occupancy(1)[sm] > 0 for sm in marked)


def test_workers_stay_on_their_masks_sms_and_under_their_per_sm_cap():
    sms = list(range(1, 11))
    with gbpfd.Plane(backend="sim", quotas=quotas(sms=sms[:5] + ["6-10"], max_ctas_per_sm=1)) as plane:
        d = saturated(plane)
        occupancy = d.occupancy(1)
        assert [sm for sm, n in enumerate(occupancy) if n] == sms
        assert max(occupancy) == 1
        assert plane.gauges()["train"]["workers"] == len(sms)
        # the launcher tops up no more than the mask has room for: nothing churns
        tops = d.stats.top_ups
        d.run_until(d.now + 2 * MS)
        assert d.stats.top_ups == tops
