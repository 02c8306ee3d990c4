"""The simulated GPU's SMs: what a CTA needs (threads, registers, shared
memory, one of the SM's CTA slots), what each SM has left, and the rule
that picks the SM a new CTA is placed on.

Register and shared-memory allocation granularity (registers are handed
out per warp in fixed-size chunks, shared memory in fixed-size blocks) is
not modelled: a CTA takes exactly what it asks for."""
from __future__ import annotations

from dataclasses import dataclass

#: how a new CTA's SM is chosen among those it fits on
PLACEMENTS = ("most_free", "lowest_id")


@dataclass(frozen=True)
class CtaShape:
    """One CTA's resources: ``threads``, ``registers`` per thread, ``shared_bytes`` per CTA."""
    threads: int
    registers: int
    shared_bytes: int

    @property
    def register_total(self) -> int:
        return self.threads * self.registers


@dataclass(frozen=True)
class SmLimits:
    """One SM's resources, and the per-CTA limits of the architecture."""
    threads: int
    registers: int
    shared_bytes: int
    ctas: int
    cta_threads: int
    cta_shared_bytes: int
    thread_registers: int

    def refusal(self, shape: CtaShape) -> str | None:
        """Why a CTA of ``shape`` can never run on such an SM (None: it can)."""
        if shape.threads > self.cta_threads:
            return f"threads must be at most {self.cta_threads} per CTA, got {shape.threads}"
        if shape.registers > self.thread_registers:
            return f"registers must be at most {self.thread_registers} per thread, got {shape.registers}"
        if shape.shared_bytes > self.cta_shared_bytes:
            return f"shared_bytes must be at most {self.cta_shared_bytes} per CTA, got {shape.shared_bytes}"
        if shape.register_total > self.registers:
            return (f"a CTA of {shape.threads} threads x {shape.registers} registers needs {shape.register_total} "
                    f"registers, more than an SM's {self.registers}")
        return None

    def per_sm(self, shape: CtaShape) -> int:
        """How many CTAs of ``shape`` an empty SM holds (its occupancy)."""
        counts = [self.ctas, self.threads // shape.threads, self.registers // shape.register_total]
        if shape.shared_bytes:
            counts.append(self.shared_bytes // shape.shared_bytes)
        return min(counts)


class SM:
    """One SM's resident CTAs and what they hold of its resources."""

    def __init__(self, index: int, limits: SmLimits):
        self.index = index
        self.limits = limits
        self.threads = self.registers = self.shared_bytes = self.ctas = 0
        self.reserved = False          # the control CTA's: no other CTA is placed here
        self.tenants: dict = {}        # tenant -> resident CTAs of it

    def fits(self, shape: CtaShape) -> bool:
        lim = self.limits
        return (not self.reserved and self.ctas < lim.ctas and self.threads + shape.threads <= lim.threads
                and self.registers + shape.register_total <= lim.registers
                and self.shared_bytes + shape.shared_bytes <= lim.shared_bytes)

    def room(self) -> float:
        """The free share of the SM's scarcest resource (1: empty, 0: something is used up)."""
        lim = self.limits
        return min(1 - self.threads / lim.threads, 1 - self.registers / lim.registers,
                   1 - self.shared_bytes / lim.shared_bytes, 1 - self.ctas / lim.ctas)

    def take(self, shape: CtaShape, tenant: int) -> None:
        self._add(shape, 1)
        self.tenants[tenant] = self.tenants.get(tenant, 0) + 1

    def give(self, shape: CtaShape, tenant: int) -> None:
        self._add(shape, -1)
        self.tenants[tenant] -= 1
        if not self.tenants[tenant]:
            del self.tenants[tenant]

    def _add(self, shape: CtaShape, sign: int) -> None:
        self.threads += sign * shape.threads
        self.registers += sign * shape.register_total
        self.shared_bytes += sign * shape.shared_bytes
        self.ctas += sign


def place(sms: list, shape: CtaShape, rule: str) -> SM | None:
    """The SM a new CTA of ``shape`` goes to under ``rule`` (None: it fits on none).
    ``most_free``: the SM with the most room left (ties: the lowest index);
    ``lowest_id``: the first SM it fits on."""
    best, best_room = None, -1.0
    for sm in sms:
        if not sm.fits(shape):
            continue
        if rule == "lowest_id":
            return sm
        room = sm.room()
        if room > best_room:
            best, best_room = sm, room
    return best
