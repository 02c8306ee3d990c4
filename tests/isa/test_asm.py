"""The assembler: data-driven cases (tests/isa/asm_cases/*.data), line mapping,
and the example policies."""
from __future__ import annotations

from pathlib import Path

import pytest

from gbpfd.errors import AsmError
from gbpfd.isa import asm
from gbpfd.isa.abi import LIMITS
from gbpfd.isa.asm import assemble
from gbpfd.isa.program import MapDef
from gbpfd.isa.table import BY_MNEMONIC

from case_files import load_cases

CASES_DIR = Path(__file__).parent / "asm_cases"
POLICIES_DIR = Path(__file__).parents[2] / "gbpfd" / "policies"


def _params():
    for path in sorted(CASES_DIR.glob("*.data")):
        for title, sections in load_cases(path):
            yield pytest.param(sections, id=f"{path.stem}: {title}")


def _expected_bytes(raw: str) -> bytes:
    slots = [line.replace(" ", "") for line in raw.splitlines() if line.strip()]
    assert all(len(slot) == 16 for slot in slots), slots
    return bytes.fromhex("".join(slots))


@pytest.mark.parametrize("case", list(_params()))
def test_case(case):
    assert ("raw" in case) != ("error" in case), "a case expects either bytes or an error"
    if "error" in case:
        with pytest.raises(AsmError) as err:
            assemble(case["asm"] + "\n", "prog.s")
        assert str(err.value) == case["error"]
        return
    program = assemble(case["asm"], "prog.s")
    assert program.to_bytes() == _expected_bytes(case["raw"])
    if "name" in case:
        assert program.name == case["name"]
    if "hook" in case:
        assert str(program.hook) == case["hook"]
    if "maps" in case:
        expected = [line.split() for line in case["maps"].splitlines()]
        assert [(m.name, m.kind, str(m.value_size), str(m.max_entries)) for m in program.maps] \
            == [tuple(fields) for fields in expected]


def test_case_files_cover_errors_and_sections():
    cases = [sections for path in CASES_DIR.glob("*.data") for _, sections in load_cases(path)]
    assert sum("error" in c for c in cases) >= 10
    assert all("asm" in c for c in cases)


def test_lines_map_each_slot_to_its_source_line():
    program = assemble("# header\nmov %r0, 0\n\nlddw %r1, 5\n.raw 0x0000000000000000\nexit\n",
                       "p.s")
    assert program.lines == (2, 4, 4, 5, 6)
    assert program.source == "p.s"


def test_error_carries_its_place():
    with pytest.raises(AsmError) as err:
        assemble("exit\n  ja nowhere\n", "x.s")
    assert (err.value.path, err.value.line, err.value.column) == ("x.s", 2, 6)
    assert err.value.reason == "undefined label 'nowhere'"


def test_hash_starts_a_comment_except_in_numeric_map_references():
    program = assemble("lddw %r1, map:#3 # map three\nexit # done\n")
    assert program.insns[0].imm == 3
    assert len(program.insns) == 3


def test_admit_all_policy():
    program = assemble((POLICIES_DIR / "admit_all.s").read_text(), "admit_all.s")
    assert program.hook == "cta_admit"
    assert program.name == "admit_all"
    assert program.to_bytes() == (POLICIES_DIR / "admit_all.bin").read_bytes()
    assert program.to_bytes() == bytes.fromhex("b700000001000000" "9500000000000000")


def test_tenant_cap_policy_declares_its_map_and_hook():
    program = assemble((POLICIES_DIR / "tenant_cap.s").read_text(), "tenant_cap.s")
    assert program.hook == "cta_admit"
    assert program.maps == (MapDef("state", "array", 8, 32),)
    call_opcode = BY_MNEMONIC["call"][0].opcode
    calls = [i.imm for i in program.insns if i.opcode == call_opcode]
    assert calls == [4, 1, 6]  # quota_read, map_lookup_elem, counter_add


def test_a_program_past_the_slot_limit_is_refused_at_the_line_that_passes_it():
    lines = ["mov %r0, 0"] * LIMITS.max_insns + ["lddw %r1, 1", "exit"]
    with pytest.raises(AsmError) as err:
        assemble("\n".join(lines) + "\n", "big.s")
    assert str(err.value) == (f"big.s:{LIMITS.max_insns + 1}:1: the program passes {LIMITS.max_insns} slots, "
                              f"the most a program may have")


def test_an_lddw_that_ends_past_the_limit_is_refused_too():
    lines = ["mov %r0, 0"] * (LIMITS.max_insns - 1) + [".raw 0x0000000000000000", "  lddw %r1, 1"]
    with pytest.raises(AsmError) as err:
        assemble("\n".join(lines), "big.s")
    assert str(err.value) == (f"big.s:{LIMITS.max_insns + 1}:3: the program passes {LIMITS.max_insns} slots, "
                              f"the most a program may have")


def test_a_huge_source_is_refused_without_reading_it_all(monkeypatch):
    parsed = []
    real = asm._parse_line
    monkeypatch.setattr(asm, "_parse_line", lambda ctx, line, number: (parsed.append(number), real(ctx, line, number)))
    with pytest.raises(AsmError):
        assemble("exit\n" * 1_000_000, "huge.s")
    assert parsed[-1] == LIMITS.max_insns + 1


def test_the_conformance_aliases_name_gbpfd_mnemonics():
    assert all(target in BY_MNEMONIC for target in asm.ALIASES.values())
    assert not set(asm.ALIASES) & set(BY_MNEMONIC)
