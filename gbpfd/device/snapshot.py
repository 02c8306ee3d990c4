"""The control CTA's reader of the host's quota snapshot (shared source, see ``gbpfd.specialize``).

The host publishes with a seqlock (``gbpfd.quotas.snapshot``): it makes
``seq`` odd, writes the body, makes ``seq`` even.  A copy is consistent when
``seq`` was even before it and unchanged after it.  The copy goes straight
into the caller's array, so after a failed read (-1) it may hold a torn
copy: copy into a staging buffer and adopt it only when an epoch comes back.
"""
from gbpfd.bridge.layout import HEADER, MAX_TENANTS, QUOTA_WORDS, REGION, SNAPSHOT, SNAPSHOT_QUOTAS, SNAPSHOT_WORDS

#: reads tried before giving up; every spin on the device has a bound
SNAPSHOT_TRIES = 8
SEQ_WORD = REGION.snapshot + SNAPSHOT.seq
#: the snapshot words after ``seq`` ("meta"): meta word i is ``SNAPSHOT`` word i + 1
META_FIRST = SEQ_WORD + 1
META_WORDS = len(SNAPSHOT_WORDS) - 1
META_EPOCH = SNAPSHOT.epoch - 1
QUOTA_SPAN = MAX_TENANTS * QUOTA_WORDS
SNAPSHOT_SPAN = META_WORDS + QUOTA_SPAN
TORN_RETRIES_WORD = REGION.header + HEADER.torn_retries

if SNAPSHOT.seq != 0 or SNAPSHOT_QUOTAS != META_FIRST + META_WORDS:
    raise ValueError("host_bridge/layout.toml: the snapshot must start with `seq`, and its quota records "
                     "must follow its other words")


def snapshot_copy(lane, lanes, host, dst, start):
    """The ``lanes`` lanes of one warp (``lane`` is this one's; 1 lane on
    the CPU targets) copy the snapshot's SNAPSHOT_SPAN words after ``seq``
    (its meta words, then its quota records) to ``dst[start:]``, lane i
    taking words i, i + lanes, ... (``lane_copy``): coalesced reads over
    PCIe, all of a lane's in flight at once.  The epoch copied, or -1 when SNAPSHOT_TRIES
    reads all overlapped a host write (each failed try counted in the
    header's ``torn_retries``).  Every lane returns the same."""
    for _ in range(SNAPSHOT_TRIES):
        seq = lane_broadcast(load_acquire_sys(host, SEQ_WORD))
        if seq & 1 == 0:
            lane_copy(dst, start, host, META_FIRST, SNAPSHOT_SPAN, lane, lanes)
            fence_sys()   # this lane's body loads complete before seq is read again ...
            warp_sync()   # ... and every lane's, and lane 0's epoch store is seen by all
            if lane_broadcast(load_acquire_sys(host, SEQ_WORD)) == seq:
                return dst[start + META_EPOCH]
        if lane == 0:
            host[TORN_RETRIES_WORD] += 1  # only the control CTA writes the header
    return -1


DEVICE_FUNCTIONS = (snapshot_copy,)
