"""``gbpfd.Plane``: start a control CTA, load policies live, publish quotas,
read counters, events and health."""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import itertools
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gbpfd.bridge import layout as L
from gbpfd.bridge.events import Event
from gbpfd.bridge.ring import CommandRing, EventRing, RingFullError
from gbpfd.device import state as S
from gbpfd.errors import GbpfdError, LoadError
from gbpfd.isa.program import Program
from gbpfd.plane import arrays as A
from gbpfd.plane.options import BACKENDS, PlaneOptions
from gbpfd.quotas.load import QuotaSet, load_quotas
from gbpfd.quotas.snapshot import SnapshotPublisher
from gbpfd.resources import shared_file

DEFAULT_QUOTAS = "demo.toml"


class PlaneError(GbpfdError):
    """The plane could not do what was asked (it is left as it was)."""


class VerifyError(LoadError):
    """The verifier refused a program; ``log`` holds its log."""

    def __init__(self, message: str, log: list[str]):
        super().__init__(message)
        self.log = log


@dataclass(frozen=True)
class LoadedProgram:
    """A program held in one of a hook's slots (the baseline's, or one of the
    two a live swap alternates between).  ``active``: the slot the control
    CTA runs for the hook (as of the events drained so far: a fault's
    fallback to the baseline clears it).  ``tag``: the first 16 hex digits of
    the SHA-256 of its bytecode.  ``loaded_at``: UTC, to the second."""
    id: int
    hook: str
    slot: int
    name: str
    insns: int
    cost: int
    tag: str = ""
    loaded_at: str = ""
    active: bool = False


@dataclass(frozen=True)
class QuotaPublication:
    """A quota snapshot published but perhaps not adopted yet (``Plane.await_quotas`` waits)."""
    epoch: int
    seq: int                   # the command that tells the control CTA to adopt it
    written_ns: int            # time.perf_counter_ns() just before the snapshot's first store


@dataclass(frozen=True)
class Health:
    backend: str
    simulated: bool
    ready: bool
    smid: int
    reserved_share: float      # the control CTA's SM over all SMs
    heartbeat_age_ns: int
    stalled: bool
    loops: int
    ticks: int
    loop_period_ns: int
    epoch: int
    event_drops: int
    command_drops: int
    torn_retries: int
    bypassed: int
    telemetry: str


def _default_quotas() -> Path:
    return shared_file("quotas", DEFAULT_QUOTAS)


def _as_program(program, section: str | None) -> Program:
    from gbpfd.isa.load import load_program, program_from_bytes
    if isinstance(program, Program):
        return program
    if isinstance(program, (bytes, bytearray)):
        return program_from_bytes(bytes(program), path="<bytes>")
    if isinstance(program, (str, os.PathLike)):
        return load_program(os.fspath(program), section=section)
    raise TypeError(f"Plane.load: program must be a Program, a path or bytes, got {type(program).__name__}")


def _check_hook(hook) -> None:
    if hook not in S.HOOK_NAMES:
        raise LoadError(f"hook {hook!r} is not one of {', '.join(S.HOOK_NAMES)}")


def _identity(program: Program) -> tuple[str, str]:
    """(tag, loaded_at) of a program being loaded now."""
    tag = hashlib.sha256(program.to_bytes()).hexdigest()[:16]
    return tag, datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def choose_backend(backend: str) -> tuple[str, str]:
    """The backend to use and why."""
    if backend not in BACKENDS:
        raise ValueError(f"Plane: backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    if backend == "sim":
        return "sim", "asked for the simulated device"
    from gbpfd.plane.gpu_probe import gpu_missing_reason
    reason = gpu_missing_reason()
    if backend == "cuda":
        if reason:
            raise PlaneError(f"backend='cuda' needs a CUDA GPU: {reason}")
        return "cuda", "asked for the GPU"
    if reason:
        return "sim", f"no GPU ({reason}): using the simulated device"
    return "cuda", "a CUDA GPU is present"


class Plane:
    """One policy plane.  Use it as a context manager::

        with gbpfd.Plane(backend="sim", quotas="quotas/demo.toml") as plane:
            plane.load("gbpfd/policies/tenant_cap.s")
            print(plane.counters()["infer"]["admitted"])
    """

    def __init__(self, backend: str = "auto", quotas=None, options: PlaneOptions | None = None):
        self.options = options or PlaneOptions()
        self.backend_name, self.backend_reason = choose_backend(backend)
        self.quotas: QuotaSet = load_quotas(_default_quotas() if quotas is None else quotas)
        self.arrays = A.allocate()
        self._ids = itertools.count(1)
        self._last_slot: dict[str, int] = {}
        self._slots: dict[tuple[str, int], LoadedProgram] = {}   # (hook, slot) -> what that slot holds
        self._active: dict[str, int] = {}                          # hook -> its active slot
        self._code: dict[tuple[str, int], Program] = {}            # (hook, slot) -> the program as verified
        self._events: list[Event] = []
        self.baseline_form: str | None = None   # "c" or "asm", chosen at start
        self._backend = None
        self._finished_lock = threading.Lock()  # launch_finished runs on CUDA's callback threads
        self._sampler = None
        self.telemetry = "not sampled on the simulated device (therm_tick sees no valid fields)"
        self._started = False

    # --------------------------------------------------------- lifecycle
    @property
    def simulated(self) -> bool:
        return self.backend_name == "sim"

    @property
    def device(self):
        """The backend object (``SimDevice`` on the simulated device)."""
        return self._backend.device

    @property
    def total_slots(self) -> int:
        return self._backend.total_slots

    @property
    def device_sms(self) -> int:
        return self._backend.sms

    def __enter__(self) -> "Plane":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> "Plane":
        if self._started:
            raise PlaneError("Plane.start: the plane is already running")
        from gbpfd.policies.catalog import available_baseline_form, baseline_programs
        o = self.options
        self.baseline_form = available_baseline_form() if o.baseline_form == "auto" else o.baseline_form
        A.initialise(self.arrays, o.periods, wait_bound_ns=int(o.wait_bound_us * 1000),
                     defer_bound_ns=int(o.defer_bound_us * 1000),
                     active_window_ns=int(o.active_window_us * 1000), sample_every=o.sample_every)
        for hook, program in baseline_programs(self.baseline_form).items():
            pid = next(self._ids)
            verdict = self._check(program, hook)
            A.install_baseline(self.arrays, hook, program, pid)
            self._hold(LoadedProgram(pid, hook, S.BASELINE_SLOT, program.name, len(program.insns), verdict.cost,
                                     *_identity(program)), program)
        self._backend = self._make_backend()
        self._commands = CommandRing(self.arrays.host)
        self._event_ring = EventRing(self.arrays.host)
        self._snapshots = SnapshotPublisher(self.arrays.host)
        self._snapshots.publish(self.quotas, total_slots=self.total_slots)
        self._command("quotas")
        self._backend.start()
        self._started = True
        try:
            self._wait(lambda: self.arrays.host[L.HEADER.ready] == 1, "the control CTA to report ready")
            self._wait(lambda: self._commands.pending() == 0, "the first quota snapshot to be adopted")
        except BaseException:
            self.stop()  # a with block's __exit__ never runs when __enter__ raised: leave nothing resident
            raise
        if not self.simulated and o.telemetry_period_s is not None:
            self._start_telemetry(o.telemetry_period_s)
        return self

    def _start_telemetry(self, period_s: float) -> None:
        from gbpfd.telemetry import NvmlSampler
        sampler = NvmlSampler(period_s=period_s)
        if not sampler.available:
            self.telemetry = f"unavailable: {sampler.reason}"
            return
        self._sampler = sampler
        self.telemetry = f"NVML every {period_s} s"
        sampler.start(self._publish_telemetry)

    def _publish_telemetry(self, telemetry) -> None:
        self._snapshots.publish_telemetry(telemetry)
        self._command("quotas")

    def _make_backend(self):
        if self.backend_name == "sim":
            from gbpfd.plane.backend_sim import SimBackend
            return SimBackend(self.arrays, self.options)
        from gbpfd.plane.backend_cuda import CudaBackend
        return CudaBackend(self.arrays, self.options)

    def stop(self) -> str:
        """Stop the control CTA; returns why it ended.  Returns even when the
        control CTA has stalled (then it says so)."""
        if not self._started:
            return "not running"
        self._started = False
        if self._sampler is not None:
            self._sampler.stop()
        try:
            self._command("stop")
        except RingFullError:  # the control CTA reads no commands: it has stalled
            stopped = False
        else:
            stopped = self._backend.wait(lambda: self.arrays.host[L.HEADER.exit_reason] != 0,
                                         self.options.ack_timeout_s)
        reason = "stop command" if stopped else "control CTA stalled: it did not acknowledge stop"
        try:
            self._backend.close(stopped)
        except TimeoutError as err:
            reason = f"control CTA acknowledged stop, but {err}"
        self._drain_events()
        return reason

    # ----------------------------------------------------------- loading
    def _check(self, program: Program, hook: str):
        from gbpfd.verifier import verify
        verdict = verify(program, hook)
        if not verdict.accepted:
            raise VerifyError(f"{program.name or 'program'}: rejected by the verifier for hook {hook!r}:\n"
                              + "\n".join(verdict.log), list(verdict.log))
        return verdict

    def load(self, program, hook: str | None = None, *, section: str | None = None) -> LoadedProgram:
        """Verify ``program`` (a Program, a .s/.bin/.o path, or raw bytes) for
        ``hook`` and swap it in live.  A refused program changes nothing."""
        self._require_running("load")
        program = _as_program(program, section)
        hook = hook or program.hook
        if hook is None:
            raise LoadError(f"{program.name or 'program'}: no hook given and none declared; pass hook=")
        _check_hook(hook)
        verdict = self._check(program, hook)
        slot = 1 - self._last_slot.get(hook, 1)
        ninsns = A.stage_program(self.arrays, hook, slot, program)
        self._backend.staged(S.HOOK_NAMES.index(hook), slot)
        pid = next(self._ids)
        seq = self._command("swap", hook=S.HOOK_NAMES.index(hook), slot=slot, program=pid, arg0=ninsns)
        self._await_event("swapped", seq, f"the swap of {program.name or 'program'} into {hook}")
        self._last_slot[hook] = slot
        loaded = LoadedProgram(pid, hook, slot, program.name or "program", ninsns, verdict.cost,
                               *_identity(program), active=True)
        self._hold(loaded, program)
        return loaded

    def unload(self, hook: str) -> None:
        """Return ``hook`` to the baseline policy (or to no program); the
        programs loaded into its swap slots are no longer listed."""
        self._require_running("unload")
        _check_hook(hook)
        seq = self._command("unload", hook=S.HOOK_NAMES.index(hook))
        self._await_event("swapped", seq, f"unloading {hook}")
        for slot in range(S.NPROG_SLOTS):
            if slot != S.BASELINE_SLOT:
                self._slots.pop((hook, slot), None)
                self._code.pop((hook, slot), None)
        self._last_slot.pop(hook, None)
        self._activate(hook, S.BASELINE_SLOT)

    def set_quotas(self, quotas) -> int:
        """Validate and publish new quotas; returns the epoch the device adopted.
        An invalid file is refused whole and the plane keeps its snapshot."""
        self._require_running("set_quotas")
        return self.await_quotas(self.publish_quotas(quotas))

    def publish_quotas(self, quotas) -> QuotaPublication:
        """``set_quotas`` without the wait: validate, publish the snapshot, tell
        the control CTA, and return at once (for latency measurements, and for
        hosts that have other work to do meanwhile)."""
        self._require_running("publish_quotas")
        qs = load_quotas(quotas)
        if qs.names[:len(self.quotas.names)] != self.quotas.names[:len(qs.names)]:
            raise PlaneError(f"set_quotas: tenants keep their index while the plane runs; had "
                             f"{', '.join(self.quotas.names)}, got {', '.join(qs.names)}")
        epoch = self._snapshots.publish(qs, total_slots=self.total_slots)
        self.quotas = qs
        return QuotaPublication(epoch, self._command("quotas"), self._snapshots.written_ns)

    def await_quotas(self, publication: QuotaPublication) -> int:
        """Wait until the control CTA has adopted ``publication``; its epoch."""
        self._await_event("quotas", publication.seq, f"quota epoch {publication.epoch}")
        return publication.epoch

    # ----------------------------------------------------------- reading
    def counters(self) -> dict[str, dict[str, int | list[int]]]:
        """Per tenant: the abi counters record and the decision-latency histogram."""
        host = self.arrays.host
        out = {}
        for t, name in enumerate(self.quotas.names):
            base = L.REGION.counters + t * L.COUNTER_WORDS
            row = {f: int(host[base + i]) for f, i in S.COUNTER._asdict().items()}
            hb = L.REGION.histogram + t * L.HIST_BUCKETS
            row["latency_histogram"] = [int(x) for x in host[hb:hb + L.HIST_BUCKETS]]
            out[name] = row
        return out

    def gauges(self) -> dict[str, dict[str, int]]:
        """Per tenant, what is in flight now, from the device's own words:
        ``running`` CTAs in their body (gate mode) or logical blocks being
        run (persistent mode), ``queued`` admission requests waiting for a
        decision, ``tokens`` held, persistent ``workers`` on an SM."""
        ctl = self._backend.ctl_words()
        out = {}
        for t, name in enumerate(self.quotas.names):
            base = S.TENANT_BASE + t * S.TENANT_STRIDE
            out[name] = {k: int(ctl[base + getattr(S.TENANT, k)]) for k in S.GAUGES}
        return out

    def plane_stats(self) -> dict[str, int]:
        """The header words (named in host_bridge/layout.toml)."""
        return {w.name: int(self.arrays.host[w.index]) for w in L.HEADER_WORDS}

    def events(self) -> list[Event]:
        """Events since the last call (oldest first)."""
        if self._started:
            self._drain_events()
        out, self._events = self._events, []
        return out

    def health(self) -> Health:
        host = self.arrays.host
        age = self._backend.heartbeat_age_ns()
        return Health(self.backend_name, self.simulated, bool(host[L.HEADER.ready]), int(host[L.HEADER.smid]),
                      round(1 / self._backend.sms, 6), age,
                      self._started and self._backend.stalled(age), int(host[L.HEADER.loops]),
                      int(host[L.HEADER.ticks]), int(host[L.HEADER.loop_period_ns]), int(host[L.HEADER.epoch]),
                      self._event_ring.dropped, int(host[L.REGION.command_ring + L.RING.dropped]),
                      int(host[L.HEADER.torn_retries]), int(host[L.HEADER.bypassed]), self.telemetry)

    @property
    def running(self) -> bool:
        return self._started

    def high_priority_stream(self):
        """A new CUDA stream of the device's greatest priority that never
        waits for the default stream: where a latency-critical tenant's
        kernels go, so that their CTAs are dispatched before waiting
        best-effort ones (docs/isolation.md).  GPU backend only: on the
        simulated device, give ``priority=`` to ``plane.device.launch``."""
        self._require_running("high_priority_stream")
        if self.simulated:
            raise PlaneError("Plane.high_priority_stream: the simulated device has no CUDA streams; pass "
                             "priority=-1 to plane.device.launch(...)")
        from gbpfd.plane.backend_cuda import non_blocking_stream, stream_priority_range
        return non_blocking_stream(self._backend.cuda, stream_priority_range()[1])

    def announce_launch(self, tenant: int, ctas: int) -> None:
        """Tell the control CTA a kernel of ``tenant`` with ``ctas`` CTAs
        (logical blocks) is being launched: it counts towards the fair share
        from the next tick, and a latency-critical tenant's drain is sized
        by its latest launch's CTAs."""
        self._require_running("announce_launch")
        if isinstance(ctas, bool) or not isinstance(ctas, (int, np.integer)) or ctas <= 0:
            raise PlaneError(f"Plane.announce_launch: ctas must be a positive int (the launch's CTAs), got {ctas!r}")
        self.arrays.host[L.REGION.launch_ctas + tenant] = ctas
        self.arrays.host[L.REGION.demand + tenant] += 1

    def report_when_done(self, tenant: int, stream) -> None:
        """Have ``stream`` (a Numba or CuPy stream, or 0) report the launch just
        queued on it finished once it ends (``launch_finished``, from a host
        callback on that stream)."""
        self._backend.after(stream, lambda: self.launch_finished(tenant))

    def launch_finished(self, tenant: int) -> None:
        """Tell the control CTA a launch ``announce_launch`` counted is over:
        until then the tenant stays in the fair share however long its CTAs
        wait behind another tenant's.  Safe from a CUDA stream callback."""
        with self._finished_lock:
            self.arrays.host[L.REGION.finished + tenant] += 1

    def programs(self) -> dict[int, LoadedProgram]:
        """What each hook's slots hold now, by program id, with the active one marked."""
        if self._started:
            self._drain_events()
        return {p.id: dataclasses.replace(p, active=self._active.get(p.hook) == p.slot)
                for p in sorted(self._slots.values(), key=lambda p: (S.HOOK_NAMES.index(p.hook), p.slot))}

    def program_code(self, program_id: int) -> Program:
        """The program (as verified and staged) that ``programs()`` lists under ``program_id``."""
        for key, held in self._slots.items():
            if held.id == program_id:
                return self._code[key]
        raise PlaneError(f"no program {program_id} is loaded; Plane.programs() lists "
                         f"{', '.join(str(p.id) for p in self._slots.values()) or 'none'}")

    # ---------------------------------------------------------- plumbing
    def _hold(self, program: LoadedProgram, code: Program) -> None:
        self._slots[(program.hook, program.slot)] = dataclasses.replace(program, active=False)
        self._code[(program.hook, program.slot)] = code
        if program.active or program.slot == S.BASELINE_SLOT:
            self._activate(program.hook, program.slot)

    def _activate(self, hook: str, slot: int) -> None:
        if (hook, slot) in self._slots:
            self._active[hook] = slot
        else:
            self._active.pop(hook, None)

    def _drain_events(self) -> list[Event]:
        """Move the event ring's new events into the plane's list, noting fallbacks."""
        new = self._event_ring.drain()
        for e in new:
            if e.kind == "fallback":
                self._activate(S.HOOK_NAMES[e.hook], S.BASELINE_SLOT)
        self._events.extend(new)
        return new

    def _require_running(self, what: str) -> None:
        if not self._started:
            raise PlaneError(f"Plane.{what}: the plane is not running; call start() or use it in a with block")

    def _command(self, op: str, **fields) -> int:
        seq = self._commands.push(op, timeout_s=self.options.ack_timeout_s, **fields)
        if self._backend is not None:
            self._backend.notify_command()
        return seq

    def _wait(self, done, what: str) -> None:
        if not self._backend.wait(done, self.options.ack_timeout_s):
            raise PlaneError(f"timed out after {self.options.ack_timeout_s} s waiting for {what}")

    def _await_event(self, kind: str, seq: int, what: str) -> None:
        found = []

        def seen() -> bool:
            found.extend(e for e in self._drain_events() if e.kind == kind and e.args.get("seq") == seq)
            return bool(found)
        self._wait(seen, what)
