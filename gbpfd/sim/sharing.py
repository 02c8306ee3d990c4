"""How fast running blocks progress when they share an SM's issue rate and
the GPU's HBM bandwidth: processor sharing, in discrete events.

A block's work is its time alone on an idle GPU (``block_ns``).  Its
progress rate, in work per ns, is

    share(SM) * clock * memory_factor (memory-moving blocks only)

* ``share(SM) = 1 / max(1, sum of the issue utilisations of the blocks
  running on the SM)``: each kernel declares the fraction of an SM's issue
  rate one of its CTAs uses alone; while the SM is oversubscribed every
  block on it slows by the same factor.
* ``clock = 1 - clock_droop * busy SMs / all SMs``: the SM clock falling as
  more SMs work (0 droop: a fixed clock).
* ``memory_factor = min(1, HBM bandwidth / demand)``: a memory-moving block
  asks for ``bytes / block_ns`` at full speed; the demand of all of them,
  at the speed the two factors above leave them, is capped at the HBM
  bandwidth, and each gets the same fraction of what it asks (shares in
  proportion to demand).  One block alone thus takes
  ``max(block_ns, bytes / bandwidth)``.

Blocks that move no bytes and blocks that do form two classes; all blocks
of a class see the same global factor, so each class keeps a virtual
clock (work done by a block of share 1 since the start) and each block
the virtual time at which it finishes.  A change on one SM re-keys only
that SM's blocks, a change of a global factor only moves the class's
virtual clock; one completion event per class is pending at a time, and
a stale one is ignored by its version."""
from __future__ import annotations

import heapq

COMPUTE, MEMORY = 0, 1


class Block:
    """One running block: its SM, what it declares, and where it finishes."""
    __slots__ = ("demand", "issue", "key", "on_done", "seq", "sm", "version")

    def __init__(self, sm: int, issue: float, demand: float, seq: int, on_done):
        self.sm, self.issue, self.demand, self.seq, self.on_done = sm, issue, demand, seq, on_done
        self.key = 0.0
        self.version = 0

    @property
    def kind(self) -> int:
        return MEMORY if self.demand else COMPUTE


class _Class:
    """The virtual clock and the finishing order of one class of blocks."""

    def __init__(self):
        self.clock = 0.0       # virtual work of a share-1 block since the start
        self.at = 0            # the real time ``clock`` is for
        self.rate = 1.0        # virtual work per real ns now
        self.heap: list = []   # (key, seq, version, block); entries of an older version are stale
        self.version = 0       # of the pending completion event
        self.planned = None    # (heap entry, rate) the pending event was planned for

    def advance(self, now: int) -> None:
        self.clock += (now - self.at) * self.rate
        self.at = now

    def top(self):
        while self.heap and self.heap[0][2] != self.heap[0][3].version:
            heapq.heappop(self.heap)
        return self.heap[0] if self.heap else None


class Sharing:
    """The running blocks of a GPU of ``num_sms`` SMs.  ``schedule(when,
    seq, fn, *args)`` puts an event on the device's queue (``seq`` orders
    events of the same ns); ``now()`` is the device's time."""

    def __init__(self, num_sms: int, hbm_bytes_per_s: float, clock_droop: float, schedule, now):
        self.num_sms = num_sms
        self.hbm_bytes_per_ns = hbm_bytes_per_s / 1e9
        self.clock_droop = clock_droop
        self._schedule, self._now = schedule, now
        self.blocks: list = [[] for _ in range(num_sms)]   # running blocks by SM
        self.share = [1.0] * num_sms
        self._demand = [0.0] * num_sms    # bytes per ns the SM's blocks ask for at their share
        self._busy = 0                    # SMs with a running block
        self._classes = (_Class(), _Class())

    def start(self, sm: int, work_ns: float, issue: float, demand: float, seq: int, on_done) -> Block:
        """Start a block of ``work_ns`` alone on ``sm``; ``on_done()`` runs when it finishes."""
        self._advance()
        block = Block(sm, issue, demand, seq, on_done)
        if not self.blocks[sm]:
            self._busy += 1
        self.blocks[sm].append(block)
        self._reshare(sm, block)
        self._key(block, work_ns / self.share[sm])
        self._replan()
        return block

    def _advance(self) -> None:
        now = self._now()
        for cls in self._classes:
            cls.advance(now)

    def _reshare(self, sm: int, new: Block | None = None) -> None:
        """Recompute ``sm``'s share after a block came or went; re-key the blocks already there."""
        blocks, old = self.blocks[sm], self.share[sm]
        share = 1.0 / max(1.0, sum(b.issue for b in blocks))
        self.share[sm] = share
        self._demand[sm] = share * sum(b.demand for b in blocks)
        if share == old:
            return
        for b in blocks:
            if b is not new:
                cls = self._classes[b.kind]
                self._key(b, (b.key - cls.clock) * old / share)

    def _key(self, block: Block, span: float) -> None:
        """Block finishes ``span`` virtual ns from now in its class."""
        cls = self._classes[block.kind]
        block.version += 1
        block.key = cls.clock + span
        heapq.heappush(cls.heap, (block.key, block.seq, block.version, block))

    def _replan(self) -> None:
        """Set each class's rate from the global factors; re-plan its next completion if anything moved."""
        clock = 1.0 - self.clock_droop * self._busy / self.num_sms
        demand = clock * sum(self._demand)
        memory = clock * min(1.0, self.hbm_bytes_per_ns / demand) if demand > 0 else clock
        for kind, rate in ((COMPUTE, clock), (MEMORY, memory)):
            cls = self._classes[kind]
            cls.rate = rate
            top = cls.top()
            if top is None or cls.planned == (top, rate):
                continue
            cls.planned = (top, rate)
            cls.version += 1
            self._schedule(round(cls.at + (top[0] - cls.clock) / rate), top[1], self._due, kind, cls.version)

    def _due(self, kind: int, version: int) -> None:
        cls = self._classes[kind]
        if version != cls.version:
            return
        self._advance()
        cls.top()   # drop stale entries: the one this event was planned for is next
        _, _, _, block = heapq.heappop(cls.heap)
        cls.planned = None
        sm = block.sm
        self.blocks[sm].remove(block)
        if not self.blocks[sm]:
            self._busy -= 1
        self._reshare(sm)
        self._replan()
        block.on_done()
