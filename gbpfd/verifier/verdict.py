"""``verify``: the one entry point, and the ``Verdict`` it returns.

A defect in the program never raises: it gives ``accepted=False`` with the
log.  Only a bad request (no hook, an unknown hook) raises ``InputError``.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass

from gbpfd.errors import InputError
from gbpfd.isa.abi import HOOKS
from gbpfd.isa.program import Program
from gbpfd.verifier.check import Checker, CheckError
from gbpfd.verifier.log import accepted_line, insn_line, source_line, state_text
from gbpfd.verifier.structure import StructureError, check_structure


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    hook: str
    cost: int             # worst-case path length in instructions, calls included (0 if unknown)
    log: tuple[str, ...]
    error: str | None     # the first log line when rejected
    insn_count: int


def _hook_name(program: Program, hook: str | None) -> str:
    name = hook if hook is not None else program.hook
    expected = ", ".join(HOOKS)
    if name is None:
        raise InputError(f"no hook given (expected one of {expected})")
    if name not in HOOKS:
        raise InputError(f"unknown hook '{name}' (expected one of {expected})")
    return name


@contextmanager
def _collector_paused():
    """The cyclic garbage collector off during a check (as it was, after).

    A check allocates many small containers (state copies, the states kept
    at join points) and frees them all by reference counting: they form no
    cycles.  Collections triggered meanwhile would only traverse them, and
    the rest of the process's heap, again and again: a fifth of the time of
    a 4096-slot check in a small process, more in a large one.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def verify(program: Program, hook: str | None = None) -> Verdict:
    """Check ``program`` for ``hook`` (default: the program's own ``.hook``)."""
    name = _hook_name(program, hook)
    with _collector_paused():
        return _verify(program, name)


def _verify(program: Program, name: str) -> Verdict:
    spec = HOOKS[name]
    count = len(program.insns)

    def rejected(lines: list[str], cost: int = 0) -> Verdict:
        return Verdict(False, name, cost, tuple(lines), lines[0], count)

    try:
        layout = check_structure(program, spec)
    except StructureError as err:
        if err.index is None:
            return rejected([err.reason])
        return rejected([insn_line(program, err.index, err.reason), *source_line(program, err.index)])
    checker = Checker(program, spec, layout)
    try:
        checker.run()
    except CheckError as err:
        return rejected([insn_line(program, err.index, err.reason), *source_line(program, err.index),
                         state_text(err.state, program)], layout.cost)
    line = accepted_line(name, count, layout.cost, spec.budget, checker.explored, checker.pruned)
    return Verdict(True, name, layout.cost, (line,), None, count)
