"""The simulated device: a discrete-event model in virtual nanoseconds.

What runs is the real device code (``gbpfd.device.build.for_cpu``): the
control CTA's ``housekeeping``/``serve_slot`` and the workers' gate steps,
on the plane's real arrays.  What is modelled is time: when the control CTA
iterates, how long its policy runs take (``insn_ns`` per instruction), and
when one side sees the other's stores.  Idle control-loop iterations are
not stepped one by one: the model jumps to the next one that can observe
something (a posted request, a host command, a due period) and counts the
skipped iterations in the loop counters.

Kernels launch in one of ``MODES``: ``"gate"`` and ``"persistent"`` (the
admission modes of ``gbpfd.admit``) or ``"none"``, a plain launch the plane
plays no part in.  Each CTA is placed on an SM it fits on (threads,
registers, shared memory, CTA slots: gbpfd.sim.sm) by the GPU's placement
rule.  CTAs waiting for an SM are dispatched by stream priority, then in
launch order, one at a time: the CTA at the head of that order waits
until some SM has room for it, and every CTA behind it waits with it (the
hardware's in-order dispatch; a higher-priority launch goes to the head;
running CTAs are never preempted).  The control CTA holds SM 0 from
``start``; before that the whole GPU is free.

Running blocks share their SM's issue rate and the GPU's HBM bandwidth
(gbpfd.sim.sharing); with the default declarations nothing is shared and
a block takes exactly its ``block_ns``.  Every time the device code reads
is ``%globaltimer``, quantised to its step; a launch takes ``launch_ns``
at the median, with an exponential tail (a seeded draw: runs are
deterministic).
"""
from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from gbpfd.bridge.layout import REGION, RING
from gbpfd.device import state as S
from gbpfd.device.build import for_cpu
from gbpfd.device.topup import top_up_workers
from gbpfd.plane.arrays import TOPUP_POLL_NS, PlaneArrays
from gbpfd.sim.model import SimGPU
from gbpfd.sim.sharing import Sharing
from gbpfd.sim.sm import SM, CtaShape, place

COMMAND_HEAD = REGION.command_ring + RING.head


COPY_BACKOFF_MAX_NS = 16_000
MODES = ("gate", "persistent", "none")


@dataclass
class KernelRun:
    """One launch's outcome, in virtual ns."""
    tenant: int
    mode: str
    launched_ns: int
    blocks: int
    done_ns: int | None = None
    blocks_done: int = 0
    sms: list = field(default_factory=list)   # the SM of each of its CTAs, in dispatch order
    beside: int = 0                           # its CTAs placed on an SM where another tenant had a CTA

    @property
    def latency_ns(self) -> int | None:
        return None if self.done_ns is None else self.done_ns - self.launched_ns


_SERIALS = itertools.count()


@dataclass
class _Kernel:
    run: KernelRun
    block_ns: int
    workers: int               # persistent mode: worker CTAs per launch; otherwise = blocks
    shape: CtaShape
    issue: float               # the share of an SM's issue rate one of its blocks uses alone
    demand: float              # bytes per ns one of its blocks moves at full speed
    priority: int = 0
    next_block: int = 0
    live_workers: int = 0
    on_done: object = None
    serial: int = field(default_factory=lambda: next(_SERIALS))
    cancelled: bool = False    # its process went away: no block starts any more


@dataclass
class _Cta:
    """One CTA of a kernel, on the SM it was placed on (a persistent worker:
    whether it counts as best-effort there, when its block started)."""
    kernel: _Kernel
    sm: SM
    best_effort: int = 0
    block_start: int = 0


@dataclass
class CopyRun:
    tenant: int
    nbytes: int
    chunk: int
    started_ns: int
    done_ns: int | None = None
    moved: int = 0
    bypassed_chunks: int = 0


@dataclass
class Stats:
    """What the workers saw, kept apart from the device's own counters so
    that the two can be checked against each other."""
    reaction_ns: list = field(default_factory=list)   # post -> decision seen by the requester
    granted: dict = field(default_factory=dict)       # tenant -> blocks started by token or admit decision
    bypassed: dict = field(default_factory=dict)      # tenant -> entries past the wait bound
    posted: int = 0
    answered: int = 0
    denied_exits: int = 0
    relaunches: int = 0
    top_ups: int = 0                                  # persistent workers launched beside a running wave
    blocks_started: dict = field(default_factory=dict)  # (kernel id, block) -> times started

    def count(self, table: dict, tenant: int) -> None:
        table[tenant] = table.get(tenant, 0) + 1


class SimDevice:
    """``seed``: the random draws' (launch latencies); the same seed, the same run."""

    def __init__(self, arrays: PlaneArrays, gpu: SimGPU, topup_poll_ns: int = TOPUP_POLL_NS, *, seed: int = 0):
        self.a = arrays
        self.gpu = gpu
        self.topup_poll_ns = topup_poll_ns  # the persistent launcher's top-up check (PlaneOptions.topup_poll_us)
        self.dev = for_cpu()
        self.args = arrays.device_args()
        self.now = 0
        self._events: list = []
        self._seq = itertools.count()
        self._replans = itertools.count()  # orders events planned again for the same (ns, seq)
        self._rng = np.random.default_rng(seed)
        self._control_at: int | None = None
        self._command_heads: list = []  # (visible from, head after the push), oldest first
        self._seen_head = 0
        self._posted: list = []       # (visible_ns, slot, continuation)
        self.sms = [SM(i, gpu.sm_limits) for i in range(gpu.num_sms)]
        # (shape, SMs that gave resources back since every other SM was seen not to fit a CTA of that shape):
        # taking resources never makes a CTA fit, so only those can have room for it now
        self._unfit: tuple | None = None
        self.sharing = Sharing(gpu.num_sms, gpu.hbm_bytes_per_s, gpu.clock_droop, self._at_seq, lambda: self.now)
        self._dispatch_queue: list = []  # heap of (priority, order, kernel): one entry per waiting CTA
        self._unfinished: dict = {}      # id(KernelRun) -> its kernel, until it is done
        self.running = False
        self.stalled = False
        self.stats = Stats()

    # ------------------------------------------------------------ events
    def at(self, when: int, fn, *args) -> None:
        self._at_seq(when, next(self._seq), fn, *args)

    def _at_seq(self, when: int, seq: int, fn, *args) -> None:
        """An event at ``when`` ordered among those of the same ns by ``seq``
        (a block's completion keeps the place its start drew)."""
        when = int(when)
        heapq.heappush(self._events, (max(self.now, when), seq, next(self._replans), fn, args))

    def timer(self, when: int | None = None) -> int:
        """``%globaltimer`` at ``when`` (default now): the time in whole steps."""
        when = self.now if when is None else when
        return when - when % self.gpu.globaltimer_step_ns

    def _launch_latency(self) -> int:
        """Host launch to the first CTA: a draw whose median is ``launch_ns``,
        with an exponential tail of mean ``launch_jitter_ns`` (shifted by its
        own median, ln 2 times its mean, so that the median stays put)."""
        jitter = self.gpu.launch_jitter_ns
        if not jitter:
            return self.gpu.launch_ns
        return max(0, self.gpu.launch_ns + round(jitter * (self._rng.exponential() - math.log(2))))

    def occupancy(self, tenant: int | None = None) -> list:
        """Resident CTAs on each SM (of ``tenant`` only, if given); the control CTA is not counted."""
        return [sm.ctas if tenant is None else sm.tenants.get(tenant, 0) for sm in self.sms]

    def run_until(self, t_end: int) -> None:
        while self._events and self._events[0][0] <= t_end:
            when, _, _, fn, args = heapq.heappop(self._events)
            self.now = when
            fn(*args)
        self.now = max(self.now, t_end)

    def run_while(self, busy, limit_ns: int) -> bool:
        """Advance until ``busy()`` is false or ``limit_ns`` more virtual ns pass."""
        end = self.now + limit_ns
        while busy():
            if not self._events or self._events[0][0] > end:
                self.now = end
                return not busy()
            when, _, _, fn, args = heapq.heappop(self._events)
            self.now = when
            fn(*args)
        return True

    # ---------------------------------------------------- control CTA
    def start(self) -> None:
        # this launcher reports completions, from now on and for what it launched before
        for t in range(S.MAX_TENANTS):
            pending = sum(1 for k in self._unfinished.values() if k.run.tenant == t and k.run.mode != "none")
            self.a.host[REGION.finished + t] = self.a.host[REGION.demand + t] - pending
        self.a.ctl[S.PLANE.smid] = 0
        self.sms[0].reserved = True  # the control CTA's SM: CTAs already there finish, no new one is placed
        self.running = True
        self.wake_control(self.now + self._launch_latency())

    def wake_control(self, when: int) -> None:
        if not self.running or self.stalled:
            return
        if self._control_at is not None and self._control_at <= when:
            return
        self._control_at = when
        self.at(when, self._control_iteration, when)

    def host_wrote(self) -> None:
        """The host pushed a command: the control CTA sees it after a PCIe trip."""
        head = int(self.a.host[COMMAND_HEAD])
        self._command_heads.append((self.now + self.gpu.host_ns, head))
        self.wake_control(self.now + self.gpu.host_ns)

    def _visible_command_head(self) -> int:
        """The newest command head the device can see now (host writes take host_ns)."""
        while len(self._command_heads) > 1 and self._command_heads[1][0] <= self.now:
            self._command_heads.pop(0)
        at, head = self._command_heads[0]
        return head if at <= self.now else self._seen_head

    def _control_iteration(self, planned: int) -> None:
        if self._control_at != planned or not self.running or self.stalled:
            return
        self._control_at = None
        insns0 = int(self.a.ctl[S.PLANE.insns])
        written = int(self.a.host[COMMAND_HEAD])
        self._seen_head = self._visible_command_head() if self._command_heads else written
        self.a.host[COMMAND_HEAD] = self._seen_head
        stop = self.dev.control_warp(0, 1, self.timer(), *self.args)
        self.a.host[COMMAND_HEAD] = written
        if stop:
            self.running = False
            return
        cost = self.gpu.loop_ns + (int(self.a.ctl[S.PLANE.insns]) - insns0) * self.gpu.insn_ns
        visible = [p for p in self._posted if p[0] <= self.now]
        self._posted = [p for p in self._posted if p[0] > self.now]
        for _, slot, cont in sorted(visible):
            before = int(self.a.ctl[S.PLANE.insns])
            decided_at = self.now + cost
            if self.dev.serve_slot(slot, self.timer(decided_at), *self.args):
                cost += (int(self.a.ctl[S.PLANE.insns]) - before) * self.gpu.insn_ns + self.gpu.gate_step_ns
                cont(decided_at + self.gpu.visibility_ns)
        self._schedule_next(self.now + cost)

    def _schedule_next(self, free_at: int) -> None:
        ctl = self.a.ctl
        candidates = [p[0] for p in self._posted]
        if self._seen_head != self.a.host[REGION.command_ring + RING.tail]:
            candidates.append(free_at)  # a command was left for the next iteration
        if self._command_heads and self._command_heads[-1][1] != self._seen_head:
            candidates.append(self._command_heads[-1][0])  # one still on its way over PCIe
        for last, period in ((S.PLANE.last_tick_ns, S.PLANE.tick_period_ns), (S.PLANE.last_dma_ns, S.PLANE.dma_period_ns),
                             (S.PLANE.last_warp_ns, S.PLANE.warp_period_ns),
                             (S.PLANE.last_therm_ns, S.PLANE.therm_period_ns)):
            if ctl[period] > 0:
                candidates.append(int(ctl[last] + ctl[period]))
        nxt = max(min(candidates), free_at) if candidates else None
        if nxt is not None:
            loop = self.gpu.loop_ns
            skipped = max(0, (nxt - free_at) // loop)
            self.a.ctl[S.PLANE.period_loops] += skipped
            self.a.ctl[S.PLANE.loops] += skipped
            self.wake_control(free_at + skipped * loop if skipped else nxt)

    # ------------------------------------------------------- worker side
    def post(self, tenant: int, on_decision, sm: int = 1) -> bool:
        """Post an admission request now, from a CTA on SM ``sm`` (a requester
        with no CTA of its own says 1, a worker SM: the control CTA holds 0);
        ``on_decision(decision, seen_ns)`` runs when the requester sees the
        answer.  False: no free slot."""
        posted = self.timer()
        slot = self.dev.post_request(self.a.ctl, tenant, sm, posted)
        if slot < 0:
            return False
        self.stats.posted += 1

        def seen(when: int) -> None:
            self.at(when, self._decision_seen, slot, posted, on_decision)
        visible = self.now + self.gpu.visibility_ns
        self._posted.append((visible, slot, seen))
        self.wake_control(visible)
        bound = int(self.a.ctl[S.PLANE.wait_bound_ns])
        self.at(self.now + bound, self._wait_bound_hit, slot, posted, on_decision)
        return True

    def _decision_seen(self, slot: int, posted: int, on_decision) -> None:
        if int(self.a.ctl[S.SLOT_BASE + slot * S.SLOT_STRIDE + S.SLOT.post_ns]) != posted:
            return  # the wait already ended at its bound
        decision = self.dev.poll_request(self.a.ctl, slot)
        if decision < 0:
            return
        self.stats.reaction_ns.append(self.timer() - posted)  # as the requester reads it: %globaltimer
        self.stats.answered += 1
        on_decision(decision, self.now)

    def _wait_bound_hit(self, slot: int, posted: int, on_decision) -> None:
        base = S.SLOT_BASE + slot * S.SLOT_STRIDE
        if int(self.a.ctl[base + S.SLOT.post_ns]) != posted or self.a.ctl[base + S.SLOT.state] == S.FREE:
            return
        decision = self.dev.abandon_request(self.a.ctl, slot)
        self.a.ctl[base + S.SLOT.post_ns] = -1  # this wait is over; a late 'seen' must not act
        self.stats.answered += 1
        on_decision(decision, self.now)

    # ----------------------------------------------------- CTA dispatch
    def _dispatch(self) -> None:
        """Place waiting CTAs in dispatch order until the one at the head fits on no SM."""
        while self._dispatch_queue:
            k = self._dispatch_queue[0][2]
            sm = self._find_sm(k.shape)
            if sm is None:
                return
            heapq.heappop(self._dispatch_queue)
            cta = self._place(k, sm)
            if k.run.mode == "none":
                self._run_block(cta, None)
            else:
                if k.run.mode == "persistent":
                    cta.best_effort = int(self.dev.worker_arrives(self.a.ctl, self.a.flat, k.run.tenant, sm.index))
                start = self.now + self.gpu.gate_step_ns
                self.at(start, self._enter, cta, start)

    def _find_sm(self, shape: CtaShape) -> SM | None:
        """The SM the placement rule picks for a CTA of ``shape``, looking only where it may fit."""
        if self._unfit is not None and self._unfit[0] == shape:
            candidates = [self.sms[i] for i in sorted(self._unfit[1])]
        else:
            candidates = self.sms
        sm = place(candidates, shape, self.gpu.placement)
        if sm is None:
            self._unfit = (shape, set())
        return sm

    def _place(self, k: _Kernel, sm: SM) -> _Cta:
        tenant = k.run.tenant
        if any(t != tenant for t in sm.tenants):
            k.run.beside += 1
        sm.take(k.shape, tenant)
        k.run.sms.append(sm.index)
        return _Cta(k, sm)

    def _release(self, cta: _Cta) -> None:
        cta.sm.give(cta.kernel.shape, cta.kernel.run.tenant)
        if self._unfit is not None:
            self._unfit[1].add(cta.sm.index)
        self._dispatch()

    def launch(self, tenant: int, *, blocks: int, block_ns: int, mode: str = "gate", workers: int | None = None,
               priority: int = 0, on_done=None, threads: int | None = None, registers: int | None = None,
               shared_bytes: int | None = None, issue_utilisation: float | None = None,
               bytes_per_block: float = 0) -> KernelRun:
        """Launch a kernel of ``blocks`` CTAs (modes gate and none) or logical
        blocks (persistent mode, ``workers`` worker CTAs) for ``tenant``.
        ``priority``: its stream's priority, in CUDA's convention (lower
        numbers are dispatched first; 0 is the default).  The CTA:
        ``threads``, ``registers`` per thread, ``shared_bytes`` (default:
        the GPU's modelled kernel).  ``block_ns``: a block's time alone on
        an idle GPU; ``issue_utilisation``: the share of its SM's issue rate
        a block uses alone (default: its share of the SM's threads, so that
        a full SM is never oversubscribed); ``bytes_per_block``: the HBM
        traffic of one block (gbpfd.sim.sharing)."""
        if mode not in MODES:
            raise ValueError(f"SimDevice.launch: mode must be one of {', '.join(MODES)}; got {mode!r}")
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ValueError(f"SimDevice.launch: priority must be an int (a CUDA stream priority), got {priority!r}")
        shape = self._shape(threads, registers, shared_bytes)
        issue = shape.threads / self.gpu.sm_max_threads if issue_utilisation is None else issue_utilisation
        _check_number("block_ns", block_ns, positive=True)
        _check_number("issue_utilisation", issue, positive=True, most=1)
        _check_number("bytes_per_block", bytes_per_block)
        run = KernelRun(tenant, mode, self.now, blocks)
        if mode != "none":
            self.a.host[REGION.launch_ctas + tenant] = blocks   # the host's launcher announces the launch
            self.a.host[REGION.demand + tenant] += 1
        k = _Kernel(run, block_ns, (workers or self.worker_fit(shape)) if mode == "persistent" else blocks,
                    shape, issue, bytes_per_block / block_ns, priority=priority, on_done=on_done)
        self._unfinished[id(run)] = k
        self.at(self.now + self._launch_latency(), self._enqueue_launch, k)
        if mode == "persistent":
            self.at(self.now + self.topup_poll_ns, self._top_up, k)
        return run

    def worker_fit(self, shape: CtaShape) -> int:
        """Worker CTAs of ``shape`` co-resident beside the control CTA (its occupancy, one SM less)."""
        return (self.gpu.num_sms - 1) * self.gpu.sm_limits.per_sm(shape)

    def _shape(self, threads, registers, shared_bytes) -> CtaShape:
        """The CTA a launch asks for, checked: one that no SM could ever hold is refused."""
        default = self.gpu.kernel_shape
        shape = CtaShape(default.threads if threads is None else threads,
                         default.registers if registers is None else registers,
                         default.shared_bytes if shared_bytes is None else shared_bytes)
        for name, value, least in (("threads", shape.threads, 1), ("registers", shape.registers, 1),
                                   ("shared_bytes", shape.shared_bytes, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"SimDevice.launch: {name} must be an integer >= {least}, got {value!r}")
        refusal = self.gpu.sm_limits.refusal(shape)
        if refusal:
            raise ValueError(f"SimDevice.launch: {refusal}")
        return shape

    def _top_up(self, k: _Kernel) -> None:
        """The persistent launcher's poll (gbpfd.admission, ``_serve_blocks``):
        while the tenant holds tokens that its workers on SMs leave unused (its
        allowance rose, or another tenant left), launch that many more workers,
        up to the launch's worker count."""
        if k.run.done_ns is not None or k.cancelled:
            return
        t = k.run.tenant
        base = S.TENANT_BASE + t * S.TENANT_STRIDE
        max_per_sm = int(self.dev.quota_u32(self.a.flat, t, S.QUOTA.max_ctas_per_sm))
        spare = top_up_workers(self.a.ctl[base:base + S.TENANT_STRIDE], k.workers,
                               self.gpu.sm_limits.per_sm(k.shape), max_per_sm)
        if spare > 0 and k.live_workers and k.next_block < k.run.blocks:
            self.stats.top_ups += 1
            self.at(self.now + self._launch_latency(), self._enqueue_workers, k, spare)
        self.at(self.now + self.topup_poll_ns, self._top_up, k)

    def cancel(self, run: KernelRun) -> bool:
        """End a launch whose process went away, as the driver tears down a
        dead context's work: no block of it starts any more, the blocks
        already running finish, and its waiting CTAs leave their places.
        False when it had already finished."""
        k = self._unfinished.get(id(run))
        if k is None:
            return False
        k.cancelled = True
        waiting = [entry for entry in self._dispatch_queue if entry[2] is k]
        self._dispatch_queue = [entry for entry in self._dispatch_queue if entry[2] is not k]
        heapq.heapify(self._dispatch_queue)
        k.live_workers -= len(waiting)
        self._finish_if_done(k)
        return True

    def _enqueue_launch(self, k: _Kernel) -> None:
        if k.cancelled:
            self._finish_if_done(k)
            return
        self._enqueue_workers(k, k.workers if k.run.mode == "persistent" else k.run.blocks - k.next_block)

    def _enqueue_workers(self, k: _Kernel, n: int) -> None:
        if k.cancelled:
            return
        for _ in range(n):
            k.live_workers += 1
            heapq.heappush(self._dispatch_queue, (k.priority, next(self._seq), k))
        self._dispatch()

    def _enter(self, cta: _Cta, started: int, answered: int | None = None) -> None:
        """The CTA asks to run (``started``: when its wait began; ``answered``:
        when the control CTA last answered it, as kernels_cuda.cta_enter)."""
        answered = started if answered is None else answered
        k = cta.kernel
        if k.cancelled:
            self._worker_exit(cta)
            return
        t = k.run.tenant
        if k.run.mode == "persistent" and self.dev.worker_must_leave(self.a.ctl, self.a.flat, t, cta.sm.index,
                                                                     cta.best_effort):
            self._worker_exit(cta)
            return
        if self.dev.try_token(self.a.ctl, t, self.timer()):
            self._body(cta, S.ENTER_TOKEN)
            return
        if not self.post(t, lambda d, when: self._entered(cta, started, d), cta.sm.index):
            self._retry_or_bypass(cta, started, answered)

    def _entered(self, cta: _Cta, started: int, decision: int) -> None:
        k = cta.kernel
        if decision == S.ADMIT:
            self._body(cta, S.ENTER_POLICY)
        elif decision < 0:
            self._body(cta, int(self.dev.bypass(self.a.ctl, self.a.flat, k.run.tenant)))
        elif k.run.mode == "persistent":
            self.stats.denied_exits += 1
            self._worker_exit(cta)
        else:
            self._retry_or_bypass(cta, started, self.now)

    def _retry_or_bypass(self, cta: _Cta, started: int, answered: int) -> None:
        """Ask again after a back-off, or run anyway: no answer for the wait
        bound, or deferred for the defer bound."""
        ctl = self.a.ctl
        if (self.now - answered >= int(ctl[S.PLANE.wait_bound_ns])
                or self.now - started >= int(ctl[S.PLANE.defer_bound_ns])):
            self._body(cta, int(self.dev.bypass(self.a.ctl, self.a.flat, cta.kernel.run.tenant)))
        else:
            self.at(self.now + self.gpu.retry_ns, self._enter, cta, started, answered)

    def _body(self, cta: _Cta, how: int) -> None:
        k = cta.kernel
        if how == S.ENTER_BYPASS:
            self.stats.count(self.stats.bypassed, k.run.tenant)  # a wait that hit its bound, block or not
        if k.run.mode == "persistent" and k.next_block >= k.run.blocks:
            self.dev.cta_exit(self.a.ctl, k.run.tenant, how)  # got in, found no block: not admitted
            self._worker_exit(cta)
            return
        if how != S.ENTER_BYPASS:
            self.stats.count(self.stats.granted, k.run.tenant)
        self.dev.count_block(self.a.flat, k.run.tenant, how)
        self._run_block(cta, how)

    def _run_block(self, cta: _Cta, how: int | None) -> None:
        """Run the kernel's next block on the CTA's SM; ``how`` it got in (None: mode none, ungated)."""
        k = cta.kernel
        key = (k.serial, k.next_block)
        self.stats.blocks_started[key] = self.stats.blocks_started.get(key, 0) + 1
        k.next_block += 1
        cta.block_start = self.now
        self.sharing.start(cta.sm.index, k.block_ns, k.issue, k.demand, next(self._seq),
                           lambda: self._block_done(cta, how))

    def _block_done(self, cta: _Cta, how: int | None) -> None:
        k = cta.kernel
        if how is not None:
            self.dev.cta_exit(self.a.ctl, k.run.tenant, how)
        if k.run.mode == "persistent":
            self.dev.note_block_ns(self.a.ctl, k.run.tenant, self.now - cta.block_start)
        k.run.blocks_done += 1
        if k.run.mode == "persistent" and k.next_block < k.run.blocks:
            self._enter(cta, self.now)
            return
        self._worker_exit(cta)

    def _worker_exit(self, cta: _Cta) -> None:
        k = cta.kernel
        if k.run.mode == "persistent":
            self.dev.worker_leaves(self.a.ctl, k.run.tenant, cta.sm.index, cta.best_effort, self.timer())
        k.live_workers -= 1
        self._release(cta)
        if self._finish_if_done(k):
            return
        if k.run.mode == "persistent" and k.live_workers == 0 and k.next_block < k.run.blocks:
            # every worker was denied: the host launches the rest again (the launcher's loop)
            self.stats.relaunches += 1
            self.at(self.now + self._launch_latency(), self._enqueue_launch, k)

    def _finish_if_done(self, k: _Kernel) -> bool:
        """Mark the launch done once its last worker has left (all its blocks run, or it was cancelled)."""
        if k.live_workers or k.run.done_ns is not None or not (k.cancelled or k.run.blocks_done == k.run.blocks):
            return False
        k.run.done_ns = self.now
        self._unfinished.pop(id(k.run), None)
        if k.run.mode != "none":
            self.a.host[REGION.finished + k.run.tenant] += 1  # the launcher reports the completion
        if k.on_done:
            k.on_done(k.run)
        return True

    # -------------------------------------------------------- paced copy
    def copy(self, tenant: int, nbytes: int, *, chunk: int, on_done=None) -> CopyRun:
        run = CopyRun(tenant, nbytes, chunk, self.now)
        self.dev.dma_announce(self.a.ctl, tenant, nbytes)
        self.at(self.now + self._launch_latency(), self._copy_chunk, run, self.now, on_done)
        return run

    def _copy_chunk(self, run: CopyRun, waiting_since: int, on_done, backoff: int = 0) -> None:
        n = min(run.chunk, run.nbytes - run.moved)
        if self.dev.dma_take(self.a.ctl, self.a.flat, run.tenant, n):
            pass
        elif self.now - waiting_since < int(self.a.ctl[S.PLANE.wait_bound_ns]):
            # back off exponentially, as a spinning copy kernel with nanosleep would, up to COPY_BACKOFF_MAX_NS
            backoff = min(max(backoff * 2, self.gpu.retry_ns), COPY_BACKOFF_MAX_NS)
            self.at(self.now + backoff, self._copy_chunk, run, waiting_since, on_done, backoff)
            return
        else:
            run.bypassed_chunks += 1
            self.dev.bypass(self.a.ctl, self.a.flat, run.tenant)
            self.dev.cta_exit(self.a.ctl, run.tenant, S.ENTER_BYPASS)
            self.dev.dma_announce(self.a.ctl, run.tenant, -n)  # no longer waiting for tokens
        run.moved += n
        finish = self.now + int(n * 1e9 / self.gpu.copy_bytes_per_s)
        if run.moved >= run.nbytes:
            run.done_ns = finish
            if on_done:
                self.at(finish, on_done, run)
        else:
            self.at(finish, self._copy_chunk, run, finish, on_done)


def _check_number(name: str, value, *, positive: bool = False, most: float | None = None) -> None:
    """A launch argument that must be a number >= 0 (> 0 if ``positive``; <= ``most`` if given)."""
    bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0
    if bad or (positive and value == 0) or (most is not None and value > most):
        wanted = f"a number in (0, {most}]" if most is not None else "a positive number" if positive else "a number >= 0"
        raise ValueError(f"SimDevice.launch: {name} must be {wanted}, got {value!r}")
