"""The device's ends of the bridge rings (shared source, see ``targets``).

Event ring: the control CTA is the only producer.  Command ring: it is the
only consumer.  ``head``/``tail`` count records ever written/read; a record
is published by writing its words, then ``head`` with release semantics,
and freed by writing ``tail`` with release semantics after its words were
read.  A full event ring drops the new record and counts it: nothing unread
is overwritten.
"""
from gbpfd.bridge.layout import COMMAND_SLOTS, COMMAND_WORDS, EVENT, EVENT_SLOTS, EVENT_WORDS, REGION, RING

EVENT_BASE = REGION.event_ring
EVENT_RECORDS = EVENT_BASE + len(RING)
EVENT_STRIDE = len(EVENT_WORDS)
COMMAND_BASE = REGION.command_ring
COMMAND_RECORDS = COMMAND_BASE + len(RING)
COMMAND_STRIDE = len(COMMAND_WORDS)


def event_push(host, kind, time_ns, hook, program, tenant, arg0, arg1, arg2):
    """Append one event; False (and counted in ``dropped``) when the ring is full."""
    head = host[EVENT_BASE + RING.head]  # only this producer writes head
    tail = load_acquire(host, EVENT_BASE + RING.tail)
    if head - tail >= EVENT_SLOTS:
        host[EVENT_BASE + RING.dropped] += 1
        return False
    at = EVENT_RECORDS + (head % EVENT_SLOTS) * EVENT_STRIDE
    host[at + EVENT.kind] = kind
    host[at + EVENT.time_ns] = time_ns
    host[at + EVENT.hook] = hook
    host[at + EVENT.program] = program
    host[at + EVENT.tenant] = tenant
    host[at + EVENT.arg0] = arg0
    host[at + EVENT.arg1] = arg1
    host[at + EVENT.arg2] = arg2
    store_release(host, EVENT_BASE + RING.head, head + 1)
    return True


def command_pending(host):
    """Index of the oldest unread command record's first word, or -1."""
    tail = host[COMMAND_BASE + RING.tail]  # only this consumer writes tail
    head = load_acquire(host, COMMAND_BASE + RING.head)
    if head == tail:
        return -1
    return COMMAND_RECORDS + (tail % COMMAND_SLOTS) * COMMAND_STRIDE


def command_release(host):
    """Free the record ``command_pending`` returned, after reading it."""
    store_release(host, COMMAND_BASE + RING.tail, host[COMMAND_BASE + RING.tail] + 1)


DEVICE_FUNCTIONS = (event_push, command_pending, command_release)
