"""The fast VM's entry points: a program is decoded once, and a batch of
runs in one call gives what the same runs one by one give."""
from __future__ import annotations

import gc

import numba
import numpy as np
import pytest
from numba import types

from gbpfd.isa.asm import assemble
from gbpfd.vm import fast, interp, status
from gbpfd.vm.memory import build_memory

# r0 = r1 * 3 + r2; a map counter counts the runs (each run sees the ones before it)
COUNTING = assemble("""
.map runs array value_size=8 max_entries=1
    mov %r6, %r1
    mov %r7, %r2
    stw [%r10-4], 0
    lddw %r1, map:runs
    mov %r2, %r10
    add %r2, -4
    call map_lookup_elem
    jeq %r0, 0, out
    ldxdw %r1, [%r0+0]
    add %r1, 1
    stxdw [%r0+0], %r1
    mov %r0, %r6
    mul %r0, 3
    add %r0, %r7
out: exit
""", "counting.s")
ROWS = [(1, 2), (5, -1), (0, 0), (2 ** 64 - 1, 4)]


def test_a_program_is_decoded_once_however_often_it_runs(monkeypatch):
    program = assemble("mov %r0, 7\nexit\n")
    calls = []
    real = fast.decode_program
    monkeypatch.setattr(fast, "decode_program", lambda insns: (calls.append(1), real(insns))[1])
    for _ in range(3):
        assert fast.run(program, build_memory()).r0 == 7
    fast.run_batch(program, build_memory(), [()] * 4)
    assert len(calls) == 1


def test_the_decoded_form_leaves_with_its_program():
    program = assemble("mov %r0, 1\nexit\n")
    fast.run(program, build_memory())
    key = id(program)
    assert key in fast._DECODED
    del program
    gc.collect()
    assert key not in fast._DECODED


def test_a_batch_gives_what_the_same_runs_one_by_one_give():
    one_by_one = build_memory(COUNTING.maps)
    expected = [fast.run(COUNTING, one_by_one, args=row) for row in ROWS]
    batched = build_memory(COUNTING.maps)
    got = fast.run_batch(COUNTING, batched, ROWS)
    assert len(got) == len(ROWS)
    assert [got[i] for i in range(len(got))] == expected
    assert np.array_equal(batched.flat, one_by_one.flat)
    assert [r.r0 for r in expected] == [5, 14, 0, (2 ** 64 - 1) * 3 + 4 & (2 ** 64 - 1)]


def test_each_run_of_a_batch_has_its_own_fuel():
    loop = assemble("mov %r0, 0\nloop: add %r0, 1\njlt %r0, %r1, loop\nexit\n")
    got = fast.run_batch(loop, build_memory(), np.array([[3], [1000], [2]], np.int64), fuel=100)
    assert list(got.status) == [status.OK, status.FAULT_FUEL, status.OK]
    assert (int(got.r0[0]), int(got.r0[2])) == (3, 2)
    assert list(got.steps) == [8, 100, 6]  # mov, then add and jlt per pass, then exit


@pytest.mark.parametrize("args, message", [
    ([[1, 2, 3, 4, 5, 6]], "args must be one row of at most 5 integers (r1-r5) per run, got 6 columns"),
    (np.zeros((2, 6), np.int64), "args must be one row of at most 5 integers (r1-r5) per run, got 6 columns"),
    (np.zeros(3, np.int64), "args must be one row of at most 5 integers (r1-r5) per run, got no columns"),
    ([1, 2], "args must be one row of at most 5 integers (r1-r5) per run: 'int' object is not iterable"),
    ([[1.5]], "args must be one row of at most 5 integers (r1-r5) per run: 1.5 is not an integer"),
    (np.ones((1, 1)), "args must be integers, got float64"),
    ([[1], [1, 2]], "args must be rows of the same length, one per run"),
])
def test_batch_arguments_are_checked(args, message):
    with pytest.raises(ValueError) as err:
        fast.run_batch(COUNTING, build_memory(COUNTING.maps), args)
    assert str(err.value) == message


def test_the_compiled_interpreter_counts_no_references():
    """Taking and dropping a reference on each array argument was most of a
    short run's cost (bench_interp's cpu_fast_njit_call_ns).  Compiled here
    uncached: a build loaded from the disk cache has no code to inspect."""
    i64, u64 = types.int64, types.uint64
    u8 = types.uint8
    sig = (i64[:, ::1], i64, u64[::1], u64[:, ::1], u8[::1], u8[::1], i64[::1], i64[::1], i64[::1], i64[::1],
           i64[::1], i64[::1], i64, i64, u64, i64[::1])
    compiled = numba.njit(sig, **fast.JIT_OPTIONS)(interp.execute)
    code = compiled.inspect_asm(sig)
    assert "NRT_incref" not in code and "NRT_decref" not in code
