"""The control CTA's loop body (gbpfd.device.control) on the CPU target:
adopting quota snapshots, ticks under the baseline policy, serving admission
requests, the command ring's ops, and the fallback after a policy fault.

The rig is the plane's real memory (plane.arrays) with the shipped baseline
installed, the demo quotas published by the host publisher, and commands
pushed by the host command ring, so nothing here fakes a layout."""
from __future__ import annotations

import numpy as np
import pytest

from gbpfd.bridge.layout import HEADER, HIST_BUCKETS, REGION, RING
from gbpfd.bridge.ring import CommandRing, EventRing
from gbpfd.device import state as S
from gbpfd.device.build import for_cpu
from gbpfd.device.control import COMMANDS_PER_LOOP, NOT_STAGED, STAGED
from gbpfd.device.gates import counter_word, slot_word, sm_word, tenant_word
from gbpfd.device.snapshot import SEQ_WORD, SNAPSHOT_TRIES
from gbpfd.isa.abi import LIMITS
from gbpfd.isa.asm import assemble
from gbpfd.plane import arrays as A
from gbpfd.policies.catalog import baseline_programs
from gbpfd.quotas import SnapshotPublisher, load_quotas, pack_quotas
from gbpfd.resources import shared_file
from gbpfd.vm import status

DEMO = load_quotas(shared_file("quotas", "demo.toml"))
INFER, TRAIN, BATCH = (DEMO.index(n) for n in ("infer", "train", "batch"))
TOTAL_SLOTS = 100
NUM_SMS = 132  # an H100's; the control CTA is on SM 0 (the ctl word starts at 0)
HOLD_NS = 20_000_000  # the baseline sm_tick's hold after the last latency-critical activity
# demo.toml over 100 slots: infer (latency-critical) holds back its max_ctas, 16;
# train and batch (weights 3 and 1) share the 84 left while both are active.
ALLOWANCE = {INFER: 16, TRAIN: 84 * 3 // 4, BATCH: 84 * 1 // 4}
T_ADOPT = 1_000       # before the first tick period ends
T_TICK = 20_000       # Periods().tick_ns: the first tick is due
BASELINE_IDS = {hook: pid for pid, hook in enumerate(baseline_programs("c"), start=1)}
ADMIT_HOOK = S.HOOK_NAMES.index("cta_admit")
TICK_HOOK = S.HOOK_NAMES.index("tick")

DEFER_ALL = ".name defer_all\n.hook cta_admit\nmov %r0, 0\nexit\n"
OUT_OF_BOUNDS = ".name oob\n.hook cta_admit\nldxdw %r0, [%r1+4096]\nexit\n"
ENDLESS_TICK = ".name spin\n.hook tick\nspin:\n    ja spin\n"


@pytest.fixture(scope="module")
def dev():
    return for_cpu()


class Rig:
    def __init__(self, dev, *, active_window_ns=10 ** 9, sample_every=0, baseline=True):
        self.dev = dev
        self.a = A.allocate()
        A.initialise(self.a, A.Periods(), wait_bound_ns=2_000_000, active_window_ns=active_window_ns,
                     sample_every=sample_every)
        A.set_sms(self.a, NUM_SMS, "the test rig")
        if baseline:
            for hook, program in baseline_programs("c").items():
                A.install_baseline(self.a, hook, program, BASELINE_IDS[hook])
        self.publisher = SnapshotPublisher(self.a.host)
        self.commands = CommandRing(self.a.host)
        self.event_ring = EventRing(self.a.host)

    @property
    def ctl(self):
        return self.a.ctl

    def publish(self, quotas=DEMO) -> int:
        self.publisher.publish(quotas, total_slots=TOTAL_SLOTS)
        return self.commands.push("quotas")

    def ask(self, *tenants: int, now: int = T_ADOPT - 500) -> None:
        """The tenants' workers try for a token: that notes their demand,
        which puts them in the fair share (a token taken is given back)."""
        for t in tenants:
            if self.dev.try_token(self.ctl, t, now):
                self.dev.cta_exit(self.ctl, t, S.ENTER_TOKEN)

    def housekeeping(self, now: int) -> int:
        return int(self.dev.control_warp(0, 1, now, *self.a.device_args()))

    def adopt(self, now: int) -> int:
        """The two iterations a quotas command takes: the first copies the
        published snapshot in, the second adopts it."""
        assert self.housekeeping(now) == 0
        return self.housekeeping(now)

    def post(self, t: int, now: int) -> int:
        s = int(self.dev.post_request(self.ctl, t, 1, now))
        assert s >= 0
        return s

    def serve(self, s: int, now: int) -> int:
        return int(self.dev.serve_slot(s, now, *self.a.device_args()))

    def decide(self, t: int, posted: int = T_ADOPT, served: int = T_ADOPT + 1_000) -> int:
        """Post a request for ``t`` and serve it: the decision."""
        s = self.post(t, posted)
        assert self.serve(s, served) == 1
        assert self.ctl[slot_word(s, S.SLOT.state)] == S.DECIDED
        return int(self.ctl[slot_word(s, S.SLOT.decision)])

    def events(self):
        """The host ring's events, after the forwarding of staged ones that the next housekeeping pass does."""
        self.dev.forward_staged(self.ctl, self.a.host)
        return self.event_ring.drain()

    def tenant(self, t: int, field: int) -> int:
        return int(self.ctl[tenant_word(t, field)])

    def counter(self, t: int, field: int) -> int:
        return int(self.a.flat[counter_word(t, field)])

    def stage(self, hook: str, slot: int, text: str) -> int:
        return A.stage_program(self.a, hook, slot, assemble(text))

    def swap_in(self, hook: str, text: str, program_id: int, now: int = T_ADOPT + 100) -> int:
        """Stage ``text`` (unverified) in slot 0 of ``hook`` and swap it in with a command."""
        n = self.stage(hook, 0, text)
        seq = self.commands.push("swap", hook=S.HOOK_NAMES.index(hook), slot=0, program=program_id, arg0=n)
        assert self.housekeeping(now) == 0
        return seq


@pytest.fixture
def rig(dev):
    """Demo quotas published and adopted, both best-effort tenants asking
    for CTAs; no tick has run yet."""
    r = Rig(dev)
    r.publish()
    r.ask(TRAIN, BATCH)
    assert r.adopt(T_ADOPT) == 0
    r.events()
    return r


def kinds(events):
    return [e.kind for e in events]


# ------------------------------------------------------------------ snapshot

def test_a_quotas_command_is_copied_in_one_iteration_and_adopted_in_the_next(dev):
    r = Rig(dev)
    seq = r.publish()
    r.ask(TRAIN, BATCH)
    assert r.ctl[S.META.epoch] == 0
    assert r.housekeeping(T_ADOPT) == 0
    # staged: the quotas in use are untouched until the next iteration adopts the copy
    assert r.ctl[S.PLANE.staged] == STAGED and r.ctl[S.META.epoch] == 0 and r.commands.pending() == 1
    assert not r.a.flat[S.QUOTA_WORD:S.QUOTA_WORD + S.QUOTA_BYTES // 8].any() and r.events() == []
    assert r.housekeeping(T_ADOPT) == 0
    assert r.ctl[S.PLANE.staged] == NOT_STAGED and r.ctl[S.META.epoch] == 1
    assert r.ctl[S.META.ntenants] == 3
    assert r.ctl[S.META.total_slots] == TOTAL_SLOTS
    quota = r.a.flat[S.QUOTA_WORD:S.QUOTA_WORD + S.QUOTA_BYTES // 8]
    np.testing.assert_array_equal(quota, pack_quotas(DEMO))
    assert r.ctl[S.PLANE.be_weight_sum] == 4
    assert r.ctl[S.PLANE.lc_reserved] == 16
    events = r.events()
    assert kinds(events) == ["quotas"]
    assert events[0].args == {"epoch": 1, "seq": seq}
    assert events[0].time_ns == T_ADOPT
    assert r.commands.pending() == 0
    assert r.a.host[HEADER.epoch] == 1  # the header says so at once, not at the next tick


def test_adoption_sets_the_warp_caps_from_the_quotas(rig):
    assert rig.tenant(INFER, S.TENANT.warp_cap) == 256
    assert rig.tenant(TRAIN, S.TENANT.warp_cap) == DEMO.tenants[TRAIN].warp_cap


def test_demand_leaves_the_fair_share_after_the_active_window(dev):
    r = Rig(dev, active_window_ns=5_000)
    r.publish()
    r.ask(TRAIN, BATCH, now=T_TICK - 1_000)
    r.adopt(T_ADOPT)
    r.housekeeping(T_TICK)
    assert r.ctl[S.PLANE.be_weight_sum] == 4
    r.ask(TRAIN, now=2 * T_TICK - 1_000)
    r.housekeeping(2 * T_TICK)  # batch's last ask is 21 us old, over the 5 us window
    assert r.ctl[S.PLANE.be_weight_sum] == 3
    assert r.tenant(TRAIN, S.TENANT.tokens) == 84


def test_a_new_snapshot_replaces_the_quotas(rig):
    heavier = {"tenants": {"infer": {"class": "latency-critical", "weight": 1, "max_ctas": 8},
                           "train": {"class": "best-effort", "weight": 5, "max_ctas": 4096}}}
    seq = rig.publish(heavier)
    rig.adopt(T_ADOPT + 10)
    assert rig.ctl[S.META.epoch] == 2 and rig.ctl[S.META.ntenants] == 2
    quota = rig.a.flat[S.QUOTA_WORD:S.QUOTA_WORD + S.QUOTA_BYTES // 8]
    np.testing.assert_array_equal(quota, pack_quotas(load_quotas(heavier)))
    assert rig.ctl[S.PLANE.lc_reserved] == 8 and rig.ctl[S.PLANE.be_weight_sum] == 5
    assert [(e.kind, e.args) for e in rig.events()] == [("quotas", {"epoch": 2, "seq": seq})]


def test_a_torn_snapshot_keeps_the_quotas_in_use_and_is_retried(rig):
    before = rig.a.flat[S.QUOTA_WORD:S.QUOTA_WORD + S.QUOTA_BYTES // 8].copy()
    meta_before = rig.ctl[:S.META_WORDS].copy()
    rig.publisher.publish({"tenants": {"solo": {"class": "best-effort", "weight": 9, "max_ctas": 7}}},
                          total_slots=TOTAL_SLOTS + 1)
    rig.a.host[SEQ_WORD] += 1  # the host is (still) writing: every read is torn
    seq = rig.commands.push("quotas")
    rig.housekeeping(T_ADOPT + 10)
    np.testing.assert_array_equal(rig.a.flat[S.QUOTA_WORD:S.QUOTA_WORD + S.QUOTA_BYTES // 8], before)
    np.testing.assert_array_equal(rig.ctl[:S.META_WORDS], meta_before)
    assert rig.ctl[S.META.epoch] == 1
    assert rig.a.host[REGION.header + HEADER.torn_retries] == SNAPSHOT_TRIES
    assert rig.a.host[HEADER.epoch] == 1
    assert "quotas" not in kinds(rig.events())
    assert rig.commands.pending() == 1  # left for the next iteration
    # the loop goes on meanwhile: the tick runs on the quotas in use
    rig.housekeeping(T_TICK)
    assert rig.a.host[HEADER.ticks] == 1
    assert rig.tenant(TRAIN, S.TENANT.tokens) == ALLOWANCE[TRAIN]
    assert rig.a.host[REGION.header + HEADER.torn_retries] == 2 * SNAPSHOT_TRIES
    # once the write completes, the same command adopts it
    rig.a.host[SEQ_WORD] += 1
    rig.adopt(T_TICK + 10)
    assert rig.ctl[S.META.epoch] == 2 and rig.ctl[S.META.total_slots] == TOTAL_SLOTS + 1
    assert [(e.kind, e.args) for e in rig.events()] == [("quotas", {"epoch": 2, "seq": seq})]
    assert rig.commands.pending() == 0


# ---------------------------------------------------------------------- tick

def test_tick_sets_tokens_to_allowance_minus_running(rig):
    rig.ctl[tenant_word(TRAIN, S.TENANT.running)] = 10
    assert rig.housekeeping(T_TICK) == 0
    assert rig.tenant(INFER, S.TENANT.tokens) == ALLOWANCE[INFER]
    assert rig.tenant(TRAIN, S.TENANT.tokens) == ALLOWANCE[TRAIN] - 10
    assert rig.tenant(BATCH, S.TENANT.tokens) == ALLOWANCE[BATCH]
    assert rig.counter(TRAIN, S.COUNTER.tokens_granted) == ALLOWANCE[TRAIN] - 10
    assert rig.a.host[HEADER.ticks] == 1
    assert rig.a.host[HEADER.epoch] == 1
    # the counters were mirrored where the host reads them
    host_counters = REGION.counters + TRAIN * S.COUNTER_RECORD_WORDS + S.COUNTER.tokens_granted
    assert rig.a.host[host_counters] == ALLOWANCE[TRAIN] - 10


def test_tick_leaves_no_tokens_at_or_over_the_allowance(rig):
    rig.ctl[tenant_word(BATCH, S.TENANT.running)] = ALLOWANCE[BATCH] + 3
    rig.ctl[tenant_word(BATCH, S.TENANT.tokens)] = 2
    rig.housekeeping(T_TICK)
    assert rig.tenant(BATCH, S.TENANT.tokens) == 0


@pytest.mark.parametrize("running,limit", [(10, ALLOWANCE[TRAIN]), (ALLOWANCE[TRAIN], 0), (ALLOWANCE[TRAIN] + 5, 0)])
def test_tick_sets_the_token_limit_to_the_allowance_it_implies(rig, running, limit):
    """Under the allowance the limit is running + the tokens tick left; at
    or over it 0, so no exit hands a token on until a tick grants again."""
    rig.ctl[tenant_word(TRAIN, S.TENANT.running)] = running
    rig.housekeeping(T_TICK)
    assert rig.tenant(TRAIN, S.TENANT.token_limit) == limit


def test_a_lowered_cap_retires_the_tokens_of_exiting_ctas(rig):
    """The issue's 120 -> 30 case: after the tick that sees the new cap, a
    CTA leaving hands no token on and the tenant's next CTA must ask."""
    rig.housekeeping(T_TICK)
    for _ in range(ALLOWANCE[TRAIN]):
        assert rig.dev.try_token(rig.ctl, TRAIN, T_TICK + 1)
    rig.publish(DEMO.with_fields("train", max_ctas=30))
    rig.adopt(2 * T_TICK - 100)
    rig.housekeeping(2 * T_TICK)  # the tick that sees the new cap
    assert rig.tenant(TRAIN, S.TENANT.tokens) == 0 and rig.tenant(TRAIN, S.TENANT.token_limit) == 0
    rig.dev.cta_exit(rig.ctl, TRAIN, S.ENTER_TOKEN)
    assert not rig.dev.try_token(rig.ctl, TRAIN, 2 * T_TICK + 1)
    rig.ctl[tenant_word(TRAIN, S.TENANT.running)] = 30
    assert rig.decide(TRAIN, 2 * T_TICK + 2, 2 * T_TICK + 3) == S.DEFER


def test_a_request_that_finds_tokens_is_admitted_by_one_without_a_policy_run(rig):
    """tick granted after the worker looked: deferring would strand the token."""
    rig.swap_in("cta_admit", DEFER_ALL, program_id=9)
    rig.ctl[tenant_word(TRAIN, S.TENANT.tokens)] = 2
    insns = int(rig.ctl[S.PLANE.insns])
    assert rig.decide(TRAIN) == S.ADMIT
    assert rig.tenant(TRAIN, S.TENANT.tokens) == 1 and rig.tenant(TRAIN, S.TENANT.running) == 1
    assert int(rig.ctl[S.PLANE.insns]) == insns
    assert rig.decide(TRAIN) == S.ADMIT and rig.decide(TRAIN) == S.DEFER  # the policy decides once they are gone


def test_a_second_tick_grants_only_what_was_used(rig):
    rig.housekeeping(T_TICK)
    for _ in range(5):
        assert rig.dev.try_token(rig.ctl, TRAIN, T_TICK + 1)
    for _ in range(2):
        rig.dev.cta_exit(rig.ctl, TRAIN, S.ENTER_TOKEN)
    rig.housekeeping(2 * T_TICK)
    assert rig.tenant(TRAIN, S.TENANT.tokens) == ALLOWANCE[TRAIN] - 3
    assert rig.counter(TRAIN, S.COUNTER.tokens_granted) == ALLOWANCE[TRAIN]
    assert rig.a.host[HEADER.ticks] == 2


def test_tenants_that_never_asked_are_not_in_the_fair_share(dev):
    r = Rig(dev)
    r.publish()
    r.adopt(T_ADOPT)
    assert r.ctl[S.PLANE.be_weight_sum] == 0
    r.ctl[tenant_word(TRAIN, S.TENANT.running)] = 1  # train runs a CTA; batch never asked
    r.housekeeping(T_TICK)
    assert r.ctl[S.PLANE.be_weight_sum] == 3
    assert r.tenant(TRAIN, S.TENANT.tokens) == 84 - 1
    assert r.tenant(BATCH, S.TENANT.tokens) == 84 * 1 // 3


def test_dma_and_warp_periods_run_their_baselines(rig):
    rig.housekeeping(A.Periods().dma_ns)
    per = DEMO.tenants[BATCH].dma_bytes_per_epoch
    assert rig.tenant(BATCH, S.TENANT.dma_tokens) == per
    assert rig.tenant(TRAIN, S.TENANT.dma_tokens) == 0
    rig.housekeeping(3 * A.Periods().dma_ns)
    assert rig.tenant(BATCH, S.TENANT.dma_tokens) == 2 * per  # two epochs banked at most
    assert rig.tenant(INFER, S.TENANT.warp_cap) == 256


# ----------------------------------------------------------------- admission

def test_serve_slot_admits_under_the_allowance(rig):
    assert rig.decide(TRAIN) == S.ADMIT
    assert rig.tenant(TRAIN, S.TENANT.running) == 1
    assert rig.tenant(TRAIN, S.TENANT.queued) == 0
    assert rig.counter(TRAIN, S.COUNTER.admitted) == 0  # the worker counts the block it starts (count_block)
    assert rig.ctl[S.PLANE.total_running] == 1
    assert rig.ctl[S.PLANE.requests] == 1 and rig.ctl[S.PLANE.decisions] == 1


def test_serve_slot_defers_at_the_allowance(rig):
    rig.ctl[tenant_word(TRAIN, S.TENANT.running)] = ALLOWANCE[TRAIN]
    assert rig.decide(TRAIN) == S.DEFER
    assert rig.tenant(TRAIN, S.TENANT.running) == ALLOWANCE[TRAIN]
    assert rig.counter(TRAIN, S.COUNTER.deferred) == 1
    assert rig.counter(TRAIN, S.COUNTER.admitted) == 0
    assert rig.tenant(TRAIN, S.TENANT.queued) == 0


@pytest.mark.parametrize("running,decision", [(15, S.ADMIT), (16, S.DEFER)])
def test_latency_critical_tenant_gets_its_whole_cap(rig, running, decision):
    rig.ctl[tenant_word(INFER, S.TENANT.running)] = running
    assert rig.decide(INFER) == decision


def test_serve_slot_defers_at_the_global_cap_without_a_policy_run(rig):
    rig.ctl[S.PLANE.global_cta_cap] = 0
    insns = int(rig.ctl[S.PLANE.insns])
    assert rig.decide(TRAIN) == S.DEFER
    assert rig.ctl[S.PLANE.insns] == insns


def test_serve_slot_ignores_a_slot_with_nothing_posted(rig):
    assert rig.serve(5, T_ADOPT) == 0
    assert rig.ctl[S.PLANE.requests] == 0


def test_serve_slot_records_the_wait_in_the_histogram(rig):
    rig.decide(BATCH, posted=T_ADOPT, served=T_ADOPT + 1_000)  # 1000 ns: bucket [512, 1024) = 3
    hist = rig.ctl[S.HIST_BASE + BATCH * HIST_BUCKETS:S.HIST_BASE + (BATCH + 1) * HIST_BUCKETS]
    assert hist.tolist() == [0, 0, 0, 1] + [0] * (HIST_BUCKETS - 4)
    assert rig.ctl[S.PLANE.reaction_ns] == 1_000 and rig.a.host[HEADER.reaction_ns] == 0  # the host's: next tick
    rig.dev.mirror(0, 1, rig.ctl, rig.a.host, rig.a.flat)
    assert rig.a.host[HEADER.reaction_ns] == 1_000


@pytest.mark.parametrize("bucket", range(HIST_BUCKETS))
def test_hist_bucket_edges(dev, bucket):
    low, high = 1 << (bucket + 6), (1 << (bucket + 7)) - 1
    if bucket == 0:
        low = 0
    assert dev.hist_bucket(low) == bucket
    if bucket < HIST_BUCKETS - 1:
        assert dev.hist_bucket(high) == bucket
    else:
        assert dev.hist_bucket(1 << 40) == bucket


def test_sampled_decisions_become_events(dev):
    r = Rig(dev, sample_every=1)
    r.publish()
    r.adopt(T_ADOPT)
    r.events()
    r.decide(TRAIN, posted=T_ADOPT, served=T_ADOPT + 700)
    assert r.event_ring.drain() == []  # staged in device memory: the serving warp never writes the host ring
    r.housekeeping(T_ADOPT + 800)
    events = r.event_ring.drain()
    assert [(e.kind, e.time_ns, e.hook, e.program, e.tenant, e.args) for e in events] == [
        ("decision", T_ADOPT + 700, ADMIT_HOOK, BASELINE_IDS["cta_admit"], TRAIN, {"admit": 1, "wait_ns": 700})]


def test_staged_events_past_the_queue_are_dropped_and_counted_in_the_ring(dev):
    r = Rig(dev, sample_every=1)
    r.publish()
    r.adopt(T_ADOPT)
    r.events()
    for i in range(S.STAGED_EVENTS + 3):  # one housekeeping pass forwards them: 3 too many meanwhile
        r.decide(TRAIN, posted=T_ADOPT + i, served=T_ADOPT + i + 10)
        dev.cta_exit(r.ctl, TRAIN, S.ENTER_POLICY)
    r.housekeeping(T_ADOPT + 10_000)
    assert len(r.event_ring.drain()) == S.STAGED_EVENTS
    assert r.a.host[REGION.event_ring + RING.dropped] == 3


# ------------------------------------------------------------------ commands

def test_swap_switches_the_active_slot_and_acknowledges(rig):
    seq = rig.swap_in("cta_admit", DEFER_ALL, program_id=77)
    assert rig.ctl[S.ACTIVE + ADMIT_HOOK] == 0
    assert rig.ctl[S.PROGRAM_ID + ADMIT_HOOK * S.NPROG_SLOTS] == 77
    assert rig.ctl[S.NINSNS + ADMIT_HOOK * S.NPROG_SLOTS] == 2
    events = rig.events()
    assert [(e.kind, e.hook, e.program, e.args) for e in events] == [
        ("swapped", ADMIT_HOOK, 77, {"seq": seq, "slot": 0})]
    # the baseline would admit train here; the new program decides now
    assert rig.decide(TRAIN) == S.DEFER


STACKY = """
.name stacky
.hook cta_admit
    lddw %r2, 0x1122334455667788
    stxdw [%r10-8], %r2
    ldxdw %r3, [%r10-8]
    mov %r0, 0
    jne %r3, %r2, out
    mov %r0, 1
out:
    exit
"""


def test_a_policys_stack_is_the_runners_part_of_the_stack_array_not_flat(rig):
    rig.swap_in("cta_admit", STACKY, program_id=78)
    rig.ctl[tenant_word(TRAIN, S.TENANT.tokens)] = 0   # so that the request runs the policy
    flat_before = rig.a.flat.copy()
    assert rig.decide(TRAIN) == S.ADMIT
    frame0 = S.RUNNER_ADMIT * LIMITS.max_call_depth * LIMITS.stack_bytes
    top = frame0 + LIMITS.stack_bytes
    assert rig.a.stack[top - 8:top].tobytes() == (0x1122334455667788).to_bytes(8, "little")
    assert not rig.a.stack[:frame0].any()   # the tick runner's part is its own
    changed = np.flatnonzero(rig.a.flat != flat_before)   # counters and the ctx words only
    assert all(S.RUNNERS_AT // 8 <= w < S.MAPS_AT // 8 or S.COUNTERS_WORD <= w < S.RUNNERS_AT // 8 for w in changed)


def test_unload_returns_the_hook_to_the_baseline(rig):
    rig.swap_in("cta_admit", DEFER_ALL, program_id=77)
    rig.events()
    seq = rig.commands.push("unload", hook=ADMIT_HOOK)
    rig.housekeeping(T_ADOPT + 200)
    assert rig.ctl[S.ACTIVE + ADMIT_HOOK] == S.BASELINE_SLOT
    assert [(e.kind, e.program, e.args) for e in rig.events()] == [
        ("swapped", BASELINE_IDS["cta_admit"], {"seq": seq, "slot": S.BASELINE_SLOT})]
    assert rig.decide(TRAIN) == S.ADMIT


@pytest.mark.parametrize("op,fields", [
    (99, {}),                                                          # no such op
    ("swap", {"hook": ADMIT_HOOK, "slot": S.BASELINE_SLOT, "arg0": 2}),  # the baseline slot is not swappable
    ("swap", {"hook": ADMIT_HOOK, "slot": 0, "arg0": 0}),               # no instructions
    ("swap", {"hook": ADMIT_HOOK, "slot": 0, "arg0": S.MAX_INSNS + 1}),
    ("swap", {"hook": S.NHOOKS, "slot": 0, "arg0": 2}),
    ("unload", {"hook": -1}),
], ids=["unknown-op", "baseline-slot", "zero-insns", "too-many-insns", "bad-hook", "unload-bad-hook"])
def test_a_bad_command_is_refused_and_reported(rig, op, fields):
    rig.stage("cta_admit", 0, DEFER_ALL)
    active = rig.ctl[S.ACTIVE:S.ACTIVE + S.NHOOKS].copy()
    seq = rig.commands.push(op, program=55, **fields)
    assert rig.housekeeping(T_ADOPT + 100) == 0
    np.testing.assert_array_equal(rig.ctl[S.ACTIVE:S.ACTIVE + S.NHOOKS], active)
    events = rig.events()
    op_id = op if isinstance(op, int) else {"swap": 1, "unload": 5}[op]
    assert [(e.kind, e.args) for e in events] == [("bad_command", {"op": op_id, "seq": seq})]
    assert rig.commands.pending() == 0


def test_periods_command_sets_the_periods(rig):
    rig.commands.push("periods", arg0=10_000, arg1=50_000, arg2=70_000)
    rig.housekeeping(T_ADOPT + 100)
    assert rig.ctl[S.PLANE.tick_period_ns] == 10_000
    assert rig.ctl[S.PLANE.dma_period_ns] == 50_000
    assert rig.ctl[S.PLANE.warp_period_ns] == 70_000
    assert rig.ctl[S.PLANE.therm_period_ns] == 70_000


def test_a_flood_of_commands_is_taken_a_few_per_loop(rig):
    for _ in range(COMMANDS_PER_LOOP + 2):
        rig.commands.push("periods")
    rig.housekeeping(T_ADOPT + 100)
    assert rig.commands.pending() == 2
    rig.housekeeping(T_ADOPT + 200)
    assert rig.commands.pending() == 0


def test_stop_returns_one_and_reports_it(rig):
    loops = int(rig.a.ctl[S.PLANE.loops])
    rig.commands.push("stop")
    assert rig.housekeeping(T_ADOPT + 100) == 1
    assert rig.a.host[HEADER.exit_reason] == 1
    assert rig.a.host[HEADER.loops] == loops + 1  # mirrored on the way out
    assert rig.a.host[HEADER.heartbeat_ns] == T_ADOPT + 100
    events = rig.events()
    assert [(e.kind, e.args) for e in events] == [("stopped", {"reason": 1})]
    assert rig.commands.pending() == 0


# -------------------------------------------------------------------- faults

def test_a_faulting_admit_policy_falls_back_to_the_baseline(rig):
    rig.swap_in("cta_admit", OUT_OF_BOUNDS, program_id=50)
    rig.events()
    # at the allowance the baseline defers; the no-program fallback would admit
    rig.ctl[tenant_word(TRAIN, S.TENANT.running)] = ALLOWANCE[TRAIN]
    assert rig.decide(TRAIN, served=T_ADOPT + 900) == S.DEFER
    fault, fallback = rig.events()
    assert (fault.kind, fault.hook, fault.program, fault.tenant, fault.time_ns) == (
        "fault", ADMIT_HOOK, 50, TRAIN, T_ADOPT + 900)
    assert fault.args["status"] == status.FAULT_BOUNDS and fault.args["pc"] == 0
    assert (fallback.kind, fallback.hook, fallback.program, fallback.tenant, fallback.args) == (
        "fallback", ADMIT_HOOK, BASELINE_IDS["cta_admit"], TRAIN, {"from_program": 50})
    assert rig.counter(TRAIN, S.COUNTER.faults) == 1
    assert rig.ctl[S.ACTIVE + ADMIT_HOOK] == S.BASELINE_SLOT
    # later requests go straight to the baseline: no second fault
    rig.ctl[tenant_word(TRAIN, S.TENANT.running)] = 0
    assert rig.decide(TRAIN) == S.ADMIT
    assert rig.events() == []
    assert rig.counter(TRAIN, S.COUNTER.faults) == 1


def test_a_policy_out_of_fuel_faults_and_the_tick_still_refills(rig):
    rig.swap_in("tick", ENDLESS_TICK, program_id=60)
    rig.events()
    rig.housekeeping(T_TICK)
    events = rig.events()
    fault, fallback = events[:2]
    assert (fault.kind, fault.hook, fault.program, fault.tenant) == ("fault", TICK_HOOK, 60, INFER)
    assert fault.args == {"status": status.FAULT_FUEL, "pc": 0, "steps": int(S.HOOK_BUDGET[TICK_HOOK])}
    assert (fallback.kind, fallback.program, fallback.args) == (
        "fallback", BASELINE_IDS["tick"], {"from_program": 60})
    assert len(events) == 2  # only the first tenant's run faulted
    assert rig.ctl[S.ACTIVE + TICK_HOOK] == S.BASELINE_SLOT
    assert rig.counter(INFER, S.COUNTER.faults) == 1
    for t in (INFER, TRAIN, BATCH):
        assert rig.tenant(t, S.TENANT.tokens) == ALLOWANCE[t]


TRACE_TWICE = ".name tracer\n.hook cta_admit\nmov %r1, 42\ncall trace\nmov %r1, 7\ncall trace\nmov %r0, 1\nexit\n"


def test_a_run_that_traces_writes_one_trace_event(rig):
    rig.swap_in("cta_admit", TRACE_TWICE, program_id=77)
    rig.events()
    assert rig.decide(TRAIN) == S.ADMIT
    [event] = [e for e in rig.events() if e.kind == "trace"]
    assert (event.hook, event.program, event.tenant, event.args) == (ADMIT_HOOK, 77, TRAIN, {"value": 42, "calls": 2})


def test_trace_events_past_the_tick_budget_are_dropped_and_counted(rig):
    rig.swap_in("cta_admit", TRACE_TWICE, program_id=77)
    rig.events()
    for k in range(S.TRACE_EVENTS_PER_TICK + 3):
        rig.decide(BATCH, T_ADOPT + 200 + k, T_ADOPT + 300 + k)
    assert kinds(rig.events()).count("trace") == S.TRACE_EVENTS_PER_TICK
    rig.housekeeping(T_TICK)  # mirrors the drop count; the budget starts again
    assert rig.a.host[HEADER.traces_dropped] == 3
    rig.ctl[tenant_word(BATCH, S.TENANT.tokens)] = 0  # so that the next request runs the policy
    rig.decide(BATCH, T_TICK + 1, T_TICK + 2)
    assert kinds(rig.events()).count("trace") == 1


@pytest.mark.parametrize("policy", [TRACE_TWICE, OUT_OF_BOUNDS, DEFER_ALL])
def test_the_serve_path_leaves_the_host_area_untouched(dev, policy):
    """Decisions, traces, faults and fallbacks, sampled decisions: the serving
    warp writes device memory only (on a GPU a host write would put a PCIe
    transaction on the request path); housekeeping forwards the events."""
    r = Rig(dev, sample_every=1)
    r.publish()
    r.adopt(T_ADOPT)
    r.swap_in("cta_admit", policy, program_id=77)
    r.events()
    r.ctl[tenant_word(TRAIN, S.TENANT.tokens)] = 0  # so that the request runs the policy
    before = r.a.host.copy()
    r.decide(TRAIN, posted=T_ADOPT + 200, served=T_ADOPT + 210)
    assert np.flatnonzero(r.a.host != before).tolist() == []
    r.housekeeping(T_ADOPT + 300)
    assert "decision" in kinds(r.event_ring.drain())


COUNT_FIVE = (".name counting\n.hook tick\nldxw %r1, [%r1+16]\nmov %r2, 3\nmov %r3, 5\ncall counter_add\n"
               "mov %r0, 0\nexit\n")


def test_counter_add_reaches_the_tenants_policy_counter(rig):
    rig.swap_in("tick", COUNT_FIVE, program_id=78)
    rig.housekeeping(T_TICK)
    rig.housekeeping(2 * T_TICK)
    assert [rig.counter(t, S.COUNTER.user3) for t in (INFER, TRAIN, BATCH)] == [10, 10, 10]
    assert rig.counter(TRAIN, S.COUNTER.user2) == 0


def test_a_faulting_baseline_leaves_no_program_and_admits(dev):
    r = Rig(dev, baseline=False)
    A.install_baseline(r.a, "cta_admit", assemble(OUT_OF_BOUNDS), 9)
    r.publish()
    r.adopt(T_ADOPT)
    r.events()
    r.ctl[tenant_word(TRAIN, S.TENANT.running)] = 10 ** 6
    assert r.decide(TRAIN) == S.ADMIT  # no policy left: admit rather than stall the tenant
    fault, fallback = r.events()
    assert (fault.kind, fault.program) == ("fault", 9)
    assert (fallback.kind, fallback.program, fallback.args) == ("fallback", -1, {"from_program": 9})
    assert r.ctl[S.ACTIVE + ADMIT_HOOK] == S.NO_PROGRAM


def test_the_heartbeat_and_loop_count_advance_every_housekeeping(rig):
    loops = int(rig.a.ctl[S.PLANE.loops])
    for k in range(1, 4):
        rig.housekeeping(T_ADOPT + k)
        assert rig.a.host[HEADER.heartbeat_ns] == T_ADOPT + k
    # counted in device memory each iteration, copied to the host area each tick
    assert rig.a.ctl[S.PLANE.loops] == loops + 3


# ------------------------------------------------------------------ sm_tick

def drained(r) -> list:
    return [sm for sm in range(NUM_SMS) if r.ctl[sm_word(sm, S.SM.drained)] == 1]


def lc_launch(r, launched: int, finished: int) -> None:
    """The host's launch words for infer: ``launched`` announced, ``finished`` reported."""
    r.a.host[REGION.demand + INFER] = launched
    r.a.host[REGION.finished + INFER] = finished


def test_nothing_is_drained_before_a_latency_critical_tenant_is_active(rig):
    assert rig.housekeeping(T_TICK) == 0
    assert drained(rig) == [] and rig.a.host[HEADER.drained_sms] == 0
    assert [rig.tenant(t, S.TENANT.worker_sms) for t in (INFER, TRAIN, BATCH)] == [NUM_SMS - 1] * 3


def test_a_latency_critical_launch_drains_its_max_ctas_sms_for_best_effort_workers(rig):
    lc_launch(rig, 1, 0)
    assert rig.housekeeping(T_TICK) == 0
    assert drained(rig) == list(range(NUM_SMS - 16, NUM_SMS))  # infer's max_ctas, the last SMs
    assert all(rig.ctl[sm_word(sm, S.SM.drained_ns)] == T_TICK for sm in drained(rig))
    assert rig.a.host[HEADER.drained_sms] == 16
    # no best-effort worker was on them: each drain is complete at its mark, with no wait
    assert rig.ctl[S.PLANE.drains] == 16 and rig.ctl[S.PLANE.drain_wait_max_ns] == 0
    # best-effort workers may stay on the SMs left; the latency-critical tenant on all of them
    assert [rig.tenant(t, S.TENANT.worker_sms) for t in (INFER, TRAIN, BATCH)] == [
        NUM_SMS - 1, NUM_SMS - 17, NUM_SMS - 17]


@pytest.mark.parametrize("ctas, want", [(5, 5), (16, 16), (400, 16), (-3, 0)])
def test_lc_demand_is_the_latest_launchs_ctas_at_most_the_tenants_max_ctas(rig, ctas, want):
    lc_launch(rig, 1, 0)
    rig.a.host[REGION.launch_ctas + INFER] = ctas
    rig.a.host[REGION.launch_ctas + TRAIN] = 99   # a best-effort launch is no latency-critical demand
    assert rig.housekeeping(T_TICK) == 0
    assert rig.ctl[S.PLANE.lc_demand] == want
    # the baseline drains one SM per CTA; with no demand, the tenant's max_ctas
    assert drained(rig) == list(range(NUM_SMS - (want or 16), NUM_SMS))


def test_the_drain_holds_past_the_launch_then_clears(rig):
    lc_launch(rig, 1, 0)
    assert rig.housekeeping(T_TICK) == 0
    lc_launch(rig, 1, 1)  # finished: held for HOLD_NS after the last activity
    assert rig.housekeeping(2 * T_TICK) == 0
    assert len(drained(rig)) == 16
    assert rig.housekeeping(T_TICK + HOLD_NS - T_TICK // 2) == 0
    assert len(drained(rig)) == 16
    assert rig.housekeeping(T_TICK + HOLD_NS + T_TICK) == 0
    assert drained(rig) == [] and rig.tenant(TRAIN, S.TENANT.worker_sms) == NUM_SMS - 1


def test_the_control_ctas_sm_is_never_marked(rig):
    rig.ctl[S.PLANE.smid] = NUM_SMS - 1
    lc_launch(rig, 1, 0)
    assert rig.housekeeping(T_TICK) == 0
    assert drained(rig) == list(range(NUM_SMS - 16, NUM_SMS - 1))
    assert rig.a.host[HEADER.drained_sms] == 15
    assert rig.tenant(TRAIN, S.TENANT.worker_sms) == NUM_SMS - 16


def test_a_policy_range_past_the_last_sm_is_cut(rig):
    rig.swap_in("sm_tick", ".name wide\n.hook sm_tick\nstw [%r1+52], 130\nstw [%r1+56], 50\nmov %r0, 0\nexit\n", 99)
    assert rig.housekeeping(T_TICK) == 0
    assert drained(rig) == [130, 131]


def test_an_sm_mask_bounds_a_tenants_worker_sms(dev):
    r = Rig(dev)
    r.publish(DEMO.with_fields("train", sms=[0, 1, 2, "125-131"]))
    assert r.adopt(T_ADOPT) == 0
    # SM 0 is the control CTA's; 2 + 7 SMs are left
    assert r.tenant(TRAIN, S.TENANT.worker_sms) == 9
    lc_launch(r, 1, 0)
    assert r.housekeeping(T_TICK) == 0
    assert r.tenant(TRAIN, S.TENANT.worker_sms) == 2  # 125-131 are drained
