"""Quota sets -> abi quota records, published with telemetry in the host
area's snapshot (``host_bridge/layout.toml`` [snapshot]) under a seqlock.

The device side of the seqlock is ``gbpfd.device.snapshot.snapshot_copy``;
``read_snapshot`` is the same read for host code (tests, ``gbpfd top``).
"""
from __future__ import annotations

import threading
import time

import numpy as np

from gbpfd.bridge.layout import HOST_WORDS, MAX_TENANTS, REGION, SNAPSHOT, SNAPSHOT_QUOTAS
from gbpfd.device.snapshot import META_EPOCH, META_FIRST, META_WORDS, QUOTA_SPAN, SEQ_WORD
from gbpfd.errors import GbpfdError
from gbpfd.isa.abi import RECORDS
from gbpfd.quotas.load import QuotaSet, load_quotas
from gbpfd.quotas.schema import FIELDS
from gbpfd.telemetry import Telemetry

QUOTA_RECORD = RECORDS["quota"]
#: snapshot word -> the Telemetry attribute it holds
TELEMETRY_WORDS = ((SNAPSHOT.tel_valid, "valid"), (SNAPSHOT.temp_c, "temp_c"), (SNAPSHOT.power_mw, "power_mw"),
                   (SNAPSHOT.sm_clock_mhz, "sm_clock_mhz"), (SNAPSHOT.throttle_reasons, "throttle_reasons"))
READ_TRIES = 1000
TOTAL_SLOTS_MAX = (1 << 32) - 1  # the ctx total_slots fields are u32


class SnapshotError(GbpfdError):
    """No consistent snapshot could be read."""


def pack_quotas(quotas: QuotaSet) -> np.ndarray:
    """MAX_TENANTS quota records (little-endian, abi ``records.quota``) as
    MAX_TENANTS * QUOTA_WORDS int64 words; tenant i in slot i, unused slots zero."""
    quotas = load_quotas(quotas)
    if len(quotas.tenants) > MAX_TENANTS:  # only a QuotaSet built by hand gets here
        raise ValueError(f"pack_quotas: {len(quotas.tenants)} tenants in {quotas.source}, at most {MAX_TENANTS} fit")
    raw = bytearray(MAX_TENANTS * QUOTA_RECORD.size)
    for slot, tenant in enumerate(quotas.tenants):
        base = slot * QUOTA_RECORD.size
        _put(raw, base, "present", 1)
        for spec in FIELDS:
            value = spec.packed(tenant.field_value(spec.name))
            for name in spec.record_fields:  # a wide value spreads over its fields, lowest bits first
                size = _RECORD_FIELDS[name].size
                _put(raw, base, name, value & ((1 << 8 * size) - 1))
                value >>= 8 * size
    return np.frombuffer(bytes(raw), dtype="<i8").astype(np.int64)


_RECORD_FIELDS = {f.name: f for f in QUOTA_RECORD.fields}


def _put(raw: bytearray, base: int, name: str, value: int) -> None:
    field = _RECORD_FIELDS[name]
    raw[base + field.offset:base + field.offset + field.size] = value.to_bytes(field.size, "little")


def unpack_quotas(words: np.ndarray) -> list[dict[str, int]]:
    """The records of the used slots of packed quota words, as {field: value}."""
    raw = np.ascontiguousarray(words, dtype="<i8").tobytes()
    records = []
    for base in range(0, len(raw), QUOTA_RECORD.size):
        record = {f.name: int.from_bytes(raw[base + f.offset:base + f.offset + f.size], "little")
                  for f in QUOTA_RECORD.fields}
        if record["present"]:
            records.append(record)
    return records


def _check_host(host, who: str) -> None:
    if not isinstance(host, np.ndarray) or host.dtype != np.int64 or host.shape != (HOST_WORDS,):
        described = f"{host.dtype} array of shape {host.shape}" if isinstance(host, np.ndarray) else type(host).__name__
        raise ValueError(f"{who}: host must be the int64 host area of {HOST_WORDS} words, got {described}")


def _word(value: int) -> int:
    """An unsigned 64-bit value (the throttle reasons mask) as the int64 word holding its bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


class SnapshotPublisher:
    """Writes quota snapshots into ``host`` (the bridge's int64 host area).

    Epochs go on from the one already in ``host`` (1 for a fresh area), so
    a new publisher on a live area never moves them backwards.  One lock
    serialises publishers in this process: a seqlock allows one writer."""

    def __init__(self, host: np.ndarray):
        _check_host(host, "SnapshotPublisher")
        self._host = host
        self._lock = threading.Lock()
        self._epoch = int(host[REGION.snapshot + SNAPSHOT.epoch])
        seq = int(host[SEQ_WORD])
        self._seq = seq + (seq & 1)  # odd: an earlier writer died mid-write; go on from the next even value
        self._quotas: QuotaSet | None = None
        self._quota_words: np.ndarray | None = None
        self._total_slots = 0
        self._telemetry = Telemetry()
        #: ``time.perf_counter_ns()`` just before the latest snapshot's first store
        #: (validation and packing done): the instant a publish latency starts from
        self.written_ns: int | None = None

    @property
    def epoch(self) -> int:
        """The last epoch published (0: none yet)."""
        return self._epoch

    @property
    def quotas(self) -> QuotaSet | None:
        return self._quotas

    def publish(self, quotas: QuotaSet, *, total_slots: int, telemetry: Telemetry | None = None) -> int:
        """Publish ``quotas`` (or anything ``load_quotas`` takes); ``telemetry``
        None keeps the last telemetry published.  Returns the new epoch."""
        if isinstance(total_slots, bool) or not isinstance(total_slots, int) \
                or not 0 <= total_slots <= TOTAL_SLOTS_MAX:
            raise ValueError(f"SnapshotPublisher.publish: total_slots must be an integer in "
                             f"0..{TOTAL_SLOTS_MAX}, got {total_slots!r}")
        quotas = load_quotas(quotas)
        words = pack_quotas(quotas)
        with self._lock:
            self._quotas, self._quota_words, self._total_slots = quotas, words, total_slots
            if telemetry is not None:
                self._telemetry = _checked_telemetry(telemetry, "publish")
            return self._write()

    def publish_telemetry(self, telemetry: Telemetry) -> int:
        """Republish the current quotas with new telemetry; returns the new epoch."""
        telemetry = _checked_telemetry(telemetry, "publish_telemetry")
        with self._lock:
            if self._quotas is None:
                raise RuntimeError("SnapshotPublisher.publish_telemetry: no quotas published yet; call publish first")
            self._telemetry = telemetry
            return self._write()

    # Why plain numpy stores are enough on the host: each statement below is
    # a separate store (or memcpy) issued in program order, and x86-64 (TSO)
    # never reorders a store with an earlier store, so any reader that sees
    # the even `seq` written last also sees every body word written before
    # it, and one that sees the odd `seq` knows a write is under way.  The
    # `seq` word itself is an aligned 8-byte store, which x86-64 performs
    # atomically; body words may tear, which the seqlock makes harmless.
    # A weakly ordered host CPU (aarch64) would need store barriers around
    # the body.  The device reader must load `seq` with acquire semantics at
    # system scope, copy the body, fence (threadfence_system) so the body
    # loads complete before `seq` is loaded again, and accept the copy only
    # if both loads gave the same even value; see gbpfd.device.snapshot.
    def _write(self) -> int:
        host, base, epoch = self._host, REGION.snapshot, self._epoch + 1
        self.written_ns = time.perf_counter_ns()
        host[SEQ_WORD] = self._seq + 1
        host[base + SNAPSHOT.epoch] = epoch
        host[base + SNAPSHOT.ntenants] = len(self._quotas.tenants)
        host[base + SNAPSHOT.total_slots] = self._total_slots
        for word, attribute in TELEMETRY_WORDS:
            host[base + word] = _word(getattr(self._telemetry, attribute))
        host[SNAPSHOT_QUOTAS:SNAPSHOT_QUOTAS + QUOTA_SPAN] = self._quota_words
        host[SEQ_WORD] = self._seq + 2
        self._seq += 2
        self._epoch = epoch
        return epoch


def _checked_telemetry(telemetry, who: str) -> Telemetry:
    if not isinstance(telemetry, Telemetry):
        raise TypeError(f"SnapshotPublisher.{who}: telemetry must be a Telemetry, got "
                        f"{type(telemetry).__name__} {telemetry!r}")
    return telemetry


def read_snapshot(host: np.ndarray, tries: int = READ_TRIES) -> tuple[int, np.ndarray, np.ndarray]:
    """(epoch, meta words, quota words): a consistent copy of the snapshot.
    Meta word i is ``SNAPSHOT`` word i + 1 (the words after ``seq``); the
    quota words are the packed records (``unpack_quotas``).  Epoch 0: nothing
    published yet.  Raises SnapshotError after ``tries`` torn reads."""
    _check_host(host, "read_snapshot")
    if isinstance(tries, bool) or not isinstance(tries, int) or tries < 1:
        raise ValueError(f"read_snapshot: tries must be an integer >= 1, got {tries!r}")
    for _ in range(tries):
        seq = int(host[SEQ_WORD])
        if seq & 1 == 0:
            meta = host[META_FIRST:META_FIRST + META_WORDS].copy()
            quota = host[SNAPSHOT_QUOTAS:SNAPSHOT_QUOTAS + QUOTA_SPAN].copy()
            if int(host[SEQ_WORD]) == seq:
                return int(meta[META_EPOCH]), meta, quota
        time.sleep(0)  # let a publisher in this process finish its write
    raise SnapshotError(f"read_snapshot: no consistent quota snapshot in {tries} tries (seq is now "
                        f"{int(host[SEQ_WORD])}): the host publisher kept writing, or died mid-write")
