"""The host ends of the bridge rings against the device ends (``gbpfd.device.ringbuf``
compiled for the CPU): round trips across wrap-arounds, full rings, random
interleavings checked against a model queue, and real concurrent threads."""
from __future__ import annotations

import collections
import inspect
import threading
import time

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbpfd.bridge import layout
from gbpfd.bridge.events import Event
from gbpfd.bridge.ring import CommandRing, EventRing, RingFullError, init_rings
from gbpfd.device import prims_cpu, ringbuf
from gbpfd.specialize import specialize
from gbpfd.errors import GbpfdError

COMMAND_WORDS = len(layout.COMMAND)
EVENT_WORDS = len(layout.EVENT)
HANG_GUARD_S = 60  # threads that have not finished by then are stuck, not slow
KIND_CYCLE = len(layout.EVENT_KINDS) + 1  # every layout kind id and one the layout lacks


def event_word(n, word):
    """Word ``word`` of the ``n``-th test event (n >= 0): every word tells n apart."""
    if word == layout.EVENT.kind:
        return n % KIND_CYCLE + 1
    return n * 16 + word


def push_events(host, first, count):
    """Device side: push events first, first+1, ... until one is dropped; how many went in."""
    for n in range(first, first + count):
        if not event_push(host, event_word(n, 0), event_word(n, 1), event_word(n, 2), event_word(n, 3),
                          event_word(n, 4), event_word(n, 5), event_word(n, 6), event_word(n, 7)):
            return n - first
    return count


def take_commands(host, out):
    """Device side: consume the pending commands into ``out`` rows; how many."""
    taken = 0
    while taken < out.shape[0]:
        at = command_pending(host)
        if at < 0:
            break
        for word in range(out.shape[1]):
            out[taken, word] = host[at + word]
        command_release(host)
        taken += 1
    return taken


DEVICE = specialize((*ringbuf.DEVICE_FUNCTIONS, event_word, push_events, take_commands), prims_cpu.PRIMS,
                            numba.njit(nogil=True))


def expected_event(n) -> Event:
    return Event.from_words([event_word(n, w) for w in range(EVENT_WORDS)])


def device_take(host, limit=layout.COMMAND_SLOTS) -> list[list[int]]:
    out = np.zeros((limit, COMMAND_WORDS), np.int64)
    return out[:DEVICE.take_commands(host, out)].tolist()


def area_after(command_records: int, event_records: int) -> np.ndarray:
    """A host area whose rings have already passed that many records each (and are empty)."""
    area = np.zeros(layout.HOST_WORDS, np.int64)
    init_rings(area)
    for region, count in ((layout.REGION.command_ring, command_records), (layout.REGION.event_ring, event_records)):
        area[region + layout.RING.head] = area[region + layout.RING.tail] = count
    return area


@pytest.fixture
def host():
    return area_after(0, 0)


def command(seq, op, *, hook=-1, slot=-1, program=-1, arg0=0, arg1=0, arg2=0) -> list[int]:
    words = [0] * COMMAND_WORDS
    for name, value in (("op", op), ("seq", seq), ("hook", hook), ("slot", slot), ("program", program),
                        ("arg0", arg0), ("arg1", arg1), ("arg2", arg2)):
        words[getattr(layout.COMMAND, name)] = value
    return words


# ------------------------------------------------------------------ the area

def test_init_rings_writes_the_slots_words_and_nothing_else():
    area = np.zeros(layout.HOST_WORDS, np.int64)
    init_rings(area)
    written = {int(i): int(area[i]) for i in np.flatnonzero(area)}
    assert written == {layout.REGION.command_ring + layout.RING.slots: layout.COMMAND_SLOTS,
                       layout.REGION.event_ring + layout.RING.slots: layout.EVENT_SLOTS}


def test_rings_refuse_an_area_whose_slots_words_were_not_written():
    area = np.zeros(layout.HOST_WORDS, np.int64)
    with pytest.raises(ValueError) as err:
        CommandRing(area)
    assert str(err.value) == ("command ring: the slots word holds 0, the layout says 64; "
                              "call init_rings(host) when creating the area")
    with pytest.raises(ValueError) as err:
        EventRing(area)
    assert str(err.value) == ("event ring: the slots word holds 0, the layout says 4096; "
                              "call init_rings(host) when creating the area")


def test_rings_refuse_a_host_area_of_the_wrong_shape_or_type():
    with pytest.raises(ValueError) as err:
        init_rings(np.zeros(layout.HOST_WORDS, np.int32))
    assert str(err.value) == (f"host area: expected a contiguous int64 array of {layout.HOST_WORDS} words, "
                              f"got int32 of shape ({layout.HOST_WORDS},)")
    with pytest.raises(ValueError) as err:
        EventRing([0] * layout.HOST_WORDS)
    assert str(err.value) == (f"host area: expected a contiguous int64 array of {layout.HOST_WORDS} words, "
                              f"got list of shape None")


# ----------------------------------------------------------- command ring

def test_push_takes_every_command_field_of_the_layout_but_op_and_seq():
    params = inspect.signature(CommandRing.push).parameters
    fields = [name for name, p in params.items() if p.kind is p.KEYWORD_ONLY and name != "timeout_s"]
    assert ["op", "seq", *fields] == list(layout.COMMAND._fields)


def test_commands_arrive_in_order_across_several_wrap_arounds(host):
    ring = CommandRing(host)
    sent, received = [], []
    for batch in range(9):  # 9 batches of 50: seven trips round 64 slots
        for i in range(50):
            n = batch * 50 + i
            op = list(layout.COMMAND_OPS)[n % len(layout.COMMAND_OPS)]
            seq = ring.push(op, hook=n % 5, slot=n % 2, program=n, arg0=n << 33, arg1=-n, arg2=7)
            sent.append(command(seq, layout.COMMAND_OPS[op].id, hook=n % 5, slot=n % 2, program=n,
                                arg0=n << 33, arg1=-n, arg2=7))
        assert ring.pending() == 50
        received += device_take(host)
        assert ring.pending() == 0
    assert received == sent
    assert [words[layout.COMMAND.seq] for words in received] == list(range(1, 451))
    assert ring.dropped == 0


def test_push_takes_an_op_name_or_any_op_id(host):
    ring = CommandRing(host)
    assert ring.push("stop") == 1
    assert ring.push(layout.OP.quotas, arg0=5) == 2
    assert ring.push(99) == 3  # the device answers an unknown id with bad_command
    assert device_take(host) == [command(1, layout.OP.stop), command(2, layout.OP.quotas, arg0=5),
                                 command(3, 99)]


def test_push_refuses_an_unknown_op_name_and_a_non_integer_field(host):
    ring = CommandRing(host)
    with pytest.raises(ValueError) as err:
        ring.push("swapp")
    assert str(err.value) == "command ring: unknown op 'swapp'; the ops are swap, quotas, stop, periods, unload"
    with pytest.raises(TypeError) as err:
        ring.push("periods", arg1=2.5)
    assert str(err.value) == "command ring: arg1 must be an int, got 2.5"
    with pytest.raises(TypeError) as err:
        ring.push(None)
    assert str(err.value) == "command ring: op must be an op name or id, got None"
    assert ring.pending() == 0


def test_a_full_command_ring_raises_after_its_timeout_counts_the_drop_and_keeps_every_record(host):
    ring = CommandRing(host)
    for n in range(layout.COMMAND_SLOTS):
        ring.push("periods", arg0=n)
    before = host.copy()
    with pytest.raises(RingFullError) as err:
        ring.push("swap", hook=1, timeout_s=0.01)
    assert isinstance(err.value, GbpfdError)
    assert str(err.value) == ("command ring: full, the device left all 64 records unread for 0.01 s; "
                              "swap command seq 65 dropped")
    assert ring.dropped == 1
    changed = np.flatnonzero(host != before).tolist()
    assert changed == [layout.REGION.command_ring + layout.RING.dropped]
    assert ring.pending() == layout.COMMAND_SLOTS

    assert device_take(host, limit=1) == [command(1, layout.OP.periods, arg0=0)]
    assert ring.push("swap", hook=1, timeout_s=0) == 65
    taken = device_take(host)
    assert [words[layout.COMMAND.arg0] for words in taken[:-1]] == list(range(1, layout.COMMAND_SLOTS))
    assert taken[-1] == command(65, layout.OP.swap, hook=1)


def test_push_waits_for_the_device_to_free_a_slot(host):
    ring = CommandRing(host)
    for _ in range(layout.COMMAND_SLOTS):
        ring.push("stop")
    device = threading.Timer(0.05, device_take, args=(host, 1))
    device.start()
    assert ring.push("quotas", timeout_s=HANG_GUARD_S) == layout.COMMAND_SLOTS + 1
    device.join()
    assert ring.dropped == 0


# ------------------------------------------------------------- event ring

def test_events_arrive_in_order_across_several_wrap_arounds(host):
    ring = EventRing(host)
    first = 0
    for count in (3000, 4096, 1, 2500, 4095, 3333):  # about 4 trips round 4096 slots
        assert DEVICE.push_events(host, first, count) == count
        assert ring.drain() == [expected_event(n) for n in range(first, first + count)]
        first += count
    assert ring.read_total == first
    assert ring.dropped == 0
    assert ring.drain() == []


def test_drain_limit_takes_the_oldest_events_first(host):
    ring = EventRing(host)
    DEVICE.push_events(host, 0, 10)
    assert ring.drain(limit=3) == [expected_event(n) for n in range(3)]
    assert ring.drain(limit=0) == []
    assert ring.drain(limit=100) == [expected_event(n) for n in range(3, 10)]
    with pytest.raises(ValueError) as err:
        ring.drain(limit=-1)
    assert str(err.value) == "event ring: drain limit must be None or >= 0, got -1"


def test_a_full_event_ring_drops_new_events_counts_them_and_keeps_every_unread_one(host):
    ring = EventRing(host)
    assert DEVICE.push_events(host, 0, layout.EVENT_SLOTS) == layout.EVENT_SLOTS
    for n in range(layout.EVENT_SLOTS, layout.EVENT_SLOTS + 5):
        assert DEVICE.push_events(host, n, 1) == 0
    assert ring.dropped == 5
    assert ring.drain(limit=1) == [expected_event(0)]
    assert DEVICE.push_events(host, layout.EVENT_SLOTS + 5, 2) == 1  # one slot was freed
    assert ring.dropped == 6
    assert ring.drain() == [expected_event(n) for n in range(1, layout.EVENT_SLOTS)] + \
        [expected_event(layout.EVENT_SLOTS + 5)]


def test_drain_refuses_a_head_beyond_the_ring(host):
    host[layout.REGION.event_ring + layout.RING.head] = layout.EVENT_SLOTS + 7
    host[layout.REGION.event_ring + layout.RING.tail] = 6
    with pytest.raises(GbpfdError) as err:
        EventRing(host).drain()
    assert str(err.value) == ("event ring: head 4103 and tail 6 are not within 4096 records of each other; "
                              "the host area is corrupt")


# ------------------------------------------------ random interleavings

command_steps = st.lists(st.tuples(st.sampled_from(("push", "take")), st.integers(0, 80)), max_size=25)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 3 * layout.COMMAND_SLOTS), command_steps)
def test_command_ring_matches_a_model_queue(already, steps):
    area = area_after(already, 0)
    ring = CommandRing(area)
    model, next_seq, drops = collections.deque(), already + 1, 0
    for action, count in steps:
        if action == "take":
            assert device_take(area, limit=count) == [model.popleft() for _ in range(min(count, len(model)))]
        for _ in range(count if action == "push" else 0):
            if len(model) == layout.COMMAND_SLOTS:
                with pytest.raises(RingFullError):
                    ring.push("periods", arg0=next_seq, timeout_s=0)
                drops += 1
            else:
                assert ring.push("periods", arg0=next_seq, timeout_s=0) == next_seq
                model.append(command(next_seq, layout.OP.periods, arg0=next_seq))
                next_seq += 1
        assert ring.pending() == len(model)
        assert ring.dropped == drops


event_steps = st.lists(st.one_of(st.tuples(st.just("push"), st.integers(0, 3000)),
                                 st.tuples(st.just("drain"), st.none() | st.integers(0, 5000))), max_size=12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 3 * layout.EVENT_SLOTS), event_steps)
def test_event_ring_matches_a_model_queue(already, steps):
    area = area_after(0, already)
    ring = EventRing(area)
    model, offered, drops = collections.deque(), already, 0
    for action, count in steps:
        if action == "push":
            fits = min(count, layout.EVENT_SLOTS - len(model))
            assert DEVICE.push_events(area, offered, fits) == fits
            model.extend(range(offered, offered + fits))
            offered += fits
            for _ in range(count - fits):  # the rest find the ring full, one by one
                assert DEVICE.push_events(area, offered, 1) == 0
                drops += 1
        else:
            taken = len(model) if count is None else min(count, len(model))
            assert ring.drain(count) == [expected_event(model.popleft()) for _ in range(taken)]
        assert ring.dropped == drops
        assert ring.read_total == offered - len(model)


# ------------------------------------------------------ concurrent threads

def run_pair(producer, consumer):
    """Run both in their own threads; re-raise what either raised.  The
    consumer gets an Event that is set once the producer has failed."""
    failures, producer_failed = [], threading.Event()

    def guarded(fn, *args, on_failure=None):
        def body():
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                failures.append(exc)
                if on_failure:
                    on_failure.set()
        return threading.Thread(target=body, daemon=True)

    threads = [guarded(producer, on_failure=producer_failed), guarded(consumer, producer_failed)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(HANG_GUARD_S)
    assert not any(t.is_alive() for t in threads), f"a ring thread is stuck after {HANG_GUARD_S} s"
    if failures:
        raise failures[0]


def test_commands_from_a_host_thread_reach_a_concurrent_device_consumer_once_and_in_order(host):
    total = 40 * layout.COMMAND_SLOTS
    ring = CommandRing(host)
    received = []

    def produce():
        for n in range(total):
            ring.push("periods", arg0=n, arg1=n * 3, timeout_s=HANG_GUARD_S)

    def consume(producer_failed):
        deadline = time.monotonic() + HANG_GUARD_S
        while len(received) < total and time.monotonic() < deadline and not producer_failed.is_set():
            taken = device_take(host)
            received.extend(taken)
            if not taken:
                time.sleep(0)

    run_pair(produce, consume)
    assert received == [command(n + 1, layout.OP.periods, arg0=n, arg1=n * 3) for n in range(total)]
    assert ring.dropped == 0


def test_events_from_a_device_thread_reach_a_concurrent_host_consumer_once_and_in_order(host):
    total = 6 * layout.EVENT_SLOTS
    ring = EventRing(host)
    received = []

    def produce():
        offered = 0
        while offered < total:
            pushed = DEVICE.push_events(host, offered, min(31, total - offered))
            offered += pushed
            if not pushed:
                time.sleep(0)  # full: the device would retry on its next loop

    def consume(producer_failed):
        deadline = time.monotonic() + HANG_GUARD_S
        while len(received) < total and time.monotonic() < deadline and not producer_failed.is_set():
            received.extend(ring.drain(limit=97))  # odd sizes: drains straddle pushes and the wrap

    run_pair(produce, consume)
    assert received == [expected_event(n) for n in range(total)]
    assert ring.read_total == total
