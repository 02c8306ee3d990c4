"""``verify`` pauses the cyclic garbage collector while it checks: it must
leave the collector as it found it, and may pause it only because a check
leaves no reference cycles behind (its garbage goes by reference counting)."""
from __future__ import annotations

import gc
from pathlib import Path

import pytest

from gbpfd.isa.asm import assemble
from gbpfd.verifier import verify

from case_files import load_cases
from program_gen import generated

CASES_DIR = Path(__file__).parent / "cases"


def _case_programs() -> list:
    return [assemble(sections["asm"] if "asm" in sections else generated(sections["generate"]),
                     f"{path.name}:{name}")
            for path in sorted(CASES_DIR.glob("*.data")) for name, sections in load_cases(path)]


@pytest.mark.parametrize("enabled", [True, False])
def test_verify_leaves_the_collector_as_it_found_it(enabled):
    program = assemble(".hook cta_admit\nmov %r0, 0\nexit\n", "<gc>")
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        verify(program)
        assert gc.isenabled() == enabled
    finally:
        (gc.enable if was else gc.disable)()


def test_verify_leaves_no_reference_cycles():
    programs = _case_programs()  # accepted and rejected, every kind of defect, local calls
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        verdicts = [verify(p) for p in programs]
        assert gc.collect() == 0
    finally:
        if was:
            gc.enable()
    assert {v.accepted for v in verdicts} == {True, False}
