"""Pruning at a join point: ``JoinStates.covers`` looks at few kept states
(equal ones by hashing, others through constant buckets); it must answer as
comparing the new state with every kept state would."""
from __future__ import annotations

import random

import pytest

from gbpfd.verifier import scalar as sc
from gbpfd.verifier.state import (CTX, MAP_VALUE, MAP_VALUE_OR_NULL, NREGS, Frame, JoinStates, State, Value,
                                  _subsumes, frame_pointer, scalar)

# few distinct Values, shared between states as paths share them: equal
# states, constants that tell paths apart and ranges that cover them all occur
VALUES = [None, scalar(sc.constant(0)), scalar(sc.constant(1)), scalar(sc.constant(2)),
          scalar(sc.unsigned_range(0, 1)), scalar(sc.unsigned_range(0, 7)), scalar(sc.UNKNOWN),
          Value(CTX), Value(MAP_VALUE, map=0, off_lo=0, off_hi=0), Value(MAP_VALUE, map=0, off_lo=0, off_hi=4),
          Value(MAP_VALUE_OR_NULL, map=0, id=1), Value(MAP_VALUE_OR_NULL, map=0, id=2)]
SLOTS = [None, 0x0F, 0xFF, VALUES[1], VALUES[2], VALUES[5], VALUES[10]]


def _frame(rnd: random.Random, depth: int) -> Frame:
    regs = [rnd.choice(VALUES) for _ in range(NREGS)]
    regs[10] = frame_pointer(depth)
    return Frame(regs, {k: v for k in (60, 63) if (v := rnd.choice(SLOTS)) is not None}, -1, -1)


def _variant(rnd: random.Random, base: State, change: float) -> State:
    """``base`` with each register and stack slot redrawn with probability ``change``."""
    frames = []
    for f in base.frames:
        regs = [rnd.choice(VALUES) if i < 10 and rnd.random() < change else v for i, v in enumerate(f.regs)]
        stack = dict(f.stack)
        for k in (60, 63):
            if rnd.random() < change:
                stack[k] = rnd.choice(SLOTS)
        frames.append(Frame(regs, {k: v for k, v in stack.items() if v is not None}, -1, -1))
    return State(frames, base.chain)


@pytest.mark.parametrize("seed", range(16))
def test_covers_answers_as_comparing_every_kept_state(seed):
    rnd = random.Random(seed)
    depth = 1 + seed % 2
    bases = [State([_frame(rnd, d) for d in range(depth)], tuple(range(depth))) for _ in range(4)]
    kept, answers = JoinStates(), set()
    for _ in range(300):
        new = _variant(rnd, rnd.choice(bases), rnd.choice([0.0, 0.1, 0.3]))
        expected = any(_subsumes(old, new) for old in kept.states)
        assert kept.covers(new) == expected
        answers.add(expected)
        if not expected and len(kept.states) < 32:
            kept.keep(new)
    assert answers == {True, False} and kept.buckets is not None  # both answers seen, buckets in use
