"""Range arithmetic on 64-bit scalars: unsigned and signed bounds, kept in step.

A ``Scalar`` stands for every 64-bit value ``v`` with ``umin <= v <= umax``
read unsigned and ``smin <= v <= smax`` read signed.  Every transfer function
here over-approximates the machine's result: when a result could wrap, the
bound is dropped rather than guessed.  32-bit operations see the low 32 bits
of their operands and zero-extend their result, so a 32-bit result range is
exact only when the computation cannot wrap; otherwise it is [0, 2^32-1].
"""
from __future__ import annotations

from gbpfd.isa.semantics import ALU as CONCRETE, JUMP as CONCRETE_JUMP, to_signed

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1
S64_MIN = -(1 << 63)
S64_MAX = (1 << 63) - 1


class Scalar:
    __slots__ = ("umin", "umax", "smin", "smax")

    def __init__(self, umin: int, umax: int, smin: int, smax: int):
        self.umin, self.umax, self.smin, self.smax = umin, umax, smin, smax

    @property
    def const(self) -> int | None:
        return self.umin if self.umin == self.umax else None

    def __eq__(self, other) -> bool:
        return isinstance(other, Scalar) and (self.umin, self.umax, self.smin, self.smax) == (
            other.umin, other.umax, other.smin, other.smax)

    def __hash__(self) -> int:
        return hash((self.umin, self.umax, self.smin, self.smax))

    def contains(self, other: "Scalar") -> bool:
        return (self.umin <= other.umin and other.umax <= self.umax
                and self.smin <= other.smin and other.smax <= self.smax)

    def fits(self, hi: int) -> bool:
        """True when every value lies in [0, hi]."""
        return self.umax <= hi

    def text(self) -> str:
        c = self.const
        if c is not None:
            return f"scalar({to_signed(c)})"
        if self == UNKNOWN:
            return "scalar"
        parts = []
        if (self.umin, self.umax) != (0, U64):
            parts.append(f"umin={self.umin},umax={self.umax}")
        implied = (self.umin, self.umax) if self.umax <= S64_MAX else (S64_MIN, S64_MAX)
        if (self.smin, self.smax) != implied:
            parts.append(f"smin={self.smin},smax={self.smax}")
        return f"scalar({','.join(parts)})"


def make(umin: int, umax: int, smin: int, smax: int) -> Scalar | None:
    """The scalar with both bound pairs tightened against each other; None if empty."""
    # plain comparisons rather than max/min in the usual cases: the verifier calls this a lot
    for _ in range(2):
        before = (umin, umax, smin, smax)
        if umax <= S64_MAX:
            if umin > smin:
                smin = umin
            if umax < smax:
                smax = umax
        elif umin > S64_MAX:
            smin, smax = max(smin, umin - (1 << 64)), min(smax, umax - (1 << 64))
        if smin >= 0:
            if smin > umin:
                umin = smin
            if smax < umax:
                umax = smax
        elif smax < 0:
            umin, umax = max(umin, smin + (1 << 64)), min(umax, smax + (1 << 64))
        if umin > umax or smin > smax:
            return None
        if (umin, umax, smin, smax) == before:
            break  # a second round would change nothing either
    return Scalar(umin, umax, smin, smax)


UNKNOWN = Scalar(0, U64, S64_MIN, S64_MAX)


def constant(value: int) -> Scalar:
    value &= U64
    signed = to_signed(value)
    return Scalar(value, value, signed, signed)


def unsigned_range(lo: int, hi: int) -> Scalar:
    return make(lo, hi, S64_MIN, S64_MAX)


def signed_range(lo: int, hi: int) -> Scalar:
    return make(0, U64, lo, hi)


def intersect(a: Scalar, b: Scalar) -> Scalar | None:
    return make(max(a.umin, b.umin), min(a.umax, b.umax), max(a.smin, b.smin), min(a.smax, b.smax))


def of_width(bits: int, *, signed: bool = False) -> Scalar:
    """Any value a ``bits``-wide load produces, zero- or sign-extended to 64 bits."""
    if bits == 64:
        return UNKNOWN
    if signed:
        return signed_range(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return unsigned_range(0, (1 << bits) - 1)


# ------------------------------------------------------------------ ALU ranges

def low32(x: Scalar) -> tuple[int, int]:
    """Unsigned bounds of the low 32 bits of ``x``."""
    if x.umax <= U32:
        return x.umin, x.umax
    c = x.const
    if c is not None:
        return c & U32, c & U32
    return 0, U32


def _shift_amounts(lo: int, hi: int, width: int) -> tuple[int, int]:
    return (lo, hi) if hi < width else (0, width - 1)


def _unsigned_bounds(op: str, alo: int, ahi: int, blo: int, bhi: int, width: int):
    """Unbounded-integer result bounds of ``op``, or None when nothing is known."""
    if op == "add":
        return alo + blo, ahi + bhi
    if op == "sub":
        return alo - bhi, ahi - blo
    if op == "mul":
        return alo * blo, ahi * bhi
    if op == "div":  # by 0 gives 0
        if bhi == 0:
            return 0, 0
        return (alo // bhi if blo else 0), ahi // max(blo, 1)
    if op == "mod":  # by 0 keeps dst
        if bhi == 0:
            return alo, ahi
        return 0, (min(ahi, bhi - 1) if blo else ahi)
    if op == "and":
        return 0, min(ahi, bhi)
    if op == "or":
        return max(alo, blo), (1 << max(ahi, bhi).bit_length()) - 1
    if op == "xor":
        return 0, (1 << max(ahi, bhi).bit_length()) - 1
    if op == "lsh":
        klo, khi = _shift_amounts(blo, bhi, width)
        return alo << klo, ahi << khi
    if op == "rsh":
        klo, khi = _shift_amounts(blo, bhi, width)
        return alo >> khi, ahi >> klo
    if op == "mov":
        return blo, bhi
    return None


def _signed_bounds64(op: str, a: Scalar, b: Scalar):
    if op == "add":
        return a.smin + b.smin, a.smax + b.smax
    if op == "sub":
        return a.smin - b.smax, a.smax - b.smin
    if op == "arsh":
        klo, khi = _shift_amounts(b.umin, b.umax, 64)
        return min(a.smin >> klo, a.smin >> khi), max(a.smax >> klo, a.smax >> khi)
    if op == "neg":
        return -a.smax, -a.smin
    if op == "mov":
        return b.smin, b.smax
    return None


def _fold(op: str, a: int, b: int, width: int) -> Scalar:
    mask = (1 << width) - 1
    return constant(CONCRETE[op](a & mask, b & mask, width) & mask)


def alu64(op: str, a: Scalar, b: Scalar) -> Scalar:
    if a.const is not None and b.const is not None:
        return _fold(op, a.const, b.const, 64)
    umin, umax, smin, smax = 0, U64, S64_MIN, S64_MAX
    ub = _unsigned_bounds(op, a.umin, a.umax, b.umin, b.umax, 64)
    if ub is not None and 0 <= ub[0] and ub[1] <= U64:
        umin, umax = ub
    sb = _signed_bounds64(op, a, b)
    if sb is not None and S64_MIN <= sb[0] and sb[1] <= S64_MAX:
        smin, smax = sb
    return make(umin, umax, smin, smax) or UNKNOWN


def alu32(op: str, a: Scalar, b: Scalar) -> Scalar:
    alo, ahi = low32(a)
    blo, bhi = low32(b)
    if alo == ahi and blo == bhi:
        return _fold(op, alo, blo, 32)
    ub = _unsigned_bounds(op, alo, ahi, blo, bhi, 32)
    if ub is not None and 0 <= ub[0] and ub[1] <= U32:
        return unsigned_range(*ub)
    return unsigned_range(0, U32)


def sign_extend(src: Scalar, bits: int, width: int) -> Scalar:
    """``movsx``: the low ``bits`` of ``src`` sign-extended, cut to ``width``."""
    c = src.const
    if c is not None:
        return constant(to_signed(c, bits) & ((1 << width) - 1))
    if src.umax < 1 << (bits - 1):
        return src if width == 64 else unsigned_range(*low32(src))
    return of_width(bits, signed=True) if width == 64 else unsigned_range(0, U32)


def byte_order(dst: Scalar, bits: int, swaps: bool) -> Scalar:
    """le/be/bswap: keep the low ``bits`` (swapped when ``swaps``)."""
    mask = (1 << bits) - 1
    c = dst.const
    if c is not None:
        value = c & mask
        return constant(int.from_bytes(value.to_bytes(bits // 8, "little"), "big") if swaps else value)
    if not swaps and dst.umax <= mask:
        return dst
    return of_width(bits)


# ------------------------------------------------------------ branch refinement

def _lt(d: Scalar, s: Scalar, signed: bool):
    if signed:
        return make(d.umin, d.umax, d.smin, min(d.smax, s.smax - 1)), \
            make(s.umin, s.umax, max(s.smin, d.smin + 1), s.smax)
    return make(d.umin, min(d.umax, s.umax - 1), d.smin, d.smax), \
        make(max(s.umin, d.umin + 1), s.umax, s.smin, s.smax)


def _le(d: Scalar, s: Scalar, signed: bool):
    if signed:
        return make(d.umin, d.umax, d.smin, min(d.smax, s.smax)), \
            make(s.umin, s.umax, max(s.smin, d.smin), s.smax)
    return make(d.umin, min(d.umax, s.umax), d.smin, d.smax), \
        make(max(s.umin, d.umin), s.umax, s.smin, s.smax)


def _eq(d: Scalar, s: Scalar, signed: bool):
    both = intersect(d, s)
    return both, both


def _trim(x: Scalar, c: int) -> Scalar | None:
    """``x`` known to differ from the constant ``c``: drop ``c`` from an edge."""
    if x.const == c:
        return None
    umin, umax = x.umin + (x.umin == c), x.umax - (x.umax == c)
    return make(umin, umax, x.smin, x.smax)


def _ne(d: Scalar, s: Scalar, signed: bool):
    if s.const is not None:
        return _trim(d, s.const), s
    if d.const is not None:
        return d, _trim(s, d.const)
    return d, s


def _swapped(rel):
    return lambda d, s, signed: tuple(reversed(rel(s, d, signed)))


# jump op -> (relation when taken, relation when not taken, signed)
_RELATIONS = {
    "jeq": (_eq, _ne, False), "jne": (_ne, _eq, False),
    "jlt": (_lt, _swapped(_le), False), "jle": (_le, _swapped(_lt), False),
    "jgt": (_swapped(_lt), _le, False), "jge": (_swapped(_le), _lt, False),
    "jslt": (_lt, _swapped(_le), True), "jsle": (_le, _swapped(_lt), True),
    "jsgt": (_swapped(_lt), _le, True), "jsge": (_swapped(_le), _lt, True),
}

SIGNED_JUMPS = frozenset(op for op, (_, _, signed) in _RELATIONS.items() if signed)


def refine(op: str, d: Scalar, s: Scalar, taken: bool):
    """(dst, src) narrowed by the branch outcome; None when that outcome is impossible.

    The comparison is the 64-bit one; jset narrows nothing.
    """
    if d.const is not None and s.const is not None:
        return (d, s) if CONCRETE_JUMP[op](d.const, s.const, 64) == taken else None
    if op not in _RELATIONS:
        return d, s
    when_taken, when_not, signed = _RELATIONS[op]
    nd, ns = (when_taken if taken else when_not)(d, s, signed)
    if nd is None or ns is None:
        return None
    return nd, ns
