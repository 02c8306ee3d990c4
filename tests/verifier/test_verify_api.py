"""The verify() API: hook selection, Verdict fields, pruning on many branches."""
from __future__ import annotations

import pytest

from gbpfd.errors import InputError
from gbpfd.isa.asm import assemble
from gbpfd.verifier import Verdict, verify

ADMIT = ".hook cta_admit\nmov %r0, 1\nexit\n"


def test_accepted_verdict_fields():
    verdict = verify(assemble(ADMIT))
    assert verdict == Verdict(True, "cta_admit", 2, (
        "accepted for cta_admit: 2 insns, worst-case path 2 insns (budget 128), 1 states explored, 0 pruned",),
        None, 2)


def test_hook_argument_overrides_program_hook():
    verdict = verify(assemble(ADMIT), "tick")
    assert not verdict.accepted and verdict.hook == "tick"
    assert verdict.error == "1: (95) exit: At program exit R0 has value [1, 1] (expected [0, 0])"
    assert verdict.log[1] == "R0=scalar(1) R1=ctx R10=fp"


def test_unknown_and_missing_hook_raise_input_error():
    program = assemble("mov %r0, 0\nexit\n")
    with pytest.raises(InputError, match=r"^no hook given \(expected one of tick, cta_admit, "):
        verify(program)
    with pytest.raises(InputError, match=r"^unknown hook 'x' \(expected one of tick, cta_admit, "):
        verify(program, "x")


def _diamonds(n: int, unsafe_last: bool = False) -> str:
    """n independent if/else diamonds on the ctx's tenant field."""
    lines = [".hook tick", ".map state array value_size=8 max_entries=4", "mov %r6, %r1",
             "lddw %r7, map_value:state+0", "mov %r0, 0"]
    for i in range(n):
        lines += ["ldxw %r2, [%r6+16]", f"jgt %r2, {i}, a{i}", "mov %r3, 1", f"ja b{i}",
                  f"a{i}:", "mov %r3, 2", f"b{i}:"]
    if unsafe_last:  # only the last diamond's taken side goes out of bounds
        lines += ["ldxw %r2, [%r6+16]", "mov %r4, 0", "jgt %r2, 5, big", "mov %r4, 7", "ja use",
                  "big:", "mov %r4, 8", "use:", "add %r7, %r4", "ldxb %r1, [%r7+0]"]
    return "\n".join(lines + ["mov %r0, 0", "exit"]) + "\n"


def test_many_branches_are_pruned():
    verdict = verify(assemble(_diamonds(40)))
    assert verdict.accepted, verdict.log
    explored, pruned = (int(w) for w in verdict.log[-1].replace(",", "").split()[-5::3])
    assert pruned >= 39 and explored <= 100


def test_pruning_does_not_hide_the_unsafe_path():
    verdict = verify(assemble(_diamonds(20, unsafe_last=True)))
    assert not verdict.accepted
    assert verdict.error.endswith("access to map 'state' at offset 8 size 1 is outside its 8-byte value")
