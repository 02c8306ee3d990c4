"""The simulated device as a model of a GPU's SMs (gbpfd.sim.sm,
gbpfd.sim.sharing): residency from each CTA's resources, the placement
rule, in-order dispatch, processor sharing of an SM's issue rate and of
HBM bandwidth, clock droop, the quantised timer and launch latency draws.
Every time here is the simulator's virtual time."""
from __future__ import annotations

import dataclasses
import math

import pytest

from gbpfd.bridge.layout import HEADER
from gbpfd.plane.arrays import allocate
from gbpfd.plane.plane import Plane
from gbpfd.sim.device import SimDevice
from gbpfd.sim.model import SimGPU, sim_gpu

MS = 1_000_000
LONG = 100 * MS   # a block that outlasts every check made while it runs


def bare(**changes) -> SimDevice:
    """A simulated GPU with no plane on it, with ``changes`` to the default calibration."""
    return SimDevice(allocate(), dataclasses.replace(sim_gpu(), **changes))


def after_launch(d: SimDevice) -> None:
    d.run_until(d.now + d.gpu.launch_ns + 1)


# ------------------------------------------------------------------ residency

def test_slots_per_sm_is_the_default_kernels_occupancy():
    gpu = sim_gpu()
    assert gpu.slots_per_sm == gpu.sm_max_threads // gpu.kernel_threads
    assert gpu.worker_slots == (gpu.num_sms - 1) * gpu.slots_per_sm
    assert dataclasses.replace(gpu, kernel_threads=gpu.kernel_threads // 2).slots_per_sm == 2 * gpu.slots_per_sm


@pytest.mark.parametrize("shape, binding", [
    ({"threads": 256}, lambda g: g.sm_max_threads // 256),
    ({"threads": 128, "registers": 255}, lambda g: g.sm_registers // (128 * 255)),
    ({"threads": 64, "shared_bytes": 100 << 10}, lambda g: g.sm_shared_bytes // (100 << 10)),
    ({"threads": 32}, lambda g: g.sm_max_ctas),
])
def test_each_sm_holds_as_many_ctas_as_its_scarcest_resource_allows(shape, binding):
    d = bare()
    per_sm = binding(d.gpu)
    run = d.launch(0, blocks=d.gpu.num_sms * per_sm + 5, block_ns=LONG, mode="none", **shape)
    after_launch(d)
    assert d.occupancy() == [per_sm] * d.gpu.num_sms
    assert len(d._dispatch_queue) == 5          # the rest wait for an SM
    assert run.blocks == len(run.sms) + 5


@pytest.mark.parametrize("bad, message", [
    ({"threads": 2048}, "threads must be at most 1024 per CTA, got 2048"),
    ({"registers": 256}, "registers must be at most 255 per thread, got 256"),
    ({"shared_bytes": 228 << 10}, "shared_bytes must be at most 232448 per CTA, got 233472"),
    ({"threads": 1024, "registers": 255}, ("a CTA of 1024 threads x 255 registers needs 261120 registers, "
                                           "more than an SM's 65536")),
    ({"threads": 0}, "threads must be an integer >= 1, got 0"),
    ({"registers": 1.5}, "registers must be an integer >= 1, got 1.5"),
    ({"shared_bytes": -1}, "shared_bytes must be an integer >= 0, got -1"),
    ({"issue_utilisation": 0}, r"issue_utilisation must be a number in \(0, 1\], got 0"),
    ({"issue_utilisation": 1.5}, r"issue_utilisation must be a number in \(0, 1\], got 1.5"),
    ({"bytes_per_block": -8}, "bytes_per_block must be a number >= 0, got -8"),
    ({"block_ns": 0}, "block_ns must be a positive number, got 0"),
])
def test_a_cta_that_can_never_run_is_refused_not_shrunk(bad, message):
    d = bare()
    with pytest.raises(ValueError, match=f"^SimDevice.launch: {message}$"):
        d.launch(0, **{"blocks": 1, "block_ns": MS, "mode": "none", **bad})
    assert not d._dispatch_queue and not d._events


def test_a_default_kernel_that_fits_no_sm_is_refused_by_the_model():
    with pytest.raises(ValueError, match="SimGPU: the default kernel's CTA cannot run on an SM: a CTA of 1024 "
                                         "threads x 255 registers needs"):
        dataclasses.replace(sim_gpu(), kernel_registers=255)


# ------------------------------------------------------------------ placement

@pytest.mark.parametrize("placement", ["most_free", "lowest_id"])
def test_placement_spreads_or_packs_as_its_rule_says(placement):
    d = bare(placement=placement)
    n = d.gpu.num_sms // 2
    run = d.launch(0, blocks=n, block_ns=LONG, mode="none")
    after_launch(d)
    if placement == "most_free":   # one CTA per SM before any SM gets a second
        assert run.sms == list(range(n))
    else:                          # each SM filled before the next
        assert run.sms == [i // d.gpu.slots_per_sm for i in range(n)]


def test_a_placement_rule_not_modelled_is_refused():
    with pytest.raises(ValueError, match="SimGPU.placement must be one of most_free, lowest_id, got 'random'"):
        dataclasses.replace(sim_gpu(), placement="random")


def test_the_control_ctas_sm_stays_its_own():
    with Plane(backend="sim") as plane:
        d = plane.device
        d.launch(0, blocks=d.gpu.num_sms * d.gpu.slots_per_sm, block_ns=LONG, mode="none")
        after_launch(d)
        assert d.occupancy()[0] == 0
        assert d.occupancy()[1:] == [d.gpu.slots_per_sm] * (d.gpu.num_sms - 1)


def test_ctas_of_another_tenant_on_the_same_sm_are_counted():
    d = bare()
    n = d.gpu.num_sms
    d.launch(0, blocks=n, block_ns=LONG, mode="none")       # one per SM: every SM half full
    after_launch(d)
    other = d.launch(1, blocks=4, block_ns=LONG, mode="none")
    after_launch(d)
    assert other.beside == 4
    assert [d.occupancy(1)[sm] for sm in other.sms] == [1] * 4 and sum(d.occupancy(0)) == n


# -------------------------------------------------------- in-order dispatch

def test_a_cta_that_fits_nowhere_holds_back_those_behind_it_but_not_a_higher_priority_one():
    d = bare()
    n, big = d.gpu.num_sms, 150 << 10
    first = d.launch(0, blocks=n, block_ns=MS, mode="none", shared_bytes=big)   # one per SM, 150 KB each
    after_launch(d)
    blocked = d.launch(1, blocks=1, block_ns=MS, mode="none", shared_bytes=100 << 10)  # fits beside none of them
    behind = d.launch(2, blocks=1, block_ns=MS, mode="none", threads=32)        # would fit anywhere
    urgent = d.launch(3, blocks=1, block_ns=MS, mode="none", threads=32, priority=-1)
    assert d.run_while(lambda: any(r.done_ns is None for r in (first, blocked, behind, urgent)), 10 * MS)
    start = d.gpu.launch_ns
    assert urgent.done_ns == urgent.launched_ns + start + MS          # to the head of the order: in at once
    assert blocked.done_ns == first.done_ns + MS                      # in when the first wave left
    assert behind.done_ns == first.done_ns + MS                       # in with it, not before it


# ----------------------------------------------------------------- sharing

@pytest.mark.parametrize("issue, slowdown", [(None, 1), (0.5, 1), (1.0, 2)])
def test_co_resident_blocks_share_the_sms_issue_rate(issue, slowdown):
    d = bare()
    full = d.gpu.num_sms * d.gpu.slots_per_sm
    run = d.launch(0, blocks=full, block_ns=MS, mode="none", issue_utilisation=issue)
    assert d.run_while(lambda: run.done_ns is None, 10 * MS)
    assert run.latency_ns == d.gpu.launch_ns + slowdown * MS


def test_a_block_slows_while_another_shares_its_sm_and_speeds_up_when_it_leaves():
    d = bare()
    n, launch = d.gpu.num_sms, d.gpu.launch_ns
    a = d.launch(0, blocks=n, block_ns=MS, mode="none", issue_utilisation=1.0)      # one per SM
    d.run_until(MS // 2)
    b = d.launch(1, blocks=n, block_ns=MS, mode="none", issue_utilisation=1.0)      # beside each of a's
    assert d.run_while(lambda: b.done_ns is None, 10 * MS)
    # a: half its work alone, the other half at half speed; b: half at half speed, then alone
    assert a.done_ns == launch + MS // 2 + MS
    assert b.done_ns == MS // 2 + launch + MS + MS // 2
    assert b.beside == n


def test_memory_bound_blocks_share_hbm_bandwidth():
    d = bare()
    n, bw = d.gpu.num_sms, d.gpu.hbm_bytes_per_s
    twice_hbm = 2 * bw * (MS / 1e9) / n    # bytes per block: one block per SM asks for twice the bandwidth
    mem = d.launch(0, blocks=n, block_ns=MS, mode="none", bytes_per_block=twice_hbm)
    compute = d.launch(1, blocks=n, block_ns=MS, mode="none")   # beside it, moving nothing
    assert d.run_while(lambda: mem.done_ns is None or compute.done_ns is None, 10 * MS)
    assert abs(mem.latency_ns - (d.gpu.launch_ns + 2 * MS)) <= 1
    assert compute.latency_ns == d.gpu.launch_ns + MS


def test_a_lone_block_moving_more_than_hbm_can_takes_its_bytes_over_the_bandwidth():
    d = bare()
    nbytes = 3 * d.gpu.hbm_bytes_per_s * (MS / 1e9)
    run = d.launch(0, blocks=1, block_ns=MS, mode="none", bytes_per_block=nbytes)
    assert d.run_while(lambda: run.done_ns is None, 10 * MS)
    assert abs(run.latency_ns - (d.gpu.launch_ns + 3 * MS)) <= 1


def test_clock_droop_slows_blocks_as_more_sms_work():
    droop = 0.2
    alone, full = bare(clock_droop=droop), bare(clock_droop=droop)
    one = alone.launch(0, blocks=1, block_ns=MS, mode="none")
    every = full.launch(0, blocks=full.gpu.num_sms, block_ns=MS, mode="none")
    for d, run in ((alone, one), (full, every)):
        assert d.run_while(lambda run=run: run.done_ns is None, 10 * MS)
    expected_one = MS / (1 - droop / alone.gpu.num_sms)
    assert abs(one.latency_ns - alone.gpu.launch_ns - expected_one) <= 1
    assert abs(every.latency_ns - full.gpu.launch_ns - MS / (1 - droop)) <= 1


# --------------------------------------------------- timer and launch latency

def test_the_device_code_reads_a_timer_in_steps():
    with Plane(backend="sim") as plane:
        d = plane.device
        step = d.gpu.globaltimer_step_ns
        d.run_until(d.now + 12_345)
        assert d.timer() % step == 0 and d.now - step < d.timer() <= d.now
        assert int(plane.arrays.host[HEADER.heartbeat_ns]) % step == 0


def launch_latencies(seed: int, jitter: int, n: int = 200) -> list:
    """Launch latencies of ``n`` one-block kernels launched at once (fewer than the GPU's CTA slots)."""
    d = SimDevice(allocate(), dataclasses.replace(sim_gpu(), launch_jitter_ns=jitter), seed=seed)
    runs = [d.launch(0, blocks=1, block_ns=1000, mode="none") for _ in range(n)]
    assert d.run_while(lambda: any(r.done_ns is None for r in runs), 100 * MS)
    return [r.latency_ns - 1000 for r in runs]


def test_launch_latency_is_a_seeded_draw_around_its_median():
    jitter = 2000
    first = launch_latencies(1, jitter)
    assert first == launch_latencies(1, jitter)      # the same seed, the same run
    assert first != launch_latencies(2, jitter)
    median = sim_gpu().launch_ns
    least = median - jitter * math.log(2)             # the tail's start: its median sits ln 2 means above it
    assert min(first) >= least - 1
    assert 0.4 < sum(x <= median for x in first) / len(first) < 0.6
    mean_tail = sum(x - least for x in first) / len(first)
    assert 0.8 * jitter < mean_tail < 1.2 * jitter
    assert set(launch_latencies(1, 0)) == {median}    # no tail: every launch takes launch_ns


def test_the_model_refuses_a_droop_that_stops_the_clock():
    with pytest.raises(ValueError, match="SimGPU.clock_droop must be below 1, got 1"):
        dataclasses.replace(sim_gpu(), clock_droop=1)
    with pytest.raises(ValueError, match="SimGPU.globaltimer_step_ns must be a positive number, got 0"):
        dataclasses.replace(sim_gpu(), globaltimer_step_ns=0)
    assert isinstance(dataclasses.replace(sim_gpu(), launch_jitter_ns=0), SimGPU)
