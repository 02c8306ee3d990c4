"""The device's ends of the bridge rings (shared source, see ``gbpfd.specialize``).

Event ring: the control CTA is the only producer.  Command ring: it is the
only consumer.  ``head``/``tail`` count records ever written/read; a record
is published by writing its words, then ``head`` with release semantics,
and freed by writing ``tail`` with release semantics after its words were
read.  A full event ring drops the new record and counts it: nothing unread
is overwritten.  The serving warp does not write the host ring itself: its
events go through a small queue in device memory that housekeeping
forwards (``event_stage``, ``forward_staged``), so the request path never
writes over PCIe.
"""
from gbpfd.bridge.layout import COMMAND_SLOTS, COMMAND_WORDS, EVENT, EVENT_SLOTS, EVENT_WORDS, REGION, RING
from gbpfd.device.state import PLANE, STAGED_BASE, STAGED_EVENTS

EVENT_BASE = REGION.event_ring
EVENT_RECORDS = EVENT_BASE + len(RING)
EVENT_STRIDE = len(EVENT_WORDS)
COMMAND_BASE = REGION.command_ring
COMMAND_RECORDS = COMMAND_BASE + len(RING)
COMMAND_STRIDE = len(COMMAND_WORDS)


def write_event(words, at, kind, time_ns, hook, program, tenant, arg0, arg1, arg2):
    """One event record's words at ``at`` (published by the caller's release store)."""
    words[at + EVENT.kind] = kind
    words[at + EVENT.time_ns] = time_ns
    words[at + EVENT.hook] = hook
    words[at + EVENT.program] = program
    words[at + EVENT.tenant] = tenant
    words[at + EVENT.arg0] = arg0
    words[at + EVENT.arg1] = arg1
    words[at + EVENT.arg2] = arg2


def event_push(host, kind, time_ns, hook, program, tenant, arg0, arg1, arg2):
    """Append one event; False (and counted in ``dropped``) when the ring is full."""
    head = host[EVENT_BASE + RING.head]  # only this producer writes head
    tail = load_acquire_sys(host, EVENT_BASE + RING.tail)
    if head - tail >= EVENT_SLOTS:
        host[EVENT_BASE + RING.dropped] += 1
        return False
    write_event(host, EVENT_RECORDS + (head % EVENT_SLOTS) * EVENT_STRIDE, kind, time_ns, hook, program, tenant,
                arg0, arg1, arg2)
    store_release_sys(host, EVENT_BASE + RING.head, head + 1)
    return True


def event_stage(ctl, kind, time_ns, hook, program, tenant, arg0, arg1, arg2):
    """The serving warp's ``event_push``: into the device-memory queue; False
    (counted, and added to the ring's drops when forwarded) when it is full."""
    head = ctl[PLANE.staged_head]  # only the serving warp writes head
    if head - load_acquire(ctl, PLANE.staged_tail) >= STAGED_EVENTS:
        atomic_add(ctl, PLANE.staged_dropped, 1)
        return False
    write_event(ctl, STAGED_BASE + (head % STAGED_EVENTS) * EVENT_STRIDE, kind, time_ns, hook, program, tenant,
                arg0, arg1, arg2)
    store_release(ctl, PLANE.staged_head, head + 1)
    return True


def forward_staged(ctl, host):
    """Housekeeping: move the staged events to the host's ring, and their drops to its count."""
    tail = ctl[PLANE.staged_tail]  # only housekeeping writes tail
    head = load_acquire(ctl, PLANE.staged_head)
    while tail < head:
        at = STAGED_BASE + (tail % STAGED_EVENTS) * EVENT_STRIDE
        event_push(host, ctl[at + EVENT.kind], ctl[at + EVENT.time_ns], ctl[at + EVENT.hook], ctl[at + EVENT.program],
                   ctl[at + EVENT.tenant], ctl[at + EVENT.arg0], ctl[at + EVENT.arg1], ctl[at + EVENT.arg2])
        tail += 1
        store_release(ctl, PLANE.staged_tail, tail)
    dropped = load_acquire(ctl, PLANE.staged_dropped)
    if dropped != ctl[PLANE.staged_dropped_seen]:
        host[EVENT_BASE + RING.dropped] += dropped - ctl[PLANE.staged_dropped_seen]
        ctl[PLANE.staged_dropped_seen] = dropped


def command_pending(host):
    """Index of the oldest unread command record's first word, or -1."""
    tail = host[COMMAND_BASE + RING.tail]  # only this consumer writes tail
    head = load_acquire_sys(host, COMMAND_BASE + RING.head)
    if head == tail:
        return -1
    return COMMAND_RECORDS + (tail % COMMAND_SLOTS) * COMMAND_STRIDE


def command_release(host):
    """Free the record ``command_pending`` returned, after reading it."""
    store_release_sys(host, COMMAND_BASE + RING.tail, host[COMMAND_BASE + RING.tail] + 1)


DEVICE_FUNCTIONS = (write_event, event_push, event_stage, forward_staged, command_pending, command_release)
