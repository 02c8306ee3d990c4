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
S32_MIN = -(1 << 31)
S32_MAX = (1 << 31) - 1


class Scalar:
    """``lo32``, when not None, is (u32min, u32max, s32min, s32max): bounds of
    the low 32 bits, read unsigned and signed, tighter than the 64-bit bounds
    imply (a 32-bit comparison learns them); None means "implied"."""

    __slots__ = ("umin", "umax", "smin", "smax", "lo32")

    def __init__(self, umin: int, umax: int, smin: int, smax: int, lo32: tuple | None = None):
        self.umin, self.umax, self.smin, self.smax, self.lo32 = umin, umax, smin, smax, lo32

    @property
    def const(self) -> int | None:
        return self.umin if self.umin == self.umax else None

    def __eq__(self, other) -> bool:
        return isinstance(other, Scalar) and (self.umin, self.umax, self.smin, self.smax, self.lo32) == (
            other.umin, other.umax, other.smin, other.smax, other.lo32)

    def __hash__(self) -> int:
        return hash((self.umin, self.umax, self.smin, self.smax, self.lo32))

    def contains(self, other: "Scalar") -> bool:
        if not (self.umin <= other.umin and other.umax <= self.umax
                and self.smin <= other.smin and other.smax <= self.smax):
            return False
        # implied 32-bit bounds cover every low half of the 64-bit range, other's included
        if self.lo32 is None:
            return True
        mine, theirs = self.lo32, bounds32(other)
        return mine[0] <= theirs[0] and theirs[1] <= mine[1] and mine[2] <= theirs[2] and theirs[3] <= mine[3]

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
        if self.lo32 is not None:
            u32min, u32max, s32min, s32max = self.lo32
            parts.append(f"u32min={u32min},u32max={u32max}")
            if (s32min, s32max) != ((u32min, u32max) if u32max <= S32_MAX else (S32_MIN, S32_MAX)):
                parts.append(f"s32min={s32min},s32max={s32max}")
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
    if x.lo32 is not None:
        return x.lo32[0], x.lo32[1]
    if x.umax <= U32:
        return x.umin, x.umax
    if x.umin >> 32 == x.umax >> 32:  # one upper half: the low halves run in order
        return x.umin & U32, x.umax & U32
    return 0, U32


def bounds32(x: Scalar) -> tuple[int, int, int, int]:
    """(u32min, u32max, s32min, s32max) of the low 32 bits of ``x``."""
    if x.lo32 is not None:
        return x.lo32
    ulo, uhi = low32(x)
    if S32_MIN <= x.smin and x.smax <= S32_MAX:
        slo, shi = x.smin, x.smax
    elif uhi <= S32_MAX or ulo > S32_MAX:  # one sign: the signed view is the unsigned one, shifted
        slo, shi = to_signed(ulo, 32), to_signed(uhi, 32)
    else:
        slo, shi = S32_MIN, S32_MAX
    return ulo, uhi, slo, shi


def _with_low32(x: Scalar, u32min: int, u32max: int, s32min: int, s32max: int) -> Scalar | None:
    """``x`` whose low 32 bits are also known to lie in the given bounds; None if empty."""
    for _ in range(2):  # the unsigned and signed 32-bit views tighten each other
        if s32min >= 0 or s32max < 0:
            u32min, u32max = max(u32min, s32min & U32), min(u32max, s32max & U32)
        if u32max <= S32_MAX or u32min > S32_MAX:
            s32min, s32max = max(s32min, to_signed(u32min, 32)), min(s32max, to_signed(u32max, 32))
    if u32min > u32max or s32min > s32max:
        return None
    umin, umax = x.umin, x.umax
    if umin >> 32 == umax >> 32:  # a known upper half: the 64-bit bounds follow the low ones
        high = umin & ~U32
        umin, umax = max(umin, high | u32min), min(umax, high | u32max)
    y = make(umin, umax, x.smin, x.smax)
    if y is None:
        return None
    lo32 = (u32min, u32max, s32min, s32max)
    if y.lo32 is None and lo32 == bounds32(y):
        return y  # the 64-bit bounds say it all
    return Scalar(y.umin, y.umax, y.smin, y.smax, lo32)


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


def _view32(x: Scalar, signed: bool) -> Scalar:
    """The low 32 bits of ``x`` as a 64-bit scalar (sign-extended when ``signed``),
    so the 64-bit relations compare them as a 32-bit comparison does."""
    u32min, u32max, s32min, s32max = bounds32(x)
    return signed_range(s32min, s32max) if signed else unsigned_range(u32min, u32max)


def refine32(op: str, d: Scalar, s: Scalar, taken: bool):
    """Like ``refine``, for the 32-bit comparison: bounds the low halves."""
    signed = op in SIGNED_JUMPS
    vd, vs = _view32(d, signed), _view32(s, signed)
    refined = refine(op, vd, vs, taken)
    if refined is None:
        return None
    nd, ns = refined

    def narrowed(x: Scalar, view: Scalar, new: Scalar) -> Scalar | None:
        if new is view:
            return x
        u32min, u32max, s32min, s32max = bounds32(x)
        if signed:
            return _with_low32(x, u32min, u32max, max(s32min, new.smin), min(s32max, new.smax))
        return _with_low32(x, max(u32min, new.umin), min(u32max, new.umax), s32min, s32max)

    rd, rs = narrowed(d, vd, nd), narrowed(s, vs, ns)
    if rd is None or rs is None:
        return None
    return rd, rs


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
