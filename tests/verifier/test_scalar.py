"""Range arithmetic against the concrete semantics: every result of concrete
operands drawn from two ranges lies in the computed range, and each branch
refinement keeps every pair of values that takes that branch."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gbpfd.verifier import scalar as sc

OPS = [op for op in sc.CONCRETE if op != "neg"] + ["neg"]
EDGES = [0, 1, 2, 7, 8, 31, 32, 63, 64, 0x7FFFFFFF, 0x80000000, sc.U32, 1 << 32,
         sc.S64_MAX, 1 << 63, sc.U64 - 1, sc.U64]
values = st.one_of(st.sampled_from(EDGES), st.integers(0, sc.U64), st.integers(0, 300))


def _range(a: int, b: int) -> sc.Scalar:
    return sc.unsigned_range(min(a, b), max(a, b))


def _inside(s: sc.Scalar, pick: int) -> int:
    return s.umin + pick % (s.umax - s.umin + 1)


def _member(s: sc.Scalar, v: int) -> bool:
    return s.umin <= v <= s.umax and s.smin <= sc.to_signed(v) <= s.smax


@settings(max_examples=400, deadline=None)
@given(op=st.sampled_from(OPS), width=st.sampled_from([32, 64]),
       a=st.tuples(values, values), b=st.tuples(values, values), pick=st.tuples(values, values))
def test_alu_ranges_contain_concrete_results(op, width, a, b, pick):
    ra, rb = _range(*a), _range(*b)
    x, y = _inside(ra, pick[0]), _inside(rb, pick[1])
    mask = (1 << width) - 1
    expected = sc.CONCRETE[op](x & mask, y & mask, width) & mask
    result = (sc.alu64 if width == 64 else sc.alu32)(op, ra, rb)
    assert _member(result, expected), (op, width, ra.text(), rb.text(), x, y, expected, result.text())


@settings(max_examples=400, deadline=None)
@given(op=st.sampled_from(sorted(sc.CONCRETE_JUMP)), a=st.tuples(values, values),
       b=st.tuples(values, values), pick=st.tuples(values, values))
def test_refinement_keeps_every_value_on_its_branch(op, a, b, pick):
    ra, rb = _range(*a), _range(*b)
    x, y = _inside(ra, pick[0]), _inside(rb, pick[1])
    taken = sc.CONCRETE_JUMP[op](x, y, 64)
    refined = sc.refine(op, ra, rb, taken)
    assert refined is not None, "a reachable branch was pruned"
    assert _member(refined[0], x) and _member(refined[1], y)


def test_immediates_are_read_at_the_instruction_width():
    assert sc.alu32("mov", sc.constant(0), sc.constant(-1 & sc.U32)).const == sc.U32
    assert sc.alu64("mov", sc.constant(0), sc.constant(-1)).const == sc.U64


def test_division_and_modulo_by_zero():
    tenant = sc.unsigned_range(0, 100)
    assert sc.alu64("div", tenant, sc.constant(0)).const == 0
    assert sc.alu64("mod", tenant, sc.constant(0)) == tenant
    assert sc.alu32("mod", sc.constant(7), sc.constant(0)).const == 7


def test_alu32_wrap_gives_the_full_32_bit_range():
    small = sc.unsigned_range(0, 3)
    assert sc.alu32("sub", small, sc.constant(1)) == sc.unsigned_range(0, sc.U32)
    assert sc.alu32("add", small, sc.constant(1)) == sc.unsigned_range(1, 4)


def test_scalar_text():
    assert sc.constant(5).text() == "scalar(5)"
    assert sc.constant(-1).text() == "scalar(-1)"
    assert sc.unsigned_range(0, 31).text() == "scalar(umin=0,umax=31)"
    assert sc.UNKNOWN.text() == "scalar"


def _member32(s: sc.Scalar, v: int) -> bool:
    u32min, u32max, s32min, s32max = sc.bounds32(s)
    low = v & sc.U32
    return _member(s, v) and u32min <= low <= u32max and s32min <= sc.to_signed(low, 32) <= s32max


@settings(max_examples=600, deadline=None)
@given(ops=st.lists(st.sampled_from(sorted(sc.CONCRETE_JUMP)), min_size=1, max_size=3),
       ks=st.lists(values, min_size=3, max_size=3), a=st.tuples(values, values), pick=values)
def test_32_bit_refinements_keep_every_value_on_their_branches(ops, ks, a, pick):
    """Chained jmp32 refinements (the later ones start from learnt 32-bit
    bounds) keep the value, in the 64-bit bounds, the 32-bit ones and a mov32 of it."""
    ra = _range(*a)
    x = _inside(ra, pick)
    d = ra
    for op, k in zip(ops, ks):
        taken = sc.CONCRETE_JUMP[op](x & sc.U32, k & sc.U32, 32)
        refined = sc.refine32(op, d, sc.constant(k), taken)
        assert refined is not None, "a reachable 32-bit branch was pruned"
        d = refined[0]
        assert _member32(d, x), (op, k, d.text(), x)
        assert _member(sc.alu32("mov", d, d), x & sc.U32)


def test_jmp32_bounds_print_and_cover():
    low = sc.refine32("jgt", sc.UNKNOWN, sc.constant(15), False)[0]
    assert low.text() == "scalar(u32min=0,u32max=15)"
    assert sc.alu32("mov", low, low) == sc.unsigned_range(0, 15)
    assert sc.UNKNOWN.contains(low) and not low.contains(sc.UNKNOWN)
