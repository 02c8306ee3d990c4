"""The verifier case files: tests/verifier/cases/*.data.

A file holds cases, each introduced by ``=== NAME``, with sections:
``-- asm`` (the program, assembler text) or ``-- generate`` (a generator of
program_gen and its arguments, for programs too large to write out), then either ``-- accept`` (the
program must be accepted; a line under it is the exact final log line) or
``-- error`` (the exact error line, and optionally the register-state line).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from gbpfd.isa.asm import assemble
from gbpfd.verifier import verify

from case_files import load_cases
from program_gen import generated

CASES_DIR = Path(__file__).parent / "cases"


def _all_cases():
    for path in sorted(CASES_DIR.glob("*.data")):
        for name, text in load_cases(path):
            sections = {k: [line for line in v.splitlines() if line.strip() or k == "asm"]
                        for k, v in text.items()}
            yield pytest.param(path, name, sections, id=f"{path.stem}:{name}")


@pytest.mark.parametrize("path, name, sections", list(_all_cases()))
def test_case(path, name, sections):
    assert ("asm" in sections) != ("generate" in sections) and ("accept" in sections) != ("error" in sections), \
        f"{path.name}: case {name} needs one of -- asm / -- generate and one of -- accept / -- error"
    text = "\n".join(sections["asm"]) if "asm" in sections else generated(sections["generate"][0])
    program = assemble(text, f"{path.name}:{name}")
    verdict = verify(program)
    if "accept" in sections:
        assert verdict.accepted, "\n".join(verdict.log)
        assert verdict.error is None
        if sections["accept"]:
            assert verdict.log[-1] == sections["accept"][0]
    else:
        assert not verdict.accepted
        expected = sections["error"]
        assert verdict.error == expected[0], "\n".join(verdict.log)
        assert list(verdict.log[:len(expected)]) == expected


def test_case_files_exist_and_parse():
    cases = list(_all_cases())
    assert len(cases) >= 40
