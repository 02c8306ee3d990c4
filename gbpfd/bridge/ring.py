"""The host's ends of the bridge rings: producer of commands, consumer of events.

The device's ends are ``gbpfd.device.ringbuf``.  Both rings are single
producer, single consumer over the host area (one int64 array of
``layout.HOST_WORDS`` words): ``head`` counts records ever written and is
written only by the producer, ``tail`` counts records ever read and is
written only by the consumer, and the record of count ``n`` lives in slot
``n % slots``.

Memory ordering.  A producer must make a record's words visible before the
``head`` that publishes it; a consumer must finish reading a record before
the ``tail`` that lets the producer reuse its slot.  The device does its
half with ``ld.acquire.sys`` / ``st.release.sys``.  On the host, numpy
element stores and loads happen in program order (separate C calls the
compiler cannot move across), and on x86-64 (TSO) the processor keeps
stores in order with stores and loads in order with loads and with later
stores, so plain numpy accesses would already be enough there.  A weakly
ordered host (aarch64, POWER) may let the ``head`` store overtake the
record stores, or the ``tail`` store overtake the record loads.  So the
host reads the other side's index with an acquire load and writes its own
with a release store (``load_acquire`` / ``store_release`` below: LLVM
atomics, plain ``mov`` on x86-64, ``ldar`` / ``stlr`` on aarch64).  A
release store orders every earlier memory access of the thread, the numpy
ones included, so the protocol holds on both kinds of host.
"""
from __future__ import annotations

import threading
import time

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from gbpfd.bridge import layout
from gbpfd.bridge.events import OP_NAMES, Event
from gbpfd.errors import GbpfdError

#: first wait while the command ring is full; doubled up to the maximum
FULL_WAIT_FIRST_S = 20e-6
FULL_WAIT_MAX_S = 1e-3


class RingFullError(GbpfdError):
    """The device left the command ring full for the whole timeout."""


def _item_pointer(context, builder, sig, args):
    array_type = sig.args[0]
    array = context.make_array(array_type)(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, array_type, array, [args[1]])


@intrinsic
def _atomic_load_acquire(typingctx, array, index):
    def codegen(context, builder, sig, args):
        return builder.load_atomic(_item_pointer(context, builder, sig, args), "acquire", 8)
    return types.int64(array, index), codegen


@intrinsic
def _atomic_store_release(typingctx, array, index, value):
    def codegen(context, builder, sig, args):
        word = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(word, _item_pointer(context, builder, sig, args), "release", 8)
        return context.get_dummy_value()
    return types.void(array, index, value), codegen


# cached on disk: a host tool that only drains events should not compile first
@numba.njit(nogil=True, cache=True)
def load_acquire(host, index):
    return _atomic_load_acquire(host, index)


@numba.njit(nogil=True, cache=True)
def store_release(host, index, value):
    _atomic_store_release(host, index, value)


class _RingArea:
    """Where one ring lives in the host area, and a (slots, words) view of its records."""

    def __init__(self, name: str, host: np.ndarray, region: int, slots: int, words: int):
        self.name, self.host, self.slots = name, host, slots
        self.head, self.tail = region + layout.RING.head, region + layout.RING.tail
        self.dropped = region + layout.RING.dropped
        records = region + len(layout.RING)
        self.records = host[records:records + slots * words].reshape(slots, words)
        if host[region + layout.RING.slots] != slots:
            raise ValueError(f"{name}: the slots word holds {host[region + layout.RING.slots]}, "
                             f"the layout says {slots}; call init_rings(host) when creating the area")


def _check_host(host) -> None:
    if not (isinstance(host, np.ndarray) and host.dtype == np.int64 and host.shape == (layout.HOST_WORDS,)
            and host.flags.c_contiguous):
        shape = getattr(host, "shape", None)
        dtype = getattr(host, "dtype", type(host).__name__)
        raise ValueError(f"host area: expected a contiguous int64 array of {layout.HOST_WORDS} words, "
                         f"got {dtype} of shape {shape}")


def init_rings(host: np.ndarray) -> None:
    """Write both rings' ``slots`` words; the creator of the area calls this once."""
    _check_host(host)
    host[layout.REGION.command_ring + layout.RING.slots] = layout.COMMAND_SLOTS
    host[layout.REGION.event_ring + layout.RING.slots] = layout.EVENT_SLOTS


def _op_id(op: str | int) -> int:
    if isinstance(op, str):
        code = layout.COMMAND_OPS.get(op)
        if code is None:
            raise ValueError(f"command ring: unknown op {op!r}; the ops are {', '.join(layout.COMMAND_OPS)}")
        return code.id
    if not isinstance(op, (int, np.integer)):
        raise TypeError(f"command ring: op must be an op name or id, got {op!r}")
    # ids outside the layout pass: the device answers them with a bad_command event
    return int(op)


class CommandRing:
    """Host producer of the command ring (the control CTA consumes)."""

    def __init__(self, host: np.ndarray):
        _check_host(host)
        self._ring = _RingArea("command ring", host, layout.REGION.command_ring, layout.COMMAND_SLOTS,
                               len(layout.COMMAND))
        # the ring has one producer: the lock makes concurrent host callers that one producer
        self._lock = threading.Lock()

    def pending(self) -> int:
        """Commands written and not yet consumed by the device."""
        ring = self._ring
        return int(ring.host[ring.head]) - load_acquire(ring.host, ring.tail)

    @property
    def dropped(self) -> int:
        """Commands given up on because the ring stayed full."""
        return int(self._ring.host[self._ring.dropped])

    def push(self, op: str | int, *, hook: int = -1, slot: int = -1, program: int = -1, arg0: int = 0,
             arg1: int = 0, arg2: int = 0, timeout_s: float = 1.0) -> int:
        """Write one command and return its ``seq`` (1 for the first command).

        Waits up to ``timeout_s`` for a free slot; then counts the command in
        ``dropped`` and raises ``RingFullError``.
        """
        record = [0] * len(layout.COMMAND)
        record[layout.COMMAND.op] = _op_id(op)
        for index, value in ((layout.COMMAND.hook, hook), (layout.COMMAND.slot, slot),
                             (layout.COMMAND.program, program), (layout.COMMAND.arg0, arg0),
                             (layout.COMMAND.arg1, arg1), (layout.COMMAND.arg2, arg2)):
            if not isinstance(value, (int, np.integer)):
                raise TypeError(f"command ring: {layout.COMMAND._fields[index]} must be an int, got {value!r}")
            record[index] = value
        ring = self._ring
        with self._lock:
            head = int(ring.host[ring.head])
            record[layout.COMMAND.seq] = head + 1
            self._wait_for_slot(head, timeout_s, record)
            ring.records[head % ring.slots] = record
            store_release(ring.host, ring.head, head + 1)
        return head + 1

    def _wait_for_slot(self, head: int, timeout_s: float, record: list[int]) -> None:
        ring = self._ring
        deadline = time.monotonic() + timeout_s
        wait_s = FULL_WAIT_FIRST_S
        while head - load_acquire(ring.host, ring.tail) >= ring.slots:
            left = deadline - time.monotonic()
            if left <= 0:
                op_id = record[layout.COMMAND.op]
                ring.host[ring.dropped] += 1
                raise RingFullError(
                    f"command ring: full, the device left all {ring.slots} records unread for {timeout_s:g} s; "
                    f"{OP_NAMES.get(op_id, f'op {op_id}')} command seq {record[layout.COMMAND.seq]} dropped")
            time.sleep(min(wait_s, left))
            wait_s = min(2 * wait_s, FULL_WAIT_MAX_S)


class EventRing:
    """Host consumer of the event ring (the control CTA produces)."""

    def __init__(self, host: np.ndarray):
        _check_host(host)
        self._ring = _RingArea("event ring", host, layout.REGION.event_ring, layout.EVENT_SLOTS,
                               len(layout.EVENT))
        self._lock = threading.Lock()

    @property
    def dropped(self) -> int:
        """Events the device could not write because the ring was full."""
        return int(self._ring.host[self._ring.dropped])

    @property
    def read_total(self) -> int:
        """Events read from the ring, ever (its ``tail``)."""
        return int(self._ring.host[self._ring.tail])

    def drain(self, limit: int | None = None) -> list[Event]:
        """Take the events written so far (at most ``limit``), oldest first."""
        if limit is not None and limit < 0:
            raise ValueError(f"event ring: drain limit must be None or >= 0, got {limit}")
        ring = self._ring
        with self._lock:
            head = load_acquire(ring.host, ring.head)
            tail = int(ring.host[ring.tail])
            if not 0 <= head - tail <= ring.slots:
                raise GbpfdError(f"event ring: head {head} and tail {tail} are not within {ring.slots} "
                                 f"records of each other; the host area is corrupt")
            count = head - tail if limit is None else min(head - tail, limit)
            start = tail % ring.slots
            first = min(count, ring.slots - start)
            rows = np.concatenate((ring.records[start:start + first], ring.records[:count - first]))
            # the slots are the device's again only after the copy above
            store_release(ring.host, ring.tail, tail + count)
        return [Event.from_words(words) for words in rows.tolist()]
