"""The complexity limits: a program whose states do not prune is refused with
the limit it reached, at the slot it reached it, and never runs on unbounded."""
from __future__ import annotations

import itertools

import pytest

from gbpfd.isa.asm import assemble
from gbpfd.verifier import check, verify
from program_gen import join_blowup

# 12 real branches on four scalars: every path bounds them differently
BLOWUP = assemble(join_blowup(64, 12, skip=1), "<blowup>")


@pytest.mark.parametrize("limit, value, message", [
    ("MAX_STATES", 50, "program is too complex to verify (more than 50 states explored)"),
    ("MAX_COMPARISONS", 100, "program is too complex to verify (more than 100 state comparisons)"),
    ("MAX_PROCESSED", 300, "program is too complex to verify (more than 300 insns processed)"),
])
def test_each_limit_refuses_with_its_own_message(monkeypatch, limit, value, message):
    assert verify(BLOWUP).accepted
    monkeypatch.setattr(check, limit, value)
    verdict = verify(BLOWUP)
    assert not verdict.accepted
    assert verdict.error.endswith(f": {message}")


def test_the_time_limit_refuses(monkeypatch):
    clock = itertools.count(0, 1000)  # every look at the clock finds 1000 s gone
    monkeypatch.setattr(check.time, "perf_counter", lambda: float(next(clock)))
    monkeypatch.setattr(check, "TIME_CHECK_EVERY", 1)
    verdict = verify(BLOWUP)
    assert verdict.error == f"0: (7a) stdw [%r10-8], 1: program is too complex to verify (more than {check.MAX_SECONDS} s)"


def test_a_blowup_the_precision_cannot_prune_ends_at_the_comparison_limit():
    """Real branches on scalars keep them precise: the answer is a refusal, within seconds."""
    verdict = verify(assemble(join_blowup(64, 200, skip=1), "<big blowup>"))
    # the comparison limit, or on a loaded machine the wall-time limit that backs it up
    assert verdict.error.endswith((f"program is too complex to verify (more than {check.MAX_COMPARISONS} state "
                                   "comparisons)", f"program is too complex to verify (more than {check.MAX_SECONDS} s)"))
