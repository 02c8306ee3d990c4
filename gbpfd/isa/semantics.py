"""RFC 9669 arithmetic and comparisons on plain Python integers.

Operands arrive already cut to the operation's width (32 or 64 bits,
unsigned); callers cut the result.  The reference VM executes with these and
the verifier folds constants with them, so the two cannot disagree on what
an operation computes.  The fast VM has its own Numba-typed code and is
checked against the reference VM by differential tests.
"""
from __future__ import annotations


def to_signed(value: int, width: int = 64) -> int:
    value &= (1 << width) - 1
    return value - (1 << width) if value >> (width - 1) else value


def trunc_div(a: int, b: int) -> int:
    """C division: the quotient rounds toward zero (RFC 9669 requires it for sdiv/smod)."""
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def _smod(a: int, b: int, w: int) -> int:
    if not b:
        return a
    sa, sb = to_signed(a, w), to_signed(b, w)
    return sa - trunc_div(sa, sb) * sb


ALU = {
    "add": lambda a, b, w: a + b,
    "sub": lambda a, b, w: a - b,
    "mul": lambda a, b, w: a * b,
    "div": lambda a, b, w: a // b if b else 0,
    "sdiv": lambda a, b, w: trunc_div(to_signed(a, w), to_signed(b, w)) if b else 0,
    "mod": lambda a, b, w: a % b if b else a,
    "smod": _smod,
    "or": lambda a, b, w: a | b,
    "and": lambda a, b, w: a & b,
    "xor": lambda a, b, w: a ^ b,
    "lsh": lambda a, b, w: a << (b & (w - 1)),
    "rsh": lambda a, b, w: a >> (b & (w - 1)),
    "arsh": lambda a, b, w: to_signed(a, w) >> (b & (w - 1)),
    "mov": lambda a, b, w: b,
    "neg": lambda a, b, w: -a,
}

JUMP = {
    "jeq": lambda a, b, w: a == b,
    "jne": lambda a, b, w: a != b,
    "jgt": lambda a, b, w: a > b,
    "jge": lambda a, b, w: a >= b,
    "jlt": lambda a, b, w: a < b,
    "jle": lambda a, b, w: a <= b,
    "jset": lambda a, b, w: bool(a & b),
    "jsgt": lambda a, b, w: to_signed(a, w) > to_signed(b, w),
    "jsge": lambda a, b, w: to_signed(a, w) >= to_signed(b, w),
    "jslt": lambda a, b, w: to_signed(a, w) < to_signed(b, w),
    "jsle": lambda a, b, w: to_signed(a, w) <= to_signed(b, w),
}
