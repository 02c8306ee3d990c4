"""``gbpfd serve``: one plane, kept running and served on a control socket,
with one stats line a second, the way sched_ext's loaders run.

It ends on SIGINT or SIGTERM (it stops the plane and prints why, exit 0),
or on its own when the control CTA stalls (it prints why, exit 1).  On the
simulated device the daemon advances device time with the wall clock.
"""
from __future__ import annotations

import os
import signal
import sys
import time
import traceback

from gbpfd.bridge.events import event_to_json
from gbpfd.device import state as S
from gbpfd.service import protocol as P
from gbpfd.service.event_log import EventLog
from gbpfd.service.operations import Operations
from gbpfd.service.server import Server

ROUND_S = 0.005
MAX_SIM_STEP_NS = 2_000_000     # device time one round may advance (the model may run slower than real time)


class Daemon:
    def __init__(self, plane, socket_path: str, *, stats_every_s: float = 1.0, idle_s: float = 10.0,
                 out=None):
        self.plane, self.socket_path, self.stats_every_s, self.idle_s = plane, socket_path, stats_every_s, idle_s
        self.out = out or sys.stdout
        self.events = EventLog()
        self.ops = Operations(plane, owner_uid=os.getuid(), log=self.say, events=self.events)
        self.signal: int | None = None
        self._last_counters: dict = {}
        self._last_device_ns = 0

    def say(self, line: str) -> None:
        print(f"gbpfd serve: {line}", file=self.out, flush=True)

    # ------------------------------------------------------------- serve
    def serve(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        try:
            server = Server(self.socket_path, self._handle, self.ops.release,
                            group=self.plane.quotas.access.socket_gid, idle_s=self.idle_s, log=self.say)
        except BaseException:
            self.plane.stop()   # nothing serves it: leave nothing resident
            raise
        self.say(f"serving {self.socket_path} (protocol {P.VERSION}); backend {self.plane.backend_name} "
                 f"({self.plane.backend_reason}); tenants {', '.join(self.plane.quotas.names)}")
        try:
            stalled = self._loop(server)
        finally:
            server.close()
        reason = self.plane.stop()
        if stalled:
            self.say(f"exit: the plane stopped on its own: {stalled}; plane: {reason}")
            return 1
        self.say(f"exit: {signal.Signals(self.signal).name}; plane: {reason}")
        return 0

    def _on_signal(self, signum, frame) -> None:
        self.signal = signum

    def _loop(self, server: Server) -> str | None:
        wall = time.monotonic()
        next_stats = wall + self.stats_every_s
        while self.signal is None:
            server.poll(ROUND_S)
            now = time.monotonic()
            if self.plane.simulated:
                d = self.plane.device
                d.run_until(d.now + min(int((now - wall) * 1e9), MAX_SIM_STEP_NS))
            wall = now
            self._collect_events()
            health = self.plane.health()
            if health.stalled:
                return f"control CTA stalled (heartbeat age {health.heartbeat_age_ns} ns)"
            if now >= next_stats:
                self.say(self.stats_line(health))
                next_stats = now + self.stats_every_s
        return None

    def _handle(self, conn, body: bytes) -> dict:
        mid = 0
        try:
            mid, op, args = P.check_request(P.decode(body))
            return P.reply(mid, self.ops.run(conn, op, args))
        except P.ServiceError as err:
            return P.reply(mid, error=err)
        except Exception as err:  # a bug must cost one request, never the plane
            self.say(f"internal error serving {conn.peer}: {type(err).__name__}: {err}\n"
                     + traceback.format_exc().rstrip())
            return P.reply(mid, error=P.ServiceError(f"internal error: {type(err).__name__}: {err}", "internal"))

    def _collect_events(self) -> None:
        names = self.plane.quotas.names
        for e in self.plane.events():
            record = event_to_json(e, hook_names=S.HOOK_NAMES, tenant_names=names)
            self.events.add(record)
            if e.kind == "fallback":
                self.say(f"policy fault: {record['hook']} fell back to the baseline (program "
                         f"{e.args.get('from_program')} -> {e.program})")

    # ------------------------------------------------------------- stats
    def stats_line(self, health) -> str:
        """Per tenant: admitted/s, deferred/s, bypassed, tokens, DMA bytes/s (per second of device time:
        on the simulated device that is the model's clock); then the plane's health."""
        counters = self.plane.counters()
        device_ns = self.plane._backend.device_now()
        interval_s = max(device_ns - self._last_device_ns, 1) / 1e9
        self._last_device_ns = device_ns
        parts = []
        for name, c in counters.items():
            last = self._last_counters.get(name, c)
            rate = {k: (c[k] - last[k]) / interval_s for k in ("admitted", "deferred", "dma_bytes")}
            parts.append(f"{name}: adm/s={rate['admitted']:.0f} def/s={rate['deferred']:.0f} "
                         f"byp={c['bypassed']} tok={c['tokens_granted']} dma/s={rate['dma_bytes']:.3g}")
        self._last_counters = counters
        label = "SIMULATED " if self.plane.simulated else ""
        return (f"{label}loop={health.loop_period_ns}ns hb={health.heartbeat_age_ns}ns "
                f"drops={health.event_drops}/{health.command_drops} "
                f"faults={sum(c['faults'] for c in counters.values())} | " + " | ".join(parts))
