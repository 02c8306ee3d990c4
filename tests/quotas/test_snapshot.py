"""Packing quota records, publishing them under the seqlock, and reading
them back on the host (read_snapshot) and the simulated device
(snapshot_copy compiled with numba.njit).

``GBPFD_HAMMER_SECONDS`` sets how long the publisher/reader hammer runs
(default 1).
"""
from __future__ import annotations

import os
import sys
import threading

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gbpfd.bridge.layout import HEADER, HOST_WORDS, MAX_TENANTS, QUOTA_WORDS, REGION, SNAPSHOT, SNAPSHOT_QUOTAS
from gbpfd.device import prims_cpu
from gbpfd.device.snapshot import DEVICE_FUNCTIONS, META_WORDS, QUOTA_SPAN, SEQ_WORD, SNAPSHOT_TRIES
from gbpfd.specialize import specialize
from gbpfd.isa.abi import LIMITS, RECORDS
from gbpfd.quotas import (QuotaSet, SnapshotError, SnapshotPublisher, load_quotas, pack_quotas, read_snapshot,
                          unpack_quotas)
from gbpfd.quotas.schema import ALL_SMS, FIELD_BY_NAME, FIELDS
from gbpfd.resources import shared_file
from gbpfd.telemetry import Telemetry

HAMMER_SECONDS = float(os.environ.get("GBPFD_HAMMER_SECONDS", "1"))
QUOTA_RECORD = RECORDS["quota"]
TORN_RETRIES = REGION.header + HEADER.torn_retries
DEMO = shared_file("quotas", "demo.toml")


def decode_records(words: np.ndarray) -> list[dict[str, int]]:
    """Every record slot, decoded straight from the abi offsets (independent of unpack_quotas)."""
    raw = words.astype("<i8").tobytes()
    return [{f.name: int.from_bytes(raw[slot * QUOTA_RECORD.size + f.offset:][:f.size], "little")
             for f in QUOTA_RECORD.fields} for slot in range(MAX_TENANTS)]


def meta_word(meta: np.ndarray, name: str) -> int:
    return int(meta[getattr(SNAPSHOT, name) - 1])


def fresh_host() -> np.ndarray:
    return np.zeros(HOST_WORDS, dtype=np.int64)


# ------------------------------------------------------------------ packing
def test_pack_demo():
    words = pack_quotas(load_quotas(DEMO))
    assert words.dtype == np.int64 and words.shape == (MAX_TENANTS * QUOTA_WORDS,)
    records = decode_records(words)
    every_sm = dict(max_ctas_per_sm=0, sm_mask0=0, sm_mask1=0, sm_mask2=0)
    assert records[:3] == [
        dict(weight=1, **{"class": 1}, max_ctas=16, warp_cap=256, dma_bytes_per_epoch=0, burst=0, present=1,
             **every_sm),
        dict(weight=3, **{"class": 0}, max_ctas=4096, warp_cap=65535, dma_bytes_per_epoch=0, burst=0, present=1,
             **every_sm),
        dict(weight=1, **{"class": 0}, max_ctas=4096, warp_cap=65535, dma_bytes_per_epoch=1 << 20, burst=0,
             present=1, **every_sm),
    ]
    assert not words[3 * QUOTA_WORDS:].any()
    assert unpack_quotas(words) == records[:3]


def field_values(spec):
    if spec.type == "enum":
        return st.sampled_from(sorted(spec.values))
    if spec.type == "sms":
        return st.one_of(st.just(ALL_SMS), st.lists(st.integers(0, LIMITS.max_sms - 1), min_size=1, max_size=8))
    return st.integers(spec.minimum, spec.maximum)


def packed_fields(name, value) -> dict:
    """The record fields a schema field's value packs into."""
    spec = FIELD_BY_NAME[name]
    if spec.type != "sms":
        return {name: spec.packed(value)}
    mask = spec.packed(value)
    return {field: (mask >> (64 * i)) & (2 ** 64 - 1) for i, field in enumerate(spec.record_fields)}


tenant_bodies = st.fixed_dictionaries({spec.name: field_values(spec) for spec in FIELDS})


@settings(max_examples=40, deadline=None)
@given(st.lists(tenant_bodies, min_size=1, max_size=MAX_TENANTS))
def test_pack_round_trips(bodies):
    quotas = load_quotas({"tenants": {f"t{i}": body for i, body in enumerate(bodies)}})
    records = decode_records(pack_quotas(quotas))
    for record, body in zip(records, bodies):
        expected = {k: v for name, value in body.items() for k, v in packed_fields(name, value).items()}
        assert record == {**expected, "present": 1}
    assert all(not any(record.values()) for record in records[len(bodies):])


def test_pack_refuses_a_hand_made_set_with_too_many_tenants():
    tenant = load_quotas(DEMO).tenants[0]
    with pytest.raises(ValueError, match=r"^pack_quotas: 33 tenants in by hand, at most 32 fit$"):
        pack_quotas(QuotaSet((tenant,) * 33, "by hand"))


# --------------------------------------------------------------- publishing
def test_publish_then_read():
    host = fresh_host()
    publisher = SnapshotPublisher(host)
    telemetry = Telemetry(valid=0b1011, temp_c=71, power_mw=312000, sm_clock_mhz=0, throttle_reasons=1 << 63)
    assert publisher.publish(load_quotas(DEMO), total_slots=2048, telemetry=telemetry) == 1
    epoch, meta, quota = read_snapshot(host)
    assert epoch == 1 and meta.shape == (META_WORDS,) and quota.shape == (QUOTA_SPAN,)
    assert [meta_word(meta, n) for n in ("epoch", "ntenants", "total_slots", "tel_valid", "temp_c", "power_mw",
                                         "sm_clock_mhz", "throttle_reasons")] == \
        [1, 3, 2048, 0b1011, 71, 312000, 0, -(1 << 63)]
    assert np.array_equal(quota, pack_quotas(load_quotas(DEMO)))
    assert host[SEQ_WORD] == 2 and host[SNAPSHOT_QUOTAS - 1] == meta[-1]


def test_epochs_count_up_and_telemetry_is_kept_until_replaced():
    host = fresh_host()
    publisher = SnapshotPublisher(host)
    assert publisher.epoch == 0 and publisher.quotas is None
    assert publisher.publish(DEMO, total_slots=10, telemetry=Telemetry(valid=1, temp_c=50)) == 1
    assert publisher.publish(DEMO, total_slots=11) == 2
    _, meta, _ = read_snapshot(host)
    assert (meta_word(meta, "total_slots"), meta_word(meta, "tel_valid"), meta_word(meta, "temp_c")) == (11, 1, 50)
    assert publisher.publish_telemetry(Telemetry(valid=2, power_mw=9)) == 3
    epoch, meta, quota = read_snapshot(host)
    assert (epoch, meta_word(meta, "total_slots"), meta_word(meta, "tel_valid"), meta_word(meta, "temp_c"),
            meta_word(meta, "power_mw")) == (3, 11, 2, 0, 9)
    assert np.array_equal(quota, pack_quotas(load_quotas(DEMO)))
    assert publisher.quotas.names == ("infer", "train", "batch") and publisher.epoch == 3


def test_fewer_tenants_clear_the_old_slots():
    host = fresh_host()
    publisher = SnapshotPublisher(host)
    publisher.publish(DEMO, total_slots=1)
    publisher.publish(shared_file("quotas", "examples", "single.toml"), total_slots=1)
    _, meta, quota = read_snapshot(host)
    assert meta_word(meta, "ntenants") == 1 and len(unpack_quotas(quota)) == 1
    assert not quota[QUOTA_WORDS:].any()


def test_a_new_publisher_goes_on_from_the_epoch_and_seq_in_the_area():
    host = fresh_host()
    SnapshotPublisher(host).publish(DEMO, total_slots=1)
    host[SEQ_WORD] = 7  # as if a writer died mid-write
    assert SnapshotPublisher(host).publish(DEMO, total_slots=1) == 2
    assert host[SEQ_WORD] == 10


def test_publish_telemetry_needs_quotas_first():
    with pytest.raises(RuntimeError, match=r"^SnapshotPublisher.publish_telemetry: no quotas published yet; "
                                           r"call publish first$"):
        SnapshotPublisher(fresh_host()).publish_telemetry(Telemetry())


@pytest.mark.parametrize("total_slots", [-1, 1 << 32, True, 2.0])
def test_publish_checks_total_slots(total_slots):
    with pytest.raises(ValueError) as caught:
        SnapshotPublisher(fresh_host()).publish(DEMO, total_slots=total_slots)
    assert str(caught.value) == ("SnapshotPublisher.publish: total_slots must be an integer in 0..4294967295, "
                                 f"got {total_slots!r}")


def test_publish_checks_telemetry():
    with pytest.raises(TypeError, match=r"^SnapshotPublisher.publish: telemetry must be a Telemetry, got dict \{\}$"):
        SnapshotPublisher(fresh_host()).publish(DEMO, total_slots=1, telemetry={})


@pytest.mark.parametrize("host, described", [
    (np.zeros(HOST_WORDS, dtype=np.int32), f"int32 array of shape ({HOST_WORDS},)"),
    (np.zeros(HOST_WORDS - 1, dtype=np.int64), f"int64 array of shape ({HOST_WORDS - 1},)"),
    ([0] * HOST_WORDS, "list"),
])
def test_the_host_area_is_checked(host, described):
    message = f"host must be the int64 host area of {HOST_WORDS} words, got {described}"
    with pytest.raises(ValueError) as caught:
        SnapshotPublisher(host)
    assert str(caught.value) == f"SnapshotPublisher: {message}"
    with pytest.raises(ValueError) as caught:
        read_snapshot(host)
    assert str(caught.value) == f"read_snapshot: {message}"


def test_read_snapshot_of_a_fresh_area_is_epoch_0():
    epoch, meta, quota = read_snapshot(fresh_host())
    assert epoch == 0 and not meta.any() and not quota.any()


def test_read_snapshot_gives_up_on_a_write_that_never_ends():
    host = fresh_host()
    host[SEQ_WORD] = 5
    with pytest.raises(SnapshotError) as caught:
        read_snapshot(host, tries=3)
    assert str(caught.value) == ("read_snapshot: no consistent quota snapshot in 3 tries (seq is now 5): "
                                 "the host publisher kept writing, or died mid-write")


# ------------------------------------------------------------ device reader
@pytest.fixture(scope="module")
def device():
    return specialize(DEVICE_FUNCTIONS, prims_cpu.PRIMS, numba.njit(nogil=True))


def device_read(device, host, start=0):
    """The one-lane copy (as the CPU targets run it) into a fresh array at
    ``start``: the epoch, the array, its meta words and its quota words."""
    dst = np.full(start + META_WORDS + QUOTA_SPAN, -7, dtype=np.int64)
    epoch = device.snapshot_copy(0, 1, host, dst, start)
    return epoch, dst, dst[start:start + META_WORDS], dst[start + META_WORDS:]


def test_device_copy_matches_the_host_read(device):
    host = fresh_host()
    SnapshotPublisher(host).publish(DEMO, total_slots=99, telemetry=Telemetry(valid=1, temp_c=40))
    epoch, dst, meta, quota = device_read(device, host, start=3)
    host_epoch, host_meta, host_quota = read_snapshot(host)
    assert epoch == host_epoch == 1
    assert np.array_equal(meta, host_meta) and np.array_equal(quota, host_quota) and (dst[:3] == -7).all()
    assert host[TORN_RETRIES] == 0


def test_device_copy_of_a_write_in_progress_gives_up_after_snapshot_tries(device):
    host = fresh_host()
    host[SEQ_WORD] = 3
    epoch = device_read(device, host)[0]
    assert (epoch, host[TORN_RETRIES]) == (-1, SNAPSHOT_TRIES)


def bumping_device(only_below: int):
    """snapshot_copy whose host-area acquire load finishes a host write (seq
    += 2) after every read of seq below ``only_below``: the copy it guards
    is torn."""
    @numba.njit(inline="always", nogil=True)
    def load_acquire_sys(a, i):
        old = a[i]
        if old < only_below:
            a[i] = old + 2
        return old
    return specialize(DEVICE_FUNCTIONS, {**prims_cpu.PRIMS, "load_acquire_sys": load_acquire_sys},
                      numba.njit(nogil=True))


def test_device_copy_never_accepts_a_seq_that_moved():
    host = fresh_host()
    SnapshotPublisher(host).publish(DEMO, total_slots=1)
    epoch = device_read(bumping_device(only_below=1 << 62), host)[0]
    assert (epoch, host[TORN_RETRIES]) == (-1, SNAPSHOT_TRIES)


def test_device_copy_retries_after_one_torn_copy():
    host = fresh_host()
    SnapshotPublisher(host).publish(DEMO, total_slots=1)  # seq is 2 now
    epoch, _, _, quota = device_read(bumping_device(only_below=3), host)
    assert (epoch, host[TORN_RETRIES]) == (1, 1)
    assert np.array_equal(quota, pack_quotas(load_quotas(DEMO)))


# ------------------------------------------------------------------ hammer
# Snapshot k holds quota set k % VARIANTS, total_slots k and telemetry
# derived from k, so any mix of two snapshots is visible to a reader.  A
# Python publisher writes far more slowly than a compiled copy runs, so the
# hammer seldom catches a device copy that straddles the start of a write;
# the bumping_device tests above pin that re-check deterministically.
VARIANTS = 16
DEVICE_BATCH = 256  # device reads per nogil call: long enough to overlap many host writes


def quota_set_for(k: int):
    return load_quotas({"tenants": {f"t{i}": {"class": "latency-critical" if (k + i) % 2 else "best-effort",
                                              "weight": k % 10000 + 1, "max_ctas": k % 65535 + 1,
                                              "warp_cap": k * 7 % 65535 + 1, "dma_bytes_per_epoch": k,
                                              "burst": k % 65536}
                                    for i in range(k % 4 + 1)}})


QUOTA_SETS = [quota_set_for(v) for v in range(VARIANTS)]
PACKED = [pack_quotas(q) for q in QUOTA_SETS]


def telemetry_for(k: int) -> Telemetry:
    return Telemetry(valid=0b1111, temp_c=k % 100, power_mw=k, sm_clock_mhz=k % 2000, throttle_reasons=k)


def check_consistent(epoch: int, meta: np.ndarray, quota: np.ndarray) -> None:
    if epoch == 0:
        assert not meta.any() and not quota.any()
        return
    k, telemetry = epoch, telemetry_for(epoch)  # the publisher's k-th snapshot is epoch k
    assert [meta_word(meta, n) for n in ("epoch", "ntenants", "total_slots", "tel_valid", "temp_c", "power_mw",
                                         "sm_clock_mhz", "throttle_reasons")] == \
        [k, len(QUOTA_SETS[k % VARIANTS].tenants), k, telemetry.valid, telemetry.temp_c, telemetry.power_mw,
         telemetry.sm_clock_mhz, telemetry.throttle_reasons]
    assert np.array_equal(quota, PACKED[k % VARIANTS])


@pytest.fixture
def fast_thread_switching():
    """Python threads take turns every 10 us instead of 5 ms, so the host
    reader often runs in the middle of a publish."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def test_hammer_publisher_against_host_and_device_readers(device, fast_thread_switching):
    host = fresh_host()
    publisher = SnapshotPublisher(host)
    stop = threading.Event()
    failures: list[BaseException] = []
    counts = {"published": 0, "host": 0, "device": 0, "device_gave_up": 0}

    snapshot_copy = device.snapshot_copy

    @numba.njit(nogil=True)
    def read_batch(host, copies, epochs):
        for row in range(epochs.size):
            epochs[row] = snapshot_copy(0, 1, host, copies, row * (META_WORDS + QUOTA_SPAN))

    def guarded(body):
        def run():
            try:
                body()
            except BaseException as err:  # re-raised by the test thread below
                failures.append(err)
                stop.set()
        return run

    def publish():
        k = 0
        while not stop.is_set():
            k += 1
            assert publisher.publish(QUOTA_SETS[k % VARIANTS], total_slots=k, telemetry=telemetry_for(k)) == k
            counts["published"] = k

    def read_on_host():
        last = 0
        while not stop.is_set():
            epoch, meta, quota = read_snapshot(host)
            check_consistent(epoch, meta, quota)
            assert epoch >= last
            last = epoch
            counts["host"] += 1

    def read_on_device():
        last = 0
        copies = np.empty((DEVICE_BATCH, META_WORDS + QUOTA_SPAN), dtype=np.int64)
        epochs = np.empty(DEVICE_BATCH, dtype=np.int64)
        while not stop.is_set():
            read_batch(host, copies.reshape(-1), epochs)
            for row, epoch in enumerate(epochs.tolist()):
                if epoch == -1:
                    counts["device_gave_up"] += 1
                    continue
                check_consistent(epoch, copies[row, :META_WORDS], copies[row, META_WORDS:])
                assert epoch >= last
                last = epoch
                counts["device"] += 1

    read_batch(fresh_host(), np.empty(META_WORDS + QUOTA_SPAN, dtype=np.int64),
               np.empty(1, dtype=np.int64))  # compile before the clock starts
    threads = [threading.Thread(target=guarded(f), daemon=True) for f in (publish, read_on_host, read_on_device)]
    for thread in threads:
        thread.start()
    stop.wait(HAMMER_SECONDS)
    stop.set()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    assert counts["published"] > 0 and counts["host"] > 0 and counts["device"] > 0, counts
    assert host[TORN_RETRIES] >= counts["device_gave_up"] * SNAPSHOT_TRIES
