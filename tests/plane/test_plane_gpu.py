"""The plane on a real GPU: start and stop, token and request admission,
a faulting policy and its fallback, a live swap under load, persistent
workers, a kernel not preloaded refused, and a million admissions with
none lost or doubled.

Every test needs a CUDA GPU (marked ``gpu``: skipped elsewhere, with the
reason).  While the control kernel is resident, anything that makes CUDA
synchronise the whole context would wait for it forever: freeing device
memory, and possibly allocating it or loading a module.  So the tests make
their arrays and load their kernels' modules before the plane starts
(``preload``: one launch on spare plane words, where every CTA bypasses at
once), free nothing until it stops (``cuda.defer_cleanup``), and bound
every wait for GPU work.  A kernel not loaded before the plane started is
refused at launch (loading its module then would wait for the control
kernel).  The soak runs last: if it blocks, everything else has reported.

Counters are read twice: from the device's own words (``flat``, exact once
the workers' kernels are done) and from the copy the control CTA mirrors to
the host every tick (``Plane.counters``), which must agree.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest

# A kernel loaded lazily may need a context synchronisation, which would wait for
# the resident control kernel forever; CUDA reads this when it initialises.
os.environ["CUDA_MODULE_LOADING"] = "EAGER"

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed (numba's own numba.cuda is not enough)")
cuda = pytest.importorskip("numba.cuda")

import gbpfd  # noqa: E402
from gbpfd.admission import AdmitError  # noqa: E402
from gbpfd.bench.gpu_sync import settle
from gbpfd.bench.policies import NO_TOKENS_TICK_ASM as NO_TOKENS_TICK  # noqa: E402
from gbpfd.bridge import layout as L  # noqa: E402
from gbpfd.bridge.layout import HEADER  # noqa: E402
from gbpfd.device import state as S  # noqa: E402
from gbpfd.device.prims_cuda import globaltimer, smid  # noqa: E402
from gbpfd.isa.abi import HOOKS  # noqa: E402
from gbpfd.isa.asm import assemble  # noqa: E402
from gbpfd.plane.options import PlaneOptions  # noqa: E402
from gbpfd.plane.plane import Plane  # noqa: E402
from gbpfd.policies.catalog import baseline_programs  # noqa: E402
from gbpfd.resources import shared_file  # noqa: E402
from gbpfd.vm.status import FAULT_FUEL  # noqa: E402

pytestmark = pytest.mark.gpu

TENANT = "train"      # best-effort in demo.toml: its allowance is most of the GPU
THREADS = 64
WAIT_S = 120.0
RESULTS_DIR = "GBPFD_RESULTS_DIR"

FUEL_FAULT_ADMIT = """\
.name fuel_fault
.hook cta_admit
    mov %r0, 0
spin:
    add %r0, 1
    ja spin                     # the verifier refuses this back-edge; the device runs out of fuel
"""


# Kernel bodies (gbpfd.admit compiles them as device functions).
def mark_cta(marks, base):
    if cuda.threadIdx.x == 0:
        cuda.atomic.add(marks, base + cuda.blockIdx.x, 1)


def mark_block(block, marks):
    if cuda.threadIdx.x == 0:
        cuda.atomic.add(marks, block, 1)


def block_sm(block, sms, spin_ns):
    """Note the SM each logical block ran on, and hold it ``spin_ns``."""
    if cuda.threadIdx.x == 0:
        sms[block] = smid()
        start = globaltimer()
        while globaltimer() - start < spin_ns:
            pass


def busy_cta(marks, started, base, spin_ns):
    if cuda.threadIdx.x == 0:
        start = globaltimer()
        started[base + cuda.blockIdx.x] = start
        cuda.atomic.add(marks, base + cuda.blockIdx.x, 1)
        while globaltimer() - start < spin_ns:
            pass


# ------------------------------------------------------------- helpers
def new_plane() -> Plane:
    return Plane(backend="cuda", quotas=shared_file("quotas", "demo.toml"), options=PlaneOptions())


@contextmanager
def running(plane: Plane):
    """Start ``plane`` and stop it on the way out; nothing is freed on the device meanwhile."""
    with cuda.defer_cleanup():
        plane.start()
        try:
            yield plane
        finally:
            plane.stop()


def reached(event, timeout_s: float = WAIT_S) -> None:
    """Wait until the GPU has done the work recorded before ``event``."""
    deadline = time.monotonic() + timeout_s
    while not event.query():
        if time.monotonic() > deadline:
            pytest.fail(f"the GPU work did not finish within {timeout_s} s")
        time.sleep(0.0005)


def finish(stream, timeout_s: float = WAIT_S) -> None:
    done = cuda.event(timing=False)
    done.record(stream)
    reached(done, timeout_s)


def preload(kernel, stream, *args) -> None:
    """Compile ``kernel`` (a ``gbpfd.admit`` kernel; ``args`` follow its
    ctl, flat and tenant) and load its module while no control kernel is
    resident: one CTA on spare plane words, whose wait bound of 0 makes it
    bypass at once."""
    spare_ctl = cuda.to_device(np.zeros(S.CTL_WORDS, np.int64))
    spare_flat = cuda.to_device(np.zeros(S.FLAT_WORDS, np.int64))
    kernel._compiled()[1, THREADS, stream](spare_ctl, spare_flat, 0, *args)
    finish(stream)


def device_counters(plane, tenant: str) -> dict[str, int]:
    """The tenant's counters record as the device holds it."""
    flat = plane.device["flat"].copy_to_host()
    at = S.COUNTERS_WORD + plane.quotas.index(tenant) * S.COUNTER_RECORD_WORDS
    return {name: int(flat[at + i]) for name, i in S.COUNTER._asdict().items()}


def settled_counters(plane, tenant: str = TENANT) -> dict[str, int]:
    """Device counters, checked against the host's mirror of them."""
    settle(plane)
    on_device = device_counters(plane, tenant)
    mirrored = {k: v for k, v in plane.counters()[tenant].items() if k != "latency_histogram"}
    assert mirrored == on_device
    return on_device


def tenant_words(plane, tenant: str = TENANT) -> dict[str, int]:
    ctl = plane.device["ctl"].copy_to_host()
    at = S.TENANT_BASE + plane.quotas.index(tenant) * S.TENANT_STRIDE
    words = {name: int(ctl[at + i]) for name, i in S.TENANT._asdict().items()}
    words["total_running"] = int(ctl[S.PLANE.total_running])
    return words


def announced_and_finished(plane, tenant: str = TENANT) -> tuple[int, int]:
    """The tenant's launches announced and reported finished (the host area's demand and finished words)."""
    t = plane.quotas.index(tenant)
    return int(plane.arrays.host[L.REGION.demand + t]), int(plane.arrays.host[L.REGION.finished + t])


def idle(words: dict[str, int]) -> tuple[int, int, int]:
    return words["running"], words["queued"], words["total_running"]


def asm(text: str):
    return assemble(text, "<test>")


# --------------------------------------------------------------- tests
def test_start_reports_ready_the_control_sm_and_the_reserved_share():
    sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
    with running(new_plane()) as plane:
        settle(plane)
        health = plane.health()
        ctl = plane.device["ctl"].copy_to_host()
        settle(plane)
        later = plane.health()
    assert health.backend == "cuda" and not health.simulated and health.ready
    assert 0 <= health.smid < sms
    assert int(ctl[S.PLANE.smid]) == health.smid
    assert health.reserved_share == round(1 / sms, 6)
    assert plane.total_slots == (sms - 1) * plane.options.slots_per_sm
    assert int(ctl[S.META.total_slots]) == plane.total_slots     # the snapshot the device adopted
    assert health.epoch >= 1 and int(ctl[S.META.epoch]) >= 1      # telemetry republishes: epochs move on
    assert later.loops > health.loops and later.ticks > health.ticks
    assert not health.stalled


def test_stop_returns_and_the_control_cta_says_why():
    plane = new_plane()
    with cuda.defer_cleanup():
        plane.start()
        reason = plane.stop()
    assert reason == "stop command"
    assert int(plane.arrays.host[HEADER.exit_reason]) == 1
    assert [e.args["reason"] for e in plane.events() if e.kind == "stopped"] == [1]
    assert plane.stop() == "not running"


def test_token_then_request_admission_counts_every_cta():
    ctas = 64
    marks = cuda.to_device(np.zeros(2 * ctas, np.int64))
    stream = cuda.stream()
    plane = new_plane()
    kernel = gbpfd.admit(plane, TENANT)(mark_cta)
    preload(kernel, stream, cuda.to_device(np.zeros(THREADS, np.int64)), 0)
    with running(plane):
        settle(plane)
        start = plane.plane_stats()
        kernel[ctas, THREADS, stream](marks, 0)          # the baseline tick left tokens: no requests
        finish(stream)
        plane.load(asm(NO_TOKENS_TICK), "tick")
        settle(plane)
        by_token = plane.plane_stats()
        kernel[ctas, THREADS, stream](marks, ctas)       # no tokens: every CTA asks cta_admit
        finish(stream)
        counters = settled_counters(plane)
        by_request = plane.plane_stats()
        words = tenant_words(plane)
        reported = announced_and_finished(plane)
    assert (marks.copy_to_host() == 1).all()
    assert reported == (2, 2)  # each gate launch's stream callback reported it finished
    assert by_token["fast_grants"] - start["fast_grants"] == ctas
    assert by_token["requests"] == start["requests"]
    assert by_request["requests"] - by_token["requests"] == ctas
    assert by_request["decisions"] - by_token["decisions"] == ctas
    assert by_request["fast_grants"] == by_token["fast_grants"]
    assert (counters["admitted"], counters["bypassed"], counters["deferred"]) == (2 * ctas, 0, 0)
    assert idle(words) == (0, 0, 0)


def test_a_faulting_policy_falls_back_to_the_baseline_and_decisions_go_on(monkeypatch):
    ctas = 32
    marks = cuda.to_device(np.zeros(ctas, np.int64))
    stream = cuda.stream()
    plane = new_plane()
    kernel = gbpfd.admit(plane, TENANT)(mark_cta)
    preload(kernel, stream, cuda.to_device(np.zeros(THREADS, np.int64)), 0)
    with running(plane):
        plane.load(asm(NO_TOKENS_TICK), "tick")
        # let a program the verifier refuses through, to see the device's own guard
        monkeypatch.setattr(plane, "_check", lambda program, hook: SimpleNamespace(accepted=True, log=[], cost=0))
        faulty = plane.load(asm(FUEL_FAULT_ADMIT), "cta_admit")
        settle(plane)
        plane.events()
        start = plane.plane_stats()
        kernel[ctas, THREADS, stream](marks, 0)
        finish(stream)
        counters = settled_counters(plane)
        end = plane.plane_stats()
        events = plane.events()
    baseline = next(p for p in plane.programs().values() if p.hook == "cta_admit" and p.slot == S.BASELINE_SLOT)
    t = plane.quotas.index(TENANT)
    assert [(e.hook, e.program, e.tenant, e.args["status"], e.args["steps"]) for e in events if e.kind == "fault"] \
        == [(S.HOOK.cta_admit, faulty.id, t, FAULT_FUEL, HOOKS["cta_admit"].budget)]
    assert [(e.hook, e.program, e.args["from_program"]) for e in events if e.kind == "fallback"] \
        == [(S.HOOK.cta_admit, baseline.id, faulty.id)]
    assert end["decisions"] - start["decisions"] == ctas     # the baseline decided every request
    assert (counters["admitted"], counters["bypassed"], counters["faults"]) == (ctas, 0, 1)
    assert (marks.copy_to_host() == 1).all()


def test_live_swap_under_load_loses_and_doubles_no_admission():
    launches, ctas, spin_ns = 160, 512, 200_000   # several waves per launch: tens of ms after the swap
    swap_after = launches // 2
    programs = baseline_programs("asm")
    marks = cuda.to_device(np.zeros(launches * ctas, np.int64))
    started = cuda.to_device(np.zeros(launches * ctas, np.int64))
    stream = cuda.stream()
    half_way = cuda.event(timing=False)
    plane = new_plane()
    kernel = gbpfd.admit(plane, TENANT)(busy_cta)
    preload(kernel, stream, cuda.to_device(np.zeros(THREADS, np.int64)), cuda.to_device(np.zeros(THREADS, np.int64)),
            0, 0)
    with running(plane):
        for i in range(launches):
            kernel[ctas, THREADS, stream](marks, started, i * ctas, spin_ns)
            if i == swap_after:
                half_way.record(stream)
        reached(half_way)
        swapped = [plane.load(programs[hook], hook) for hook in ("cta_admit", "tick")]
        finish(stream)
        counters = settled_counters(plane)
        words = tenant_words(plane)
        events = plane.events()
    begun = started.copy_to_host()
    swap_ns = [e.time_ns for e in events if e.kind == "swapped" and e.program in {p.id for p in swapped}]
    assert len(swap_ns) == 2
    assert begun.min() < min(swap_ns) and max(swap_ns) < begun.max()   # both swaps landed mid-workload
    assert (marks.copy_to_host() == 1).all()                            # no CTA ran twice or was lost
    assert counters["admitted"] + counters["bypassed"] == launches * ctas
    assert idle(words) == (0, 0, 0)


def test_persistent_workers_run_every_logical_block_once():
    nblocks, workers = 4096, 64
    ran = cuda.to_device(np.zeros(nblocks, np.int64))
    stream = cuda.stream()  # the launcher synchronises this stream, never the whole device
    plane = new_plane()
    kernel = gbpfd.admit(plane, TENANT, mode="persistent", workers=workers)(mark_block)
    spare = cuda.to_device(np.zeros(1, np.int64))
    preload(kernel, stream, spare, 0, 1, spare)       # no logical blocks: the worker leaves at once
    with running(plane):
        assert kernel[nblocks, THREADS, stream](ran) == nblocks
        counters = settled_counters(plane)
        words = tenant_words(plane)
    assert (ran.copy_to_host() == 1).all()
    # admitted counts logical blocks; a bypassing worker may find no block left
    assert counters["admitted"] <= nblocks <= counters["admitted"] + counters["bypassed"]
    assert idle(words) == (0, 0, 0) and words["workers"] == 0


def test_no_best_effort_block_runs_on_an_sm_drained_for_a_latency_critical_tenant():
    nblocks = 8192
    sms = cuda.to_device(np.full(nblocks, -1, np.int64))
    stream = cuda.stream()
    plane = new_plane()
    kernel = gbpfd.admit(plane, TENANT, mode="persistent")(block_sm)
    spare = cuda.to_device(np.zeros(1, np.int64))
    preload(kernel, stream, spare, 0, 1, spare, 0)
    infer = plane.quotas.index("infer")
    with running(plane):
        plane.announce_launch(infer, 16)   # a latency-critical launch of 16 CTAs on its way: sm_tick drains 16 SMs
        settle(plane)
        drained = plane.plane_stats()["drained_sms"]
        assert kernel[nblocks, THREADS, stream](sms, 20_000) == nblocks
        counters = settled_counters(plane)
        plane.launch_finished(infer)
    ran_on = set(sms.copy_to_host().tolist())
    marked = set(range(plane.device_sms - 16, plane.device_sms)) - {plane.health().smid}
    assert drained == len(marked) and -1 not in ran_on
    assert not ran_on & marked, f"blocks ran on drained SMs {sorted(ran_on & marked)}"
    assert counters["drained"] >= len(marked)  # the first wave put workers on every SM; those left


def test_a_kernel_not_loaded_before_the_plane_started_is_refused_and_nothing_runs():
    marks = cuda.to_device(np.zeros(1, np.int64))
    stream = cuda.stream()
    with running(new_plane()) as plane:
        kernel = gbpfd.admit(plane, TENANT)(mark_cta)
        before = plane.plane_stats()
        with pytest.raises(AdmitError, match=r"^mark_cta: not loaded for arguments of types"):
            kernel[1, THREADS, stream](marks, 0)    # loading its module now would wait for the control kernel
        settle(plane)
        after = plane.plane_stats()
    assert marks.copy_to_host()[0] == 0
    assert (after["fast_grants"], after["requests"]) == (before["fast_grants"], before["requests"])


def test_soak_a_million_admissions_none_lost_or_doubled():
    launches, ctas = 100, 10_000
    marks = cuda.to_device(np.zeros(launches * ctas, np.int64))
    stream = cuda.stream()
    plane = new_plane()
    kernel = gbpfd.admit(plane, TENANT)(mark_cta)
    preload(kernel, stream, cuda.to_device(np.zeros(THREADS, np.int64)), 0)
    with running(plane):
        before = settled_counters(plane)
        stats_before = plane.plane_stats()
        t0 = time.monotonic()
        for i in range(launches):
            kernel[ctas, 32, stream](marks, i * ctas)
        finish(stream, timeout_s=300.0)
        seconds = time.monotonic() - t0
        after = settled_counters(plane)
        stats_after = plane.plane_stats()
        words = tenant_words(plane)
        health = plane.health()
    ran = marks.copy_to_host()
    delta = {k: after[k] - before[k] for k in ("admitted", "bypassed", "deferred")}
    figures = {"admissions": launches * ctas, "seconds": seconds, "per_second": launches * ctas / seconds,
               **delta, "by_token": stats_after["fast_grants"] - stats_before["fast_grants"],
               "by_request": stats_after["requests"] - stats_before["requests"],
               "lost": int((ran == 0).sum()), "doubled": int((ran > 1).sum())}
    if os.environ.get(RESULTS_DIR):
        with open(os.path.join(os.environ[RESULTS_DIR], "soak.json"), "w") as fh:
            json.dump(figures, fh)
    print(json.dumps({"soak": figures}))
    assert (figures["lost"], figures["doubled"]) == (0, 0)
    assert delta["admitted"] + delta["bypassed"] == launches * ctas
    assert figures["by_token"] + figures["by_request"] >= delta["admitted"]
    assert idle(words) == (0, 0, 0)
    assert not health.stalled
