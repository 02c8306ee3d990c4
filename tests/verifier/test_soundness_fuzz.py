"""Soundness fuzzing: every program the verifier accepts runs on the reference VM
without a bounds, pc, opcode or fuel fault, and returns a value in the hook's range.

Default: 200 programs (CI).  GBPFD_FUZZ_PROGRAMS=N runs N; the counts of
programs tried and accepted are printed at the end of every run.
"""
from __future__ import annotations

import os
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbpfd.isa.abi import HOOKS, LIMITS, RECORDS
from gbpfd.isa.asm import assemble
from gbpfd.verifier import verify
from gbpfd.vm import status
from gbpfd.vm.memory import RID_CTX, address, build_memory
from gbpfd.vm.reference import run
from program_gen import random_program

PROGRAMS = int(os.environ.get("GBPFD_FUZZ_PROGRAMS", "200"))
COUNTS = {"tried": 0, "accepted": 0}


def _random_bytes(rnd: random.Random, n: int) -> bytes:
    return bytes(rnd.getrandbits(8) for _ in range(n))


def _run_accepted(program, hook_name: str, rnd: random.Random) -> None:
    hook = HOOKS[hook_name]
    quota = _random_bytes(rnd, RECORDS["quota"].size * LIMITS.max_tenants)
    memory = build_memory(program.maps, ctx=_random_bytes(rnd, hook.ctx_size), quota=quota)
    for i, m in enumerate(program.maps):
        if not m.read_only:
            region = memory.region(int(memory.map_rid[i]))
            region[:] = list(_random_bytes(rnd, len(region)))
    result = run(program, memory, args=(address(RID_CTX, 0),), fuel=hook.budget)
    assert result.status == status.OK, (
        f"accepted program faulted: {status.REASONS[result.status]} at slot {result.pc}\n"
        f"{program.source}")
    lo, hi = hook.ret
    assert lo <= result.r0 <= hi, f"accepted program returned {result.r0}, outside [{lo}, {hi}]"


@settings(max_examples=PROGRAMS, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), hook=st.sampled_from(["tick", "cta_admit"]),
       size=st.integers(1, 24))
def test_accepted_programs_run_without_faults(seed, hook, size):
    text = random_program(seed, hook, size)
    program = assemble(text, f"<fuzz seed={seed} hook={hook} size={size}>")
    program = type(program)(program.insns, program.maps, program.hook, program.name, text, program.lines)
    COUNTS["tried"] += 1
    verdict = verify(program)
    if not verdict.accepted:
        return
    COUNTS["accepted"] += 1
    rnd = random.Random(seed)
    for _ in range(3):  # several inputs per program: different paths
        _run_accepted(program, hook, rnd)


def test_fuzz_summary(capsys):
    """Runs after the fuzz test: the fuzz proves something only if enough programs pass."""
    with capsys.disabled():
        print(f"\nverifier fuzz: {COUNTS['tried']} programs tried, {COUNTS['accepted']} accepted")
    assert COUNTS["tried"] >= PROGRAMS // 2
    assert COUNTS["accepted"] >= COUNTS["tried"] // 10
