"""The baseline policy: both forms (baseline.o from baseline.bpf.c, and the
baseline_<hook>.s files) verify, the committed object matches its source,
and both forms behave like the Python model below, on hand-picked cases and
on generated contexts and quota records.

``GBPFD_BASELINE_EXAMPLES`` sets the generated examples per hook (default 60).
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbpfd.isa.abi import HOOKS, LIMITS, RECORDS
from gbpfd.isa.elf import list_programs, load_elf
from gbpfd.policies.catalog import (BASELINE_FORMS, BASELINE_HOOKS, BASELINE_OBJECT, baseline_programs,
                                    policy_path)
from gbpfd.verifier import verify
from gbpfd.vm import status
from gbpfd.vm.memory import RID_CTX, address, build_memory
from gbpfd.vm.reference import run

EXAMPLES = int(os.environ.get("GBPFD_BASELINE_EXAMPLES", "60"))
CLANG_14 = shutil.which("clang-14")
U32_MAX, U64_MAX = (1 << 32) - 1, (1 << 64) - 1
QUOTA = RECORDS["quota"]
# Every quota record but the tenant's is filled with this byte, so a program
# that reads the wrong record gets numbers the model does not expect.
OTHER_RECORDS_BYTE = 0xA5
HOLD_NS = 20_000_000  # baseline.bpf.c: how long SMs stay drained after the last latency-critical activity


@functools.cache
def programs(form: str):
    return baseline_programs(form)


# ------------------------------------------------------------------ the model

def allowance(ctx: dict, quota: dict | None) -> int:
    if quota is None:
        return 0
    if quota["class"] == 1:
        return quota["max_ctas"]
    pool = max(ctx["total_slots"] - ctx["lc_reserved"], 0)
    share = pool * quota["weight"] // ctx["be_weight_sum"] if ctx["be_weight_sum"] else pool
    return min(max(share, 1) + quota["burst"], quota["max_ctas"])


def model(hook: str, ctx: dict, quota: dict | None) -> tuple[int, dict]:
    """(r0, ctx afterwards) as the baseline policy defines them."""
    after = dict(ctx)
    if hook == "tick":
        after["cta_tokens"] = max(allowance(ctx, quota) - ctx["running_ctas"], 0)
        return 0, after
    if hook == "cta_admit":
        return int(ctx["running_ctas"] + ctx["cta_tokens"] < allowance(ctx, quota)), after
    if hook == "dma_tick":
        per = quota["dma_bytes_per_epoch"] if quota else 0
        # The exact sums, clamped: the programs saturate rather than wrap.
        after["dma_tokens"] = min(ctx["dma_tokens"] + per, 2 * per, U64_MAX) if quota else 0
        return 0, after
    if hook == "warp_throttle_tick":
        after["warp_cap"] = quota["warp_cap"] if quota else 0
        return 0, after
    if hook == "sm_tick":
        held = ctx["lc_active"] or ctx["lc_idle_ns"] < HOLD_NS
        demand = ctx["lc_demand"] or ctx["lc_reserved"]
        count = min(demand, ctx["num_sms"] // 2) if held else 0
        after["drain_first"], after["drain_count"] = (ctx["num_sms"] - count if count else 0), count
        return 0, after
    raise AssertionError(f"no model for hook {hook!r}")


def record_of(ctx: dict, quota: dict) -> dict | None:
    """The tenant's record as the policy sees it: None when it has none."""
    in_map = ctx.get("tenant", 0) < LIMITS.max_tenants
    return quota if in_map and quota["present"] != 0 else None


# ------------------------------------------------------------------ running a program

def pack(fields, values: dict, size: int) -> bytes:
    data = bytearray(size)
    for f in fields:
        data[f.offset:f.offset + f.size] = values.get(f.name, 0).to_bytes(f.size, "little")
    return bytes(data)


def unpack(fields, data) -> dict:
    return {f.name: int.from_bytes(bytes(data[f.offset:f.offset + f.size]), "little") for f in fields}


def quota_snapshot(tenant: int, quota: dict) -> bytes:
    snapshot = bytearray([OTHER_RECORDS_BYTE]) * (QUOTA.size * LIMITS.max_tenants)
    if tenant < LIMITS.max_tenants:
        record = pack(QUOTA.fields, quota, QUOTA.size)
        snapshot[tenant * QUOTA.size:(tenant + 1) * QUOTA.size] = record
    return bytes(snapshot)


def run_policy(form: str, hook: str, ctx: dict, quota: dict) -> tuple[int, dict, bytes]:
    """(r0, ctx fields afterwards, ctx bytes afterwards) of one run on the reference VM."""
    program = programs(form)[hook]
    spec = HOOKS[hook]
    memory = build_memory(program.maps, ctx=pack(spec.ctx, ctx, spec.ctx_size),
                          quota=quota_snapshot(ctx.get("tenant", 0), quota))
    result = run(program, memory, args=(address(RID_CTX, 0),), fuel=spec.budget)
    assert result.status == status.OK, (
        f"{program.name} faulted: {status.REASONS[result.status]} at slot {result.pc}")
    ctx_after = bytes(memory.region(RID_CTX))
    return result.r0, unpack(spec.ctx, ctx_after), ctx_after


def assert_forms_match_model(hook: str, ctx: dict, quota: dict) -> None:
    spec = HOOKS[hook]
    want_r0, want_ctx = model(hook, ctx, record_of(ctx, quota))
    outcomes = {form: run_policy(form, hook, ctx, quota) for form in BASELINE_FORMS}
    (c_r0, c_fields, c_bytes), (asm_r0, _, asm_bytes) = outcomes["c"], outcomes["asm"]
    assert (c_r0, c_bytes) == (asm_r0, asm_bytes), f"the C and asm forms differ on {ctx} {quota}"
    assert (c_r0, c_fields) == (want_r0, want_ctx)
    assert c_bytes == pack(spec.ctx, want_ctx, spec.ctx_size)


# ------------------------------------------------------------------ loading and verifying

@pytest.mark.parametrize("form", BASELINE_FORMS)
@pytest.mark.parametrize("hook", BASELINE_HOOKS)
def test_each_form_verifies_for_its_hook(form, hook):
    program = programs(form)[hook]
    assert program.hook == hook
    verdict = verify(program, hook)
    assert verdict.accepted, "\n".join(verdict.log)
    assert verdict.cost <= HOOKS[hook].budget


def test_program_names_say_their_form():
    assert {form: [p.name for p in programs(form).values()] for form in BASELINE_FORMS} == {
        "c": ["baseline_tick[c]", "baseline_admit[c]", "baseline_dma[c]", "baseline_warp[c]", "baseline_sm[c]"],
        "asm": ["baseline_tick[asm]", "baseline_admit[asm]", "baseline_dma[asm]", "baseline_warp[asm]",
                "baseline_sm[asm]"],
    }


def test_object_has_one_section_per_baseline_hook_and_no_therm_tick():
    assert list_programs(policy_path(BASELINE_OBJECT)) == list(BASELINE_HOOKS)


def test_unknown_form_is_refused():
    with pytest.raises(ValueError) as err:
        baseline_programs("rust")
    assert str(err.value) == "baseline_programs: form='rust' is not one of 'c', 'asm'"


@pytest.mark.skipif(CLANG_14 is None, reason="clang-14 is not installed: cannot rebuild baseline.o")
def test_committed_object_is_up_to_date_with_its_source(tmp_path):
    fresh_path = tmp_path / BASELINE_OBJECT
    subprocess.run([CLANG_14, "-O2", "-g", "-target", "bpf", "-I", str(policy_path("")), "-c",
                    str(policy_path("baseline.bpf.c")), "-o", str(fresh_path)], check=True, capture_output=True)
    committed_path = policy_path(BASELINE_OBJECT)
    assert list_programs(fresh_path) == list_programs(committed_path)
    for section in list_programs(committed_path):
        fresh, committed = load_elf(fresh_path, section), load_elf(committed_path, section)
        assert (fresh.insns, fresh.maps, fresh.hook, fresh.name) == (
            committed.insns, committed.maps, committed.hook, committed.name), (
            f"section {section!r} of {committed_path} is stale: rebuild it from baseline.bpf.c")


# ------------------------------------------------------------------ hand-picked cases

def be_quota(weight: int, max_ctas: int = 1000, burst: int = 0) -> dict:
    return {"weight": weight, "class": 0, "max_ctas": max_ctas, "warp_cap": 0, "dma_bytes_per_epoch": 0,
            "burst": burst, "present": 1}


def lc_quota(max_ctas: int) -> dict:
    return {**be_quota(0, max_ctas), "class": 1}


def slots_ctx(total_slots=100, lc_reserved=16, be_weight_sum=4, running_ctas=0, tenant=3) -> dict:
    return {"tenant": tenant, "total_slots": total_slots, "lc_reserved": lc_reserved,
            "be_weight_sum": be_weight_sum, "running_ctas": running_ctas, "cta_tokens": 7, "sm": 9}


ALLOWANCE_CASES = {
    # 100 slots less 16 held for latency-critical tenants, weights 3 and 1 active
    "weight 3 of 4": (slots_ctx(), be_quota(3), 63),
    "weight 1 of 4": (slots_ctx(), be_quota(1), 21),
    "burst on top of the share": (slots_ctx(), be_quota(1, burst=5), 26),
    "max_ctas caps share and burst": (slots_ctx(), be_quota(1, max_ctas=24, burst=5), 24),
    "latency-critical: its cap, whatever the slots": (slots_ctx(total_slots=4), lc_quota(8), 8),
    "no active best-effort weight: the whole pool": (slots_ctx(be_weight_sum=0), be_quota(0), 84),
    "reservation takes every slot: one CTA": (slots_ctx(lc_reserved=200), be_quota(3), 1),
    "a tiny weight still gets one CTA": (slots_ctx(be_weight_sum=1000), be_quota(1), 1),
    "max_ctas 0 admits nothing": (slots_ctx(), be_quota(3, max_ctas=0), 0),
    "no record: fail closed": (slots_ctx(), {**be_quota(3), "present": 0}, 0),
    "tenant outside the quota map": (slots_ctx(tenant=LIMITS.max_tenants), be_quota(3), 0),
    "pool * weight past 2^32: a 64-bit share": (
        slots_ctx(total_slots=U32_MAX, lc_reserved=0), be_quota(3, U32_MAX), U32_MAX * 3 // 4),
    "largest weight, slots and cap": (
        slots_ctx(total_slots=U32_MAX, lc_reserved=0, be_weight_sum=U32_MAX), be_quota(U32_MAX, U32_MAX), U32_MAX),
}


def running_counts(allowed: int) -> list[int]:
    """Just under, at and just over the allowance, within a u32."""
    return sorted({0, max(allowed - 1, 0), allowed, min(allowed + 1, U32_MAX)})


@pytest.mark.parametrize("form", BASELINE_FORMS)
@pytest.mark.parametrize("case", ALLOWANCE_CASES, ids=list(ALLOWANCE_CASES))
def test_tick_refills_to_the_allowance(form, case):
    ctx, quota, allowed = ALLOWANCE_CASES[case]
    for running in running_counts(allowed):
        r0, after, _ = run_policy(form, "tick", {**ctx, "running_ctas": running}, quota)
        assert (r0, after["cta_tokens"]) == (0, max(allowed - running, 0)), f"running {running}"


@pytest.mark.parametrize("form", BASELINE_FORMS)
@pytest.mark.parametrize("case", ALLOWANCE_CASES, ids=list(ALLOWANCE_CASES))
@pytest.mark.parametrize("tokens", [0, 7])
def test_cta_admit_admits_while_running_plus_tokens_is_below_the_allowance(form, case, tokens):
    """Tokens left are a claim on the same slots: admitting past them would pass the allowance."""
    ctx, quota, allowed = ALLOWANCE_CASES[case]
    for running in running_counts(allowed):
        r0, after, _ = run_policy(form, "cta_admit", {**ctx, "running_ctas": running, "cta_tokens": tokens}, quota)
        assert r0 == int(running + tokens < allowed), f"running {running}"


DMA_CASES = {
    "first epoch": (0, 1000, 1000),
    "banks a second epoch": (1500, 1000, 2000),
    "never more than two epochs": (5000, 1000, 2000),
    "no quota bytes drain the bank": (5000, 0, 0),
    "a ceiling past 2^64 saturates instead of wrapping to 0": (0, 1 << 63, 1 << 63),
    "a full bank past 2^64 saturates": (U64_MAX, 1 << 63, U64_MAX),
    "tokens past 2^64 saturate, then the ceiling caps": (U64_MAX, 1, 2),
}


@pytest.mark.parametrize("form", BASELINE_FORMS)
@pytest.mark.parametrize("case", DMA_CASES, ids=list(DMA_CASES))
def test_dma_tick_banks_at_most_two_epochs(form, case):
    tokens, per, want = DMA_CASES[case]
    quota = {**be_quota(1), "dma_bytes_per_epoch": per}
    r0, after, _ = run_policy(form, "dma_tick", {"tenant": 5, "dma_tokens": tokens}, quota)
    assert (r0, after["dma_tokens"]) == (0, want)


@pytest.mark.parametrize("form", BASELINE_FORMS)
def test_dma_tick_without_a_record_drops_the_bank(form):
    quota = {**be_quota(1), "dma_bytes_per_epoch": 1000, "present": 0}
    r0, after, _ = run_policy(form, "dma_tick", {"tenant": 5, "dma_tokens": 1234}, quota)
    assert (r0, after["dma_tokens"]) == (0, 0)


@pytest.mark.parametrize("form", BASELINE_FORMS)
@pytest.mark.parametrize("present, tenant, want", [(1, 5, 48), (0, 5, 0), (1, LIMITS.max_tenants, 0)])
def test_warp_throttle_tick_copies_the_quota_warp_cap(form, present, tenant, want):
    quota = {**be_quota(1), "warp_cap": 48, "present": present}
    r0, after, _ = run_policy(form, "warp_throttle_tick", {"tenant": tenant, "warp_cap": 99}, quota)
    assert (r0, after["warp_cap"]) == (0, want)


SM_CASES = {   # lc_active, lc_idle_ns, lc_reserved, lc_demand, num_sms: (drain_first, drain_count)
    "no launch announced yet: the tenants' max_ctas SMs, the last ones": (1, 0, 16, 0, 132, (116, 16)),
    "a launch of 8 CTAs announced: 8 SMs": (1, 0, 16, 8, 132, (124, 8)),
    "idle, within the hold": (0, HOLD_NS - 1, 16, 8, 132, (124, 8)),
    "idle for the hold: nothing drained": (0, HOLD_NS, 16, 8, 132, (0, 0)),
    "never active (the plane starts lc_idle_ns huge)": (0, 1 << 62, 16, 0, 132, (0, 0)),
    "no latency-critical slots: nothing drained": (2, 0, 0, 0, 132, (0, 0)),
    "at most half the SMs": (1, 0, 500, 0, 132, (66, 66)),
    "at most half the SMs, by demand too": (1, 0, 500, 400, 132, (66, 66)),
}


@pytest.mark.parametrize("form", BASELINE_FORMS)
@pytest.mark.parametrize("case", SM_CASES, ids=list(SM_CASES))
def test_sm_tick_drains_the_last_sms_while_latency_critical_work_is_near(form, case):
    active, idle, reserved, demand, sms, want = SM_CASES[case]
    ctx = {"lc_active": active, "lc_idle_ns": idle, "lc_reserved": reserved, "lc_demand": demand, "num_sms": sms,
           "drain_first": 7, "drain_count": 9}
    r0, after, _ = run_policy(form, "sm_tick", ctx, be_quota(1))
    assert (r0, (after["drain_first"], after["drain_count"])) == (0, want)


# ------------------------------------------------------------------ generated cases

def _values(bits: int, small: int):
    top = (1 << bits) - 1
    edges = [0, 1, 2, 3, top, top - 1, 1 << (bits - 1), (1 << (bits // 2)) - 1]
    return st.one_of(st.sampled_from(edges), st.integers(0, small), st.integers(0, top))


u32 = _values(32, 300)
u64 = _values(64, 1 << 20)
tenants = st.one_of(st.integers(0, LIMITS.max_tenants - 1), st.sampled_from([LIMITS.max_tenants, U32_MAX]))
quotas = st.fixed_dictionaries({
    "weight": u32, "class": st.one_of(st.sampled_from([0, 1]), u32), "max_ctas": u32, "warp_cap": u32,
    "dma_bytes_per_epoch": u64, "burst": u32, "present": st.one_of(st.sampled_from([0, 1]), u32)})


def contexts(hook: str):
    fields = {f.name: (u64 if f.size == 8 else u32) for f in HOOKS[hook].ctx}
    if "tenant" in fields:
        fields["tenant"] = tenants
    return st.fixed_dictionaries(fields)


@pytest.mark.parametrize("hook", BASELINE_HOOKS)
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_cases_match_the_model_in_both_forms(hook, data):
    assert_forms_match_model(hook, data.draw(contexts(hook), label="ctx"), data.draw(quotas, label="quota"))
