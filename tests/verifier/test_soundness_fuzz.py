"""Soundness fuzzing: every program the verifier accepts runs on the reference VM
without a bounds, pc, opcode or fuel fault, returns a value in the hook's range,
and lets no pointer bit out.

The pointer check is differential: each accepted program runs twice on the same
inputs, once with its ctx in the ctx region and once with the same bytes in
another region (so the ctx pointer's bits differ).  A program that never
exports a pointer bit leaves the same maps, ctx, counters and r0 both times.

Default: 200 programs (CI), GBPFD_FUZZ_PROGRAMS=N runs N.  The long mode
(``-m slow``) runs GBPFD_FUZZ_LONG programs (default 10^6) without stopping at
the first unsound one, and prints how many were.
"""
from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbpfd.isa.abi import HOOKS, LIMITS, RECORDS
from gbpfd.isa.asm import assemble
from gbpfd.verifier import verify
from gbpfd.vm import status
from gbpfd.vm.memory import RID_COUNTERS, RID_CTX, RID_INPUT, address, build_memory
from gbpfd.vm.reference import run
from program_gen import random_program

PROGRAMS = int(os.environ.get("GBPFD_FUZZ_PROGRAMS", "200"))
LONG_PROGRAMS = int(os.environ.get("GBPFD_FUZZ_LONG", "1000000"))
HOOK_NAMES = ("tick", "cta_admit")
COUNTS = {"tried": 0, "accepted": 0}


def _random_bytes(rnd: random.Random, n: int) -> bytes:
    return bytes(rnd.getrandbits(8) for _ in range(n))


def _observe(program, hook_name: str, inputs: dict, ctx_rid: int) -> tuple:
    """Run once with the ctx bytes in region ``ctx_rid``: what the run leaves behind."""
    hook = HOOKS[hook_name]
    ctx = inputs["ctx"]
    memory = build_memory(program.maps, ctx=ctx if ctx_rid == RID_CTX else b"",
                          input_mem=ctx if ctx_rid == RID_INPUT else b"", quota=inputs["quota"])
    for i, m in enumerate(program.maps):
        if not m.read_only:
            memory.region(int(memory.map_rid[i]))[:] = list(inputs["maps"][i])
    result = run(program, memory, args=(address(ctx_rid, 0),), fuel=hook.budget)
    maps = tuple(bytes(memory.region(int(memory.map_rid[i]))) for i in range(len(program.maps)))
    return (result.status, result.pc, result.r0, bytes(memory.region(ctx_rid)), maps,
            bytes(memory.region(RID_COUNTERS)))


def unsound(program, hook_name: str, rnd: random.Random) -> str | None:
    """Why one run of an accepted program shows the verifier wrong, or None."""
    hook = HOOKS[hook_name]
    inputs = {"ctx": _random_bytes(rnd, hook.ctx_size),
              "quota": _random_bytes(rnd, RECORDS["quota"].size * LIMITS.max_tenants),
              "maps": [_random_bytes(rnd, m.value_size * m.max_entries) for m in program.maps]}
    first = _observe(program, hook_name, inputs, RID_CTX)
    code, pc, r0 = first[:3]
    if code != status.OK:
        return f"accepted program faulted: {status.REASONS[code]} at slot {pc}"
    lo, hi = hook.ret
    if not lo <= r0 <= hi:
        return f"accepted program returned {r0}, outside [{lo}, {hi}]"
    if _observe(program, hook_name, inputs, RID_INPUT) != first:
        return "accepted program exported bits of its ctx pointer"
    return None


def _check(seed: int, hook: str, size: int) -> tuple[bool, str | None]:
    """(accepted, why unsound) for one generated program."""
    text = random_program(seed, hook, size)
    program = assemble(text, f"<fuzz seed={seed} hook={hook} size={size}>")
    if not verify(program).accepted:
        return False, None
    rnd = random.Random(seed)
    for _ in range(3):  # several inputs per program: different paths
        why = unsound(program, hook, rnd)
        if why:
            return True, f"{why}\n{text}"
    return True, None


@settings(max_examples=PROGRAMS, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), hook=st.sampled_from(HOOK_NAMES), size=st.integers(1, 24))
def test_accepted_programs_run_without_faults(seed, hook, size):
    COUNTS["tried"] += 1
    accepted, why = _check(seed, hook, size)
    COUNTS["accepted"] += accepted
    assert why is None, why


def test_fuzz_summary(capsys):
    """Runs after the fuzz test: the fuzz proves something only if enough programs pass."""
    with capsys.disabled():
        print(f"\nverifier fuzz: {COUNTS['tried']} programs tried, {COUNTS['accepted']} accepted")
    assert COUNTS["tried"] >= PROGRAMS // 2
    assert COUNTS["accepted"] >= COUNTS["tried"] // 10


def long_fuzz(count: int, first_seed: int = 0) -> tuple[int, int, list[str]]:
    """(accepted, unsound, the first few unsound reports) over ``count`` programs."""
    accepted, bad = 0, []
    for seed in range(first_seed, first_seed + count):
        ok, why = _check(seed, HOOK_NAMES[seed % 2], 1 + seed % 24)
        accepted += ok
        if why:
            bad.append(why)
    return accepted, len(bad), bad[:3]


@pytest.mark.slow
def test_long_fuzz_finds_no_unsound_program(capsys):
    accepted, unsound_count, examples = long_fuzz(LONG_PROGRAMS)
    with capsys.disabled():
        print(f"\nverifier long fuzz: {LONG_PROGRAMS} programs, {accepted} accepted, {unsound_count} unsound")
    assert unsound_count == 0, "\n\n".join(examples)
