"""Admission converges whatever happens (issue 13), as a property on the
simulated device: random tenants (classes, weights, caps), launches in both modes
(some late), quota changes and live swaps of the baseline between its two
forms.  After each change and K (docs/admission.md, "Convergence"):

* no tenant runs more than its allowance;
* saturating tenants in persistent mode hold their allowances within 10%
  (latency-critical ones their caps, best-effort ones their weight shares
  of the rest);
* every tenant with demand runs CTAs;
* nothing is lost or doubled: every block started once, the device's
  ``admitted`` equals the blocks the workers started by a token or a
  decision (gbpfd.demo.sim_workload.swap_accounting), nothing bypassed,
  and every request posted was decided or is still queued.

The allowance oracle is the baseline's rule (gbpfd/policies/baseline.bpf.c).
SM draining is off (an sm_tick that drains nothing): it holds best-effort
tenants below their allowances by placement, not by admission, and has its
own tests (tests/sim/test_draining.py).  CI runs a few examples; ``GBPFD_CONVERGENCE_EXAMPLES=200`` runs a long
search.  Every figure is simulated.
"""
from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gbpfd
from gbpfd.bench.policies import NO_DRAIN_SM_ASM, program
from gbpfd.demo.sim_workload import swap_accounting
from gbpfd.device import state as S
from gbpfd.policies.catalog import BASELINE_FORMS, available_baseline_form, baseline_programs

MS = 1_000_000
BLOCK_NS = MS
FOREVER = 10_000_000
SAMPLE_NS = 200_000
WINDOW_NS = 3 * MS
EXAMPLES = int(os.environ.get("GBPFD_CONVERGENCE_EXAMPLES", "20"))

LC, BE = "latency-critical", "best-effort"
#: a latency-critical tenant's cap stays well under the GPU, so that best-effort tenants keep a share
tenant_quota = st.fixed_dictionaries({
    "class": st.sampled_from([BE, BE, LC]), "weight": st.integers(1, 4), "max_ctas": st.sampled_from([20, 60, 4096]),
}).map(lambda q: {**q, "max_ctas": min(q["max_ctas"], 60)} if q["class"] == LC else q)
modes = st.sampled_from(["persistent", "gate"])
change = st.one_of(
    st.tuples(st.just("launch")),                                     # the next tenant not yet launched arrives
    st.tuples(st.just("quotas"), st.lists(tenant_quota, min_size=3, max_size=3)),
    st.tuples(st.just("swap")),                                       # the baseline's other form, live
)
scenario = st.fixed_dictionaries({
    "quotas": st.lists(tenant_quota, min_size=2, max_size=3),
    "modes": st.lists(modes, min_size=3, max_size=3),
    "at_start": st.integers(1, 3),
    "changes": st.lists(change, min_size=1, max_size=3),
})


def quota_file(rows) -> dict:
    return {"tenants": {f"t{i}": row for i, row in enumerate(rows)}}


def allowance(rows, active: set[int], t: int, total_slots: int) -> int:
    """The baseline's rule: a latency-critical tenant its cap; best-effort
    ones what the latency-critical caps leave, by weight among the active."""
    if rows[t]["class"] == LC:
        return rows[t]["max_ctas"]
    pool = max(total_slots - sum(r["max_ctas"] for r in rows if r["class"] == LC), 0)
    weights = sum(rows[i]["weight"] for i in active if rows[i]["class"] == BE)
    share = max(pool * rows[t]["weight"] // weights if weights else pool, 1)
    return min(share, rows[t]["max_ctas"])


class Run:
    def __init__(self, plane, spec):
        self.plane, self.d, self.spec = plane, plane.device, spec
        self.rows = [dict(r) for r in spec["quotas"]]
        self.launched: set[int] = set()
        self.form = plane.baseline_form
        plane.load(program(NO_DRAIN_SM_ASM))

    def launch(self, t: int) -> None:
        mode = self.spec["modes"][t]
        if mode == "persistent":
            self.d.launch(t, blocks=FOREVER, block_ns=BLOCK_NS, mode="persistent")
        else:  # a gate-mode service: kernels of a quarter of the GPU, back to back (a grid that fits)
            def again(_run=None):
                self.d.launch(t, blocks=self.plane.total_slots // 4, block_ns=BLOCK_NS, mode="gate", on_done=again)
            again()
        self.launched.add(t)

    def apply(self, what) -> None:
        if what[0] == "launch":
            waiting = [t for t in range(len(self.rows)) if t not in self.launched]
            if waiting:
                self.launch(waiting[0])
        elif what[0] == "quotas":
            self.rows = [dict(r) for r in what[1][:len(self.rows)]]
            self.plane.set_quotas(quota_file(self.rows))
        else:
            forms = BASELINE_FORMS if available_baseline_form() == "c" else ("asm",)
            self.form = forms[(forms.index(self.form) + 1) % len(forms)]
            for hook, baseline in baseline_programs(self.form).items():
                if hook != "sm_tick":
                    self.plane.load(baseline, hook)

    def k_ns(self) -> int:
        return self.plane.options.periods.tick_ns + BLOCK_NS + self.d.gpu.launch_ns

    def check_converged(self) -> None:
        d, plane, names = self.d, self.plane, self.plane.quotas.names
        d.run_until(d.now + self.k_ns())
        seen = {t: [] for t in self.launched}
        end = d.now + WINDOW_NS
        while d.now < end:
            d.run_until(d.now + SAMPLE_NS)
            gauges = plane.gauges()
            for t in self.launched:
                seen[t].append(gauges[names[t]]["running"])
        for t, running in seen.items():
            cap = allowance(self.rows, self.launched, t, plane.total_slots)
            assert max(running) <= cap, (names[t], max(running), cap, self.rows)
            assert max(running) > 0, (names[t], "has demand and a share but ran nothing")
        if all(self.spec["modes"][t] == "persistent" for t in self.launched):
            for t, running in seen.items():
                cap = allowance(self.rows, self.launched, t, plane.total_slots)
                mean = sum(running) / len(running)
                assert abs(mean - cap) <= 0.10 * cap, (names[t], mean, cap, self.rows)

    def check_counts(self) -> None:
        """From the device's live words (the host's mirror lags by up to a tick)."""
        d, plane = self.d, self.plane
        ctl, flat = plane.arrays.ctl, plane.arrays.flat
        assert swap_accounting(plane) == (0, 0)  # (lost, doubled): blocks, requests and counters agree
        for t, name in enumerate(plane.quotas.names):
            assert flat[S.COUNTERS_WORD + t * S.COUNTER_RECORD_WORDS + S.COUNTER.bypassed] == 0, name
        queued = sum(g["queued"] for g in plane.gauges().values())
        assert d.stats.posted == int(ctl[S.PLANE.requests]) + queued  # each request decided, or waiting


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario)
def test_admission_converges_after_every_change(spec):
    with gbpfd.Plane(backend="sim", quotas=quota_file(spec["quotas"])) as plane:
        run = Run(plane, spec)
        for t in range(min(spec["at_start"], len(run.rows))):
            run.launch(t)
        run.check_converged()
        for what in spec["changes"]:
            run.apply(what)
            run.check_converged()
        run.check_counts()
