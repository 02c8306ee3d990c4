"""The plane's memory (gbpfd.plane.arrays): allocation, initial values,
staging a program into a slot, and installing the baseline."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gbpfd.bridge.layout import COMMAND_SLOTS, EVENT_SLOTS, HEADER, HOST_WORDS, MAGIC, REGION, RING
from gbpfd.device import state as S
from gbpfd.errors import LoadError
from gbpfd.isa import opids
from gbpfd.isa.abi import HOOKS, LIMITS
from gbpfd.isa.asm import assemble
from gbpfd.isa.load import load_program
from gbpfd.isa.program import MapDef
from gbpfd.plane import arrays as A
from gbpfd.policies.catalog import policy_path
from gbpfd.vm import memory as M
from gbpfd.vm.decoded import decode_program

TINY = assemble(".name tiny\n.hook tick\nmov %r0, 0\nexit\n")
TENANT_CAP = load_program(policy_path("tenant_cap.s"))  # one array map: value_size 8, 32 entries


@pytest.fixture
def a():
    return A.allocate()


def hook_index(hook: str) -> int:
    return S.HOOK_NAMES.index(hook)


def map_area(hook: str, slot: int) -> int:
    return S.MAPS_AT + (hook_index(hook) * S.NPROG_SLOTS + slot) * S.MAP_AREA_BYTES


# --------------------------------------------------------------- allocate

def test_allocate_shapes_and_types(a):
    assert a.ctl.shape == (S.CTL_WORDS,) and a.ctl.dtype == np.int64
    assert a.host.shape == (HOST_WORDS,) and a.host.dtype == np.int64
    assert a.code.shape == (S.NHOOKS, S.NPROG_SLOTS, S.MAX_INSNS, S.NCOLS) and a.code.dtype == np.int64
    assert a.flat.shape == (S.FLAT_WORDS,) and a.flat8.shape == (S.FLAT_BYTES,)
    assert a.desc.shape == (S.NHOOKS, S.NPROG_SLOTS, S.NRUNNERS, S.DESC_WORDS)
    assert a.regs.dtype == np.uint64 and a.frames.dtype == np.uint64
    assert a.vmout.shape == (S.NRUNNERS, S.VMOUT_WORDS)
    assert (a.code[..., 0] == opids.INVALID).all()
    assert not a.ctl.any() and not a.host.any() and not a.flat.any()


def test_flat8_is_a_byte_view_of_flat(a):
    a.flat8[8] = 0x2A
    assert a.flat[1] == 0x2A


def test_device_args_order(a):
    args = a.device_args()
    assert [x is y for x, y in zip(args, (a.ctl, a.host, a.code))] == [True] * 3
    assert args[3].base is a.flat or args[3].base is a.flat.base
    assert [x is y for x, y in zip(args[4:], (a.flat, a.desc, a.regs, a.frames, a.stack, a.vmout))] == [True] * 6


# ------------------------------------------------------------- initialise

def test_initialise_fills_the_plane_words(a):
    periods = A.Periods(tick_ns=1, dma_ns=2, warp_ns=3, therm_ns=4)
    A.initialise(a, periods, wait_bound_ns=5, active_window_ns=6, sample_every=7)
    assert (a.ctl[S.ACTIVE:S.ACTIVE + S.NHOOKS] == S.NO_PROGRAM).all()
    assert a.ctl[S.PLANE.global_cta_cap] > 10 ** 9
    assert [a.ctl[S.PLANE.tick_period_ns + k] for k in range(4)] == [1, 2, 3, 4]
    assert a.ctl[S.PLANE.wait_bound_ns] == 5
    assert a.ctl[S.PLANE.active_window_ns] == 6
    assert a.ctl[S.PLANE.sample_every] == 7
    assert a.host[HEADER.magic] == MAGIC
    assert a.host[REGION.command_ring + RING.slots] == COMMAND_SLOTS
    assert a.host[REGION.event_ring + RING.slots] == EVENT_SLOTS


def test_initialise_puts_every_tenant_outside_any_active_window(a):
    A.initialise(a, A.Periods(), wait_bound_ns=1, active_window_ns=1, sample_every=0)
    for t in range(LIMITS.max_tenants):
        last = int(a.ctl[S.TENANT_BASE + t * S.TENANT_STRIDE + S.TENANT.last_demand_ns])
        assert 0 - last > 10 ** 18
    # and nothing else in the tenant words
    assert a.ctl[S.TENANT_BASE + S.TENANT.tokens] == 0
    assert not a.ctl[S.SLOT_BASE:].any()


@pytest.mark.parametrize("field", ["tick_ns", "dma_ns", "warp_ns", "therm_ns"])
@pytest.mark.parametrize("value", [-1, 1.5, True])
def test_periods_refuse_what_is_not_a_count_of_ns(field, value):
    with pytest.raises(ValueError, match=rf"^Periods\.{field} must be an int >= 0 \(ns\), got {value!r}$"):
        A.Periods(**{field: value})


def test_periods_zero_disables():
    assert A.Periods(tick_ns=0).tick_ns == 0


# ---------------------------------------------------------- stage_program

def test_stage_program_writes_the_decoded_code(a):
    n = A.stage_program(a, "cta_admit", 1, TENANT_CAP)
    assert n == len(TENANT_CAP.insns)
    h = hook_index("cta_admit")
    np.testing.assert_array_equal(a.code[h, 1, :n], decode_program(TENANT_CAP.insns)[:n])
    assert (a.code[h, 1, n:, 0] == opids.INVALID).all()
    # the other slots and hooks are untouched
    assert (a.code[h, 0, :, 0] == opids.INVALID).all() and (a.code[h, 2, :, 0] == opids.INVALID).all()
    assert (a.code[hook_index("tick"), :, :, 0] == opids.INVALID).all()
    assert not a.ctl.any()  # staging does not make a program active


def test_stage_program_region_tables(a):
    A.stage_program(a, "cta_admit", 0, TENANT_CAP)
    h = hook_index("cta_admit")
    for runner in range(S.NRUNNERS):
        d = a.desc[h, 0, runner]
        base, size, perm = d[S.D_BASE:S.D_SIZE], d[S.D_SIZE:S.D_PERM], d[S.D_PERM:S.D_MAP_RID]
        ctx = S.RUNNERS_AT + runner * S.RUNNER_BYTES
        assert (base[M.RID_CTX], size[M.RID_CTX], perm[M.RID_CTX]) == (
            ctx, HOOKS["cta_admit"].ctx_size, M.PERM_R | M.PERM_W)
        assert (base[M.RID_QUOTA], size[M.RID_QUOTA], perm[M.RID_QUOTA]) == (S.QUOTA_AT, S.QUOTA_BYTES, M.PERM_R)
        assert (base[M.RID_COUNTERS], perm[M.RID_COUNTERS]) == (S.COUNTERS_AT, M.PERM_R)
        # each runner's frames, one after another, in the stack array (shared memory on a GPU)
        for frame in range(LIMITS.max_call_depth):
            rid = M.RID_STACK0 + frame
            assert (base[rid], size[rid], perm[rid]) == ((runner * LIMITS.max_call_depth + frame) * LIMITS.stack_bytes,
                                                         LIMITS.stack_bytes, M.PERM_R | M.PERM_W | M.IN_LOCAL)
        # the state map: its own area, readable and writable
        rid = M.RID_MAP0
        assert (base[rid], size[rid], perm[rid]) == (map_area("cta_admit", 0), 8 * 32, M.PERM_R | M.PERM_W)
        assert d[S.D_NMAPS] == 1
        assert (d[S.D_MAP_RID], d[S.D_MAP_VALUE_SIZE], d[S.D_MAP_ENTRIES]) == (rid, 8, 32)
    # each runner has its own ctx, both runners share the maps
    assert a.desc[h, 0, 0, S.D_BASE + M.RID_CTX] != a.desc[h, 0, 1, S.D_BASE + M.RID_CTX]


def test_quota_maps_alias_the_quota_region(a):
    program = assemble(".hook tick\n.map quota quota\nmov %r0, 0\nexit\n")
    A.stage_program(a, "tick", 0, program)
    d = a.desc[hook_index("tick"), 0, 0]
    assert d[S.D_MAP_RID] == M.RID_QUOTA
    assert d[S.D_SIZE + M.RID_MAP0] == 0  # no map area of its own


def test_stage_program_gives_fresh_maps_with_their_initial_contents(a):
    at = map_area("tick", 0)
    a.flat8[at:at + S.MAP_AREA_BYTES] = 0xEE  # what an earlier program left
    initial = bytes(range(16))
    program = dataclasses.replace(TINY, maps=(MapDef("m", "array", 8, 2, initial=initial),
                                              MapDef("z", "array", 4, 3)))
    A.stage_program(a, "tick", 0, program)
    assert bytes(a.flat8[at:at + 16]) == initial
    assert not a.flat8[at + 16:at + S.MAP_AREA_BYTES].any()
    second = a.desc[hook_index("tick"), 0, 0, S.D_BASE + M.RID_MAP0 + 1]
    assert second == at + 16


@pytest.mark.parametrize("insns,count", [((), 0), (TINY.insns[:1] * (S.MAX_INSNS + 1), S.MAX_INSNS + 1)])
def test_stage_program_refuses_an_instruction_count_the_plane_cannot_hold(a, insns, count):
    with pytest.raises(LoadError, match=rf"^tiny: {count} instructions, the plane holds 1\.\.{S.MAX_INSNS}$"):
        A.stage_program(a, "tick", 0, dataclasses.replace(TINY, insns=insns))


def test_stage_program_refuses_maps_too_big_for_a_slot_and_changes_nothing(a):
    A.stage_program(a, "tick", 0, TENANT_CAP)
    code, desc, flat = a.code.copy(), a.desc.copy(), a.flat.copy()
    big = dataclasses.replace(TINY, maps=(MapDef("a", "array", 8, 4096), MapDef("b", "array", 8, 4097)))
    with pytest.raises(LoadError, match=r"^tiny: its maps need 65544 bytes, a program slot holds 65536$"):
        A.stage_program(a, "tick", 0, big)
    np.testing.assert_array_equal(a.code, code)
    np.testing.assert_array_equal(a.desc, desc)
    np.testing.assert_array_equal(a.flat, flat)


def test_restaging_a_shorter_program_leaves_no_old_code(a):
    A.stage_program(a, "tick", 0, TENANT_CAP)
    A.stage_program(a, "tick", 0, TINY)
    h = hook_index("tick")
    assert (a.code[h, 0, len(TINY.insns):, 0] == opids.INVALID).all()
    assert a.desc[h, 0, 0, S.D_NMAPS] == 0


# ---------------------------------------------------------- install_baseline

def test_install_baseline_fills_and_activates_the_baseline_slot(a):
    A.initialise(a, A.Periods(), wait_bound_ns=1, active_window_ns=1, sample_every=0)
    A.install_baseline(a, "cta_admit", TENANT_CAP, 42)
    h = hook_index("cta_admit")
    assert a.ctl[S.ACTIVE + h] == S.BASELINE_SLOT
    assert a.ctl[S.NINSNS + h * S.NPROG_SLOTS + S.BASELINE_SLOT] == len(TENANT_CAP.insns)
    assert a.ctl[S.PROGRAM_ID + h * S.NPROG_SLOTS + S.BASELINE_SLOT] == 42
    assert a.code[h, S.BASELINE_SLOT, 0, 0] != opids.INVALID
    others = [k for k in range(S.NHOOKS) if k != h]
    assert (a.ctl[S.ACTIVE + np.array(others)] == S.NO_PROGRAM).all()
