"""``gbpfd top``: per-tenant counters and plane health, one frame per refresh
(the way sched_ext's loaders print their stats every second)."""
from __future__ import annotations

from gbpfd.isa.abi import RECORDS
from gbpfd.plane.plane import Plane

#: gauges (in flight now) and counters shown as columns; every gauge and counters-record field goes into --json
COLUMNS = ("running", "queued", "admitted", "deferred", "bypassed", "tokens_granted", "dma_bytes", "throttled_ns",
           "faults")


def hist_median_bound_ns(hist: list[int]) -> int | None:
    """Upper bound of the bucket holding the median decision wait (None
    when there are no samples or it lies in the open-ended last bucket)."""
    total = sum(hist)
    if not total:
        return None
    seen = 0
    for i, n in enumerate(hist[:-1]):
        seen += n
        if 2 * seen >= total:
            return 1 << (i + 7)
    return None  # the median is in the last bucket, which has no upper bound


def frame(plane: Plane) -> dict:
    h = plane.health()
    counters = plane.counters()
    gauges = plane.gauges()
    return {
        "backend": plane.backend_name,
        "simulated": plane.simulated,
        "device_time_ns": plane._backend.device_now(),
        "health": h.__dict__,
        "tenants": [{"name": name, **gauges[name], **{f.name: c[f.name] for f in RECORDS["counters"].fields},
                     "latency_histogram": c["latency_histogram"],
                     "decision_wait_median_below_ns": hist_median_bound_ns(c["latency_histogram"])}
                    for name, c in counters.items()],
        "events": [str(e.kind) for e in plane.events()],
    }


def format_frame(f: dict) -> str:
    h = f["health"]
    label = " SIMULATED" if f["simulated"] else ""
    state = "STALLED" if h["stalled"] else ("ready" if h["ready"] else "starting")
    lines = [f"gbpfd top [{f['backend']}{label}] t={f['device_time_ns'] / 1e9:.3f}s  control CTA on SM {h['smid']}: "
             f"{state}, heartbeat age {h['heartbeat_age_ns']} ns, loop {h['loop_period_ns']} ns, "
             f"ticks {h['ticks']}, epoch {h['epoch']}, drops {h['event_drops']}/{h['command_drops']}",
             f"{'tenant':<10} " + " ".join(f"{c:>14}" for c in COLUMNS) + f" {'wait p50 <':>11}"]
    for t in f["tenants"]:
        med = t["decision_wait_median_below_ns"]
        lines.append(f"{t['name']:<10} " + " ".join(f"{t[c]:>14}" for c in COLUMNS)
                     + f" {('-' if med is None else f'{med} ns'):>11}")
    if f["events"]:
        lines.append("events: " + ", ".join(f["events"]))
    return "\n".join(lines)
