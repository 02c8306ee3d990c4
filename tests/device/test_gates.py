"""Worker gates (gbpfd.device.gates) on the CPU target, on fresh plane arrays:
each step's effect on the words the control CTA and the other workers read."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbpfd.device import state as S
from gbpfd.device.build import for_cpu
from gbpfd.device.gates import counter_word, sm_tenant_word, sm_word, slot_word, tenant_word
from gbpfd.plane import arrays as A

NOW = 5_000
SM = 5  # the SM the requesting CTAs run on


@pytest.fixture(scope="module")
def dev():
    return for_cpu()


@pytest.fixture
def a():
    arrays = A.allocate()
    A.initialise(arrays, A.Periods(), wait_bound_ns=2_000_000, active_window_ns=1_000_000, sample_every=0)
    return arrays


def tenant(a, t, field):
    return int(a.ctl[tenant_word(t, field)])


def counter(a, t, field):
    return int(a.flat[counter_word(t, field)])


def slot(a, s, field):
    return int(a.ctl[slot_word(s, field)])


# ------------------------------------------------------------------ tokens

def test_token_fast_path_takes_exactly_one_token(dev, a):
    a.ctl[tenant_word(2, S.TENANT.tokens)] = 3
    assert dev.try_token(a.ctl, 2, NOW)
    assert tenant(a, 2, S.TENANT.tokens) == 2
    assert tenant(a, 2, S.TENANT.running) == 1
    assert int(a.ctl[S.PLANE.total_running]) == 1
    assert counter(a, 2, S.COUNTER.admitted) == 0  # counted when the worker starts a block (count_block)
    assert int(a.ctl[S.PLANE.fast_grants]) == 1
    assert tenant(a, 2, S.TENANT.last_demand_ns) == NOW
    # the other tenants are untouched
    assert tenant(a, 1, S.TENANT.running) == 0 and counter(a, 1, S.COUNTER.admitted) == 0


@pytest.mark.parametrize("tokens", [0, -2])
def test_no_token_refuses_and_leaves_tokens(dev, a, tokens):
    a.ctl[tenant_word(0, S.TENANT.tokens)] = tokens
    assert not dev.try_token(a.ctl, 0, NOW)
    assert tenant(a, 0, S.TENANT.tokens) == tokens
    assert tenant(a, 0, S.TENANT.running) == 0
    assert int(a.ctl[S.PLANE.total_running]) == 0
    assert counter(a, 0, S.COUNTER.admitted) == 0
    assert int(a.ctl[S.PLANE.fast_grants]) == 0
    # the demand is noted even when refused: it keeps the tenant in the fair share
    assert tenant(a, 0, S.TENANT.last_demand_ns) == NOW


def test_global_cap_blocks_the_fast_path(dev, a):
    a.ctl[tenant_word(0, S.TENANT.tokens)] = 5
    a.ctl[S.PLANE.global_cta_cap] = 2
    a.ctl[S.PLANE.total_running] = 2
    assert not dev.try_token(a.ctl, 0, NOW)
    assert tenant(a, 0, S.TENANT.tokens) == 5
    assert int(a.ctl[S.PLANE.total_running]) == 2
    a.ctl[S.PLANE.total_running] = 1
    assert dev.try_token(a.ctl, 0, NOW)
    assert tenant(a, 0, S.TENANT.tokens) == 4


def test_tokens_run_out_after_exactly_that_many_grants(dev, a):
    a.ctl[tenant_word(1, S.TENANT.tokens)] = 4
    grants = [bool(dev.try_token(a.ctl, 1, NOW + i)) for i in range(7)]
    assert grants == [True] * 4 + [False] * 3
    assert tenant(a, 1, S.TENANT.tokens) == 0
    assert tenant(a, 1, S.TENANT.running) == 4


# ------------------------------------------------------------ request slots

def test_post_request_claims_distinct_slots_until_all_are_taken(dev, a):
    slots = [int(dev.post_request(a.ctl, 3, SM, NOW + i)) for i in range(S.NSLOTS)]
    assert sorted(slots) == list(range(S.NSLOTS))
    for i, s in enumerate(slots):
        assert slot(a, s, S.SLOT.state) == S.POSTED
        assert slot(a, s, S.SLOT.tenant) == 3
        assert slot(a, s, S.SLOT.post_ns) == NOW + i
    assert tenant(a, 3, S.TENANT.queued) == S.NSLOTS
    assert dev.post_request(a.ctl, 3, SM, NOW) == -1
    assert dev.post_request(a.ctl, 4, SM, NOW) == -1
    assert tenant(a, 3, S.TENANT.queued) == S.NSLOTS
    assert tenant(a, 4, S.TENANT.queued) == 0


def test_poll_before_a_decision_returns_minus_one(dev, a):
    s = dev.post_request(a.ctl, 0, SM, NOW)
    assert s >= 0
    assert dev.poll_request(a.ctl, s) == -1
    assert slot(a, s, S.SLOT.state) == S.POSTED


def test_poll_after_a_decision_returns_it_once_and_frees_the_slot(dev, a):
    s = dev.post_request(a.ctl, 0, SM, NOW)
    assert dev.serve_slot(s, NOW + 100, *a.device_args()) == 1  # no program: admit
    assert dev.poll_request(a.ctl, s) == S.ADMIT
    assert slot(a, s, S.SLOT.state) == S.FREE
    assert dev.poll_request(a.ctl, s) == -1


def test_abandon_before_the_control_cta_serves_withdraws_the_request(dev, a):
    s = dev.post_request(a.ctl, 1, SM, NOW)
    assert tenant(a, 1, S.TENANT.queued) == 1
    assert dev.abandon_request(a.ctl, s) == -1
    assert slot(a, s, S.SLOT.state) == S.FREE
    assert tenant(a, 1, S.TENANT.queued) == 0
    # the control CTA then finds nothing to decide
    assert dev.serve_slot(s, NOW + 100, *a.device_args()) == 0
    assert counter(a, 1, S.COUNTER.admitted) == 0 and counter(a, 1, S.COUNTER.deferred) == 0
    assert tenant(a, 1, S.TENANT.running) == 0


def test_abandon_after_an_admission_returns_it_never_granted_and_bypassed(dev, a):
    s = dev.post_request(a.ctl, 1, SM, NOW)
    assert dev.serve_slot(s, NOW + 100, *a.device_args()) == 1
    assert dev.abandon_request(a.ctl, s) == S.ADMIT
    assert slot(a, s, S.SLOT.state) == S.FREE
    assert counter(a, 1, S.COUNTER.bypassed) == 0
    assert tenant(a, 1, S.TENANT.running) == 1  # counted once, by the control CTA
    assert tenant(a, 1, S.TENANT.queued) == 0


def test_abandon_while_the_control_cta_decides_takes_the_admission_back(dev, a):
    """The worker gives up between the control CTA's claim and its decision:
    the request ends bypassed, the admission is taken back, the slot freed."""
    s = dev.post_request(a.ctl, 1, SM, NOW)
    a.ctl[slot_word(s, S.SLOT.state)] = S.SERVING  # the control CTA claimed it (serve_slot's first step)
    assert dev.abandon_request(a.ctl, s) == -1
    assert slot(a, s, S.SLOT.state) == S.ABANDONED
    dev.decide_claimed(s, NOW + 100, *a.device_args())  # no program: it would admit
    assert slot(a, s, S.SLOT.state) == S.FREE
    assert tenant(a, 1, S.TENANT.running) == 0 and int(a.ctl[S.PLANE.total_running]) == 0
    assert counter(a, 1, S.COUNTER.deferred) == 0
    assert tenant(a, 1, S.TENANT.queued) == 0
    assert dev.post_request(a.ctl, 1, SM, NOW + 200) >= 0  # the slot is usable again


def test_abandon_after_a_deferral_returns_it(dev, a):
    a.ctl[S.PLANE.global_cta_cap] = 0  # the control CTA defers without running a policy
    s = dev.post_request(a.ctl, 1, SM, NOW)
    assert dev.serve_slot(s, NOW + 100, *a.device_args()) == 1
    assert dev.abandon_request(a.ctl, s) == S.DEFER
    assert slot(a, s, S.SLOT.state) == S.FREE
    assert counter(a, 1, S.COUNTER.deferred) == 1
    assert tenant(a, 1, S.TENANT.running) == 0


def test_a_freed_slot_is_claimed_again(dev, a):
    slots = [dev.post_request(a.ctl, 0, SM, NOW) for _ in range(S.NSLOTS)]
    assert dev.post_request(a.ctl, 0, SM, NOW) == -1
    dev.abandon_request(a.ctl, slots[17])
    assert dev.post_request(a.ctl, 5, SM, NOW + 1) == slots[17]
    assert slot(a, slots[17], S.SLOT.tenant) == 5


# ------------------------------------------------------------ enter / leave

def test_bypass_runs_the_cta_and_counts_it(dev, a):
    assert dev.bypass(a.ctl, a.flat, 4) == S.ENTER_BYPASS
    assert counter(a, 4, S.COUNTER.bypassed) == 1
    assert counter(a, 4, S.COUNTER.admitted) == 0
    assert int(a.ctl[S.PLANE.bypassed]) == 1
    assert tenant(a, 4, S.TENANT.running) == 1
    assert int(a.ctl[S.PLANE.total_running]) == 1


@pytest.mark.parametrize("how,limit,token_back", [
    (S.ENTER_TOKEN, 9, 1), (S.ENTER_POLICY, 9, 1),   # 1 running + 7 held stays under 9: handed on
    (S.ENTER_TOKEN, 8, 0), (S.ENTER_POLICY, 8, 0),   # one more would reach the limit: retired
    (S.ENTER_TOKEN, 0, 0),                           # tick said at or over the allowance: retired
    (S.ENTER_BYPASS, 9, 0),                          # a bypass never held a token
])
def test_cta_exit_hands_a_token_on_only_under_the_token_limit(dev, a, how, limit, token_back):
    dev.note_running(a.ctl, 0, 1)
    dev.note_running(a.ctl, 0, 1)
    a.ctl[tenant_word(0, S.TENANT.tokens)] = 7
    a.ctl[tenant_word(0, S.TENANT.token_limit)] = limit
    dev.cta_exit(a.ctl, 0, how)
    assert tenant(a, 0, S.TENANT.tokens) == 7 + token_back
    assert tenant(a, 0, S.TENANT.running) == 1
    assert int(a.ctl[S.PLANE.total_running]) == 1


@pytest.mark.parametrize("how,admitted", [(S.ENTER_TOKEN, 1), (S.ENTER_POLICY, 1), (S.ENTER_BYPASS, 0)])
def test_count_block_counts_admitted_blocks(dev, a, how, admitted):
    dev.count_block(a.flat, 3, how)
    assert counter(a, 3, S.COUNTER.admitted) == admitted
    assert counter(a, 3, S.COUNTER.bypassed) == 0  # bypass() counts those, once


def quota(a, t, **fields):
    """Write tenant ``t``'s quota record fields (by name) into the flat region, as an adopted snapshot would."""
    for name, value in fields.items():
        at = S.QUOTA_AT + t * S.QUOTA_RECORD_BYTES + getattr(S.QUOTA, name)
        a.flat8[at:at + getattr(S.QUOTA_SIZE, name)] = list(int(value).to_bytes(getattr(S.QUOTA_SIZE, name), "little"))


def test_workers_are_counted_per_tenant_and_per_sm(dev, a):
    quota(a, 1, klass=1)  # latency-critical: not a best-effort worker on its SM
    assert dev.worker_arrives(a.ctl, a.flat, 2, SM) == 1
    assert dev.worker_arrives(a.ctl, a.flat, 2, SM) == 1
    assert dev.worker_arrives(a.ctl, a.flat, 1, SM) == 0
    dev.worker_leaves(a.ctl, 2, SM, 1, NOW)
    assert tenant(a, 2, S.TENANT.workers) == 1 and tenant(a, 1, S.TENANT.workers) == 1
    assert int(a.ctl[sm_tenant_word(SM, 2)]) == 1 and int(a.ctl[sm_tenant_word(SM, 1)]) == 1
    assert int(a.ctl[sm_word(SM, S.SM.be_workers)]) == 1
    assert int(a.ctl[sm_word(SM + 1, S.SM.be_workers)]) == 0


def mark(a, sm: int, ns: int) -> None:
    """What the control CTA's apply_sm writes when it drains ``sm``."""
    a.ctl[sm_word(sm, S.SM.drained_ns)] = ns
    a.ctl[sm_word(sm, S.SM.drain_open)] = 1
    a.ctl[sm_word(sm, S.SM.drained)] = 1


def test_a_best_effort_worker_leaves_a_drained_sm_and_completes_the_drain(dev, a):
    be = dev.worker_arrives(a.ctl, a.flat, 0, SM)
    assert not dev.worker_must_leave(a.ctl, a.flat, 0, SM, be)
    mark(a, SM, NOW)
    assert dev.worker_must_leave(a.ctl, a.flat, 0, SM, be)
    assert counter(a, 0, S.COUNTER.drained) == 1
    dev.worker_leaves(a.ctl, 0, SM, be, NOW + 700)
    assert int(a.ctl[S.PLANE.drains]) == 1
    assert int(a.ctl[S.PLANE.drain_wait_sum_ns]) == 700 and int(a.ctl[S.PLANE.drain_wait_max_ns]) == 700


def test_a_worker_landing_on_an_sm_already_drained_is_no_second_drain(dev, a):
    mark(a, SM, NOW)
    dev.worker_leaves(a.ctl, 0, SM, dev.worker_arrives(a.ctl, a.flat, 0, SM), NOW + 700)
    late = dev.worker_arrives(a.ctl, a.flat, 0, SM)   # a top-up's worker, placed on the empty SM
    assert dev.worker_must_leave(a.ctl, a.flat, 0, SM, late)
    dev.worker_leaves(a.ctl, 0, SM, late, NOW + 90_000)
    assert int(a.ctl[S.PLANE.drains]) == 1 and int(a.ctl[S.PLANE.drain_wait_max_ns]) == 700
    assert counter(a, 0, S.COUNTER.drained) == 1   # the late one left (the first was never asked to)


def test_the_drain_completes_only_when_the_last_best_effort_worker_leaves(dev, a):
    mark(a, SM, NOW)
    be = [dev.worker_arrives(a.ctl, a.flat, t, SM) for t in (0, 3)]
    dev.worker_leaves(a.ctl, 0, SM, be[0], NOW)
    assert int(a.ctl[S.PLANE.drains]) == 0
    dev.worker_leaves(a.ctl, 3, SM, be[1], NOW + 10)
    assert int(a.ctl[S.PLANE.drains]) == 1


def test_a_latency_critical_worker_stays_on_a_drained_sm(dev, a):
    quota(a, 1, klass=1)
    be = dev.worker_arrives(a.ctl, a.flat, 1, SM)
    a.ctl[sm_word(SM, S.SM.drained)] = 1
    assert not dev.worker_must_leave(a.ctl, a.flat, 1, SM, be)
    assert counter(a, 1, S.COUNTER.drained) == 0


@pytest.mark.parametrize("sm,stays", [(SM, True), (SM + 1, False), (70, True), (130, False)])
def test_a_worker_outside_its_tenants_sm_mask_leaves(dev, a, sm, stays):
    quota(a, 0, sm_mask0=1 << SM, sm_mask1=1 << (70 - 64))
    be = dev.worker_arrives(a.ctl, a.flat, 0, sm)
    assert dev.worker_must_leave(a.ctl, a.flat, 0, sm, be) is not stays


def test_an_empty_sm_mask_allows_every_sm(dev, a):
    for sm in (0, 63, 64, 191):
        assert not dev.worker_must_leave(a.ctl, a.flat, 0, sm, 1)


def test_workers_over_the_per_sm_cap_leave(dev, a):
    quota(a, 0, max_ctas_per_sm=2)
    be = [dev.worker_arrives(a.ctl, a.flat, 0, SM) for _ in range(2)]
    assert not dev.worker_must_leave(a.ctl, a.flat, 0, SM, be[0])
    dev.worker_arrives(a.ctl, a.flat, 0, SM)
    assert dev.worker_must_leave(a.ctl, a.flat, 0, SM, be[0])


def test_the_block_length_mean_moves_an_eighth_of_the_way(dev, a):
    dev.note_block_ns(a.ctl, 4, 800)
    assert tenant(a, 4, S.TENANT.block_ns) == 800  # the first sample is the mean
    dev.note_block_ns(a.ctl, 4, 1600)
    assert tenant(a, 4, S.TENANT.block_ns) == 900


def test_a_request_carries_its_sm(dev, a):
    s = dev.post_request(a.ctl, 2, 17, NOW)
    assert slot(a, s, S.SLOT.sm) == 17


# --------------------------------------------------------------- paced copy

def test_dma_take_with_enough_tokens(dev, a):
    a.ctl[tenant_word(2, S.TENANT.dma_tokens)] = 1000
    dev.dma_announce(a.ctl, 2, 600)
    assert tenant(a, 2, S.TENANT.dma_pending) == 600
    assert dev.dma_take(a.ctl, a.flat, 2, 600)
    assert tenant(a, 2, S.TENANT.dma_tokens) == 400
    assert tenant(a, 2, S.TENANT.dma_moved) == 600
    assert tenant(a, 2, S.TENANT.dma_pending) == 0
    assert counter(a, 2, S.COUNTER.dma_bytes) == 600


def test_dma_take_of_exactly_the_tokens_left(dev, a):
    a.ctl[tenant_word(2, S.TENANT.dma_tokens)] = 256
    assert dev.dma_take(a.ctl, a.flat, 2, 256)
    assert tenant(a, 2, S.TENANT.dma_tokens) == 0


def test_dma_take_without_enough_tokens_changes_nothing(dev, a):
    a.ctl[tenant_word(2, S.TENANT.dma_tokens)] = 400
    dev.dma_announce(a.ctl, 2, 600)
    assert not dev.dma_take(a.ctl, a.flat, 2, 600)
    assert tenant(a, 2, S.TENANT.dma_tokens) == 400
    assert tenant(a, 2, S.TENANT.dma_moved) == 0
    assert tenant(a, 2, S.TENANT.dma_pending) == 600
    assert counter(a, 2, S.COUNTER.dma_bytes) == 0


# -------------------------------------------------------------------- warps

def test_warp_enter_respects_the_warp_cap(dev, a):
    a.ctl[tenant_word(1, S.TENANT.warp_cap)] = 2
    assert [bool(dev.warp_enter(a.ctl, 1)) for _ in range(3)] == [True, True, False]
    assert tenant(a, 1, S.TENANT.warps_active) == 2
    dev.warp_leave(a.ctl, 1)
    assert tenant(a, 1, S.TENANT.warps_active) == 1
    assert dev.warp_enter(a.ctl, 1)
    assert not dev.warp_enter(a.ctl, 1)


def test_warp_cap_zero_admits_no_warp(dev, a):
    assert not dev.warp_enter(a.ctl, 0)
    assert tenant(a, 0, S.TENANT.warps_active) == 0


def test_warp_throttled_accounts_waiting_and_wait_time(dev, a):
    dev.warp_throttled(a.ctl, a.flat, 3, 0, 1)
    assert tenant(a, 3, S.TENANT.warps_waiting) == 1
    dev.warp_throttled(a.ctl, a.flat, 3, 1500, -1)
    assert tenant(a, 3, S.TENANT.warps_waiting) == 0
    assert counter(a, 3, S.COUNTER.throttled_ns) == 1500


# ------------------------------------------------------------------ property

@settings(max_examples=40, deadline=None)
@given(tokens=st.integers(0, 8), steps=st.lists(st.sampled_from(["enter", "exit"]), max_size=30))
def test_token_entries_conserve_tokens_plus_running(tokens, steps):
    """Under the limit the tick set, whatever the order of entries and exits
    by token, tokens + running stays what the tick gave."""
    dev = for_cpu()
    a = A.allocate()
    A.initialise(a, A.Periods(), wait_bound_ns=1, active_window_ns=1, sample_every=0)
    a.ctl[tenant_word(0, S.TENANT.tokens)] = tokens
    a.ctl[tenant_word(0, S.TENANT.token_limit)] = tokens
    running = 0
    for step in steps:
        if step == "enter":
            running += bool(dev.try_token(a.ctl, 0, NOW))
        elif running:
            dev.cta_exit(a.ctl, 0, S.ENTER_TOKEN)
            running -= 1
        assert tenant(a, 0, S.TENANT.running) == running
        assert tenant(a, 0, S.TENANT.tokens) + running == tokens
        assert 0 <= tenant(a, 0, S.TENANT.tokens)


@settings(max_examples=40, deadline=None)
@given(running=st.integers(1, 12), limit=st.integers(0, 12), steps=st.lists(st.sampled_from(["enter", "exit"]),
                                                                            max_size=40))
def test_a_lowered_limit_only_brings_tokens_plus_running_down(running, limit, steps):
    """A tenant that tick found over its allowance: no exit hands a token on
    that would keep it over, so tokens + running never grows, and once every
    CTA of the old level has left it is within the limit."""
    dev = for_cpu()
    a = A.allocate()
    A.initialise(a, A.Periods(), wait_bound_ns=1, active_window_ns=1, sample_every=0)
    for _ in range(running):
        dev.note_running(a.ctl, 0, 1)
    a.ctl[tenant_word(0, S.TENANT.token_limit)] = limit
    level = running
    for step in steps + ["exit"] * (running + len(steps)):
        if step == "enter":
            running += bool(dev.try_token(a.ctl, 0, NOW))
        elif running:
            dev.cta_exit(a.ctl, 0, S.ENTER_TOKEN)
            running -= 1
        now_level = tenant(a, 0, S.TENANT.tokens) + running
        assert now_level <= max(level, limit)
        level = now_level
    assert level <= limit


def test_requests_posted_at_timer_steps_start_at_every_slot(dev, a):
    """%globaltimer moves in 32 ns steps (or coarser): the first slot a
    request tries must still spread over all of them, or requests collide."""
    firsts = set()
    for k in range(4 * S.NSLOTS):
        s = int(dev.post_request(a.ctl, 1, SM, NOW + 32 * k))
        firsts.add(s)
        a.ctl[slot_word(s, S.SLOT.state)] = S.FREE
    assert len(firsts) == S.NSLOTS
