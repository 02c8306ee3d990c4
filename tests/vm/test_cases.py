"""Data-driven semantics cases (tests/vm/cases/*.data), each run on both VMs."""
from __future__ import annotations

import pytest

from gbpfd.isa.asm import assemble
from gbpfd.vm import status

from .harness import CASES_DIR, NOW_NS, assert_same, exec_args, exec_memory, load_cases, run_both


def _params():
    for path in sorted(CASES_DIR.glob("*.data")):
        for title, sections in load_cases(path):
            yield pytest.param(sections, id=f"{path.stem}: {title}")


@pytest.mark.parametrize("case", list(_params()))
def test_case(case):
    assert ("result" in case) != ("error" in case), "a case expects either a result or an error"
    program = assemble(case["asm"], "case.s")
    mem = bytes.fromhex("".join(case.get("mem", "").split()))
    fuel = int(case.get("fuel", "1000000"))
    outcomes = run_both(program, lambda: exec_memory(program, mem), args=exec_args(mem), fuel=fuel,
                        now_ns=NOW_NS)
    for vm, (result, _) in outcomes.items():
        if "error" in case:
            assert status.REASONS[result.status] == case["error"], vm
        else:
            assert (status.REASONS[result.status], hex(result.r0)) == ("ok", hex(int(case["result"], 16))), vm
    assert_same(outcomes)
