"""Every row of the opcode table reaches every consumer.

Per consumer, one test is parametrized over ``table.ROWS``:
- assembler and disassembler: tests/isa/test_disasm.py::test_every_row_round_trips_through_its_text
- both interpreters: tests/vm/test_table_coverage.py::test_row_runs_on_both_vms
- docs/isa.md: tests/isa/test_docgen.py::test_every_row_is_documented
- the verifier's field checks: this file (each reserved or register field out
  of bounds is refused, naming the field).
The first test here checks that those suites really cover every row, so a
row added to the table cannot slip past one of them.
"""
from __future__ import annotations

import pytest

from gbpfd.isa.insn import FIELD_RANGES, Insn
from gbpfd.isa.program import Program
from gbpfd.isa.table import BY_MNEMONIC, FIELDS, ROWS
from gbpfd.verifier import verify

EXIT = Insn(BY_MNEMONIC["exit"][0].opcode)
ROW_IDS = [f"{r.mnemonic}/{r.form}/{r.opcode:#04x}" for r in ROWS]
PER_ROW_TESTS = [
    "tests/isa/test_disasm.py::test_every_row_round_trips_through_its_text",
    "tests/vm/test_table_coverage.py::test_row_runs_on_both_vms",
]


def test_per_consumer_suites_cover_every_row(pytestconfig):
    import subprocess
    import sys
    for node in PER_ROW_TESTS:
        proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", node],
                              capture_output=True, text=True, cwd=pytestconfig.rootpath, timeout=120)
        collected = [line for line in proc.stdout.splitlines() if line.startswith(node + "[")]
        assert len(collected) == len(ROWS), (node, proc.stdout[-500:])


def _valid_fields(row) -> dict[str, int]:
    sample = {"reg": 1, "zero": 0, "any": 0}
    return {f: sample.get(row.rules[f], row.rules[f]) for f in FIELDS}


def _bad_values(rule) -> list[int]:
    if rule == "zero":
        return [1]
    if rule == "reg":
        return [11, 15]
    return []


@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_verifier_refuses_each_out_of_bounds_field(row):
    for field in FIELDS:
        for bad in _bad_values(row.rules[field]):
            fields = _valid_fields(row) | {field: bad}
            lo, hi = FIELD_RANGES[field]
            assert lo <= bad <= hi
            insn = Insn(row.opcode, **fields)
            tail = (Insn(0),) * (row.slots - 1) + (EXIT,)
            verdict = verify(Program((insn,) + tail, hook="tick"))
            assert not verdict.accepted
            expected = "0 (reserved)" if row.rules[field] == "zero" else "a register r0-r10"
            assert verdict.error.endswith(f"invalid {field} {bad} for {row.mnemonic} (expected {expected})"), \
                verdict.error
