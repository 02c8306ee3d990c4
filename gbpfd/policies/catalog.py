"""The policies shipped in this folder, by name.

The baseline policy (weighted fair share for best-effort tenants, strict
priority for latency-critical ones, within each tenant's caps) is what the
plane loads when no other policy is given.  It exists twice: compiled from
``baseline.bpf.c`` into ``baseline.o``, one section per hook, and written by
hand in one ``baseline_<hook>.s`` file per hook; the two forms behave the
same (``tests/policies/test_baseline.py``).
"""
from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

from gbpfd.isa.load import load_program
from gbpfd.isa.program import Program

POLICIES_DIR = Path(__file__).resolve().parent
BASELINE_HOOKS = ("tick", "cta_admit", "dma_tick", "warp_throttle_tick", "sm_tick")
BASELINE_OBJECT = "baseline.o"
BASELINE_ASM = {
    "tick": "baseline_tick.s",
    "cta_admit": "baseline_admit.s",
    "dma_tick": "baseline_dma.s",
    "warp_throttle_tick": "baseline_warp.s",
    "sm_tick": "baseline_sm.s",
}
BASELINE_FORMS = ("c", "asm")


def available_baseline_form() -> str:
    """``"c"`` where ELF objects can be read (pyelftools is installed), else
    ``"asm"``: the two forms behave the same, and a GPU image without
    pyelftools must still start the plane."""
    return "c" if importlib.util.find_spec("elftools") is not None else "asm"


def policy_path(name: str) -> Path:
    """The shipped policy file ``name`` (``"baseline.o"``, ``"tenant_cap.s"``)."""
    return POLICIES_DIR / name


def baseline_programs(form: str = "c") -> dict[str, Program]:
    """The baseline policy's program for each of ``BASELINE_HOOKS``, loaded
    from ``baseline.o`` (form ``"c"``) or assembled from the ``.s`` files
    (form ``"asm"``); each program's name ends with its form, ``[c]`` or
    ``[asm]``, so logs tell the two apart."""
    if form not in BASELINE_FORMS:
        raise ValueError(f"baseline_programs: form={form!r} is not one of "
                         f"{', '.join(repr(f) for f in BASELINE_FORMS)}")
    programs = {}
    for hook in BASELINE_HOOKS:
        if form == "c":
            program = load_program(policy_path(BASELINE_OBJECT), section=hook)
        else:
            program = load_program(policy_path(BASELINE_ASM[hook]))
        programs[hook] = dataclasses.replace(program, name=f"{program.name}[{form}]")
    return programs
