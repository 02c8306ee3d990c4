"""The demo's report: one dict (the ``--json`` object) and its text form."""
from __future__ import annotations

import numpy as np


def percentiles_us(samples_ns) -> tuple[float | None, float | None]:
    if not len(samples_ns):
        return None, None
    p50, p99 = np.percentile(np.asarray(samples_ns, dtype=np.float64), [50, 99])
    return round(p50 / 1000, 3), round(p99 / 1000, 3)


def class_shares(tenants: list[dict]) -> None:
    """``cta_share``: a tenant's admissions over its class's (the weights
    govern shares among best-effort tenants); ``target_share`` for those."""
    for klass in {t["class"] for t in tenants}:
        group = [t for t in tenants if t["class"] == klass]
        admitted = sum(t["admitted"] for t in group)
        weights = sum(t["weight"] for t in group)
        for t in group:
            t["cta_share"] = round(t["admitted"] / admitted, 4) if admitted else 0.0
            if klass == "best-effort":
                t["target_share"] = round(t["weight"] / weights, 4)


def _us(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_report(r: dict) -> str:
    label = " (SIMULATED: modelled device, not GPU figures)" if r["simulated"] else ""
    reason = f": {r['backend_reason']}" if r.get("backend_reason") else ""
    lines = [f"gbpfd demo: backend {r['backend']}{label}{reason}",
             f"device: {r['device']}; {r['seconds']} s of device time; policy swap at {r['swap']['at_s']} s",
             "",
             f"{'tenant':<10} {'class':<17} {'weight':>6} {'admitted':>9} {'share':>7} {'target':>7} "
             f"{'p50 us':>9} {'p99 us':>9}"]
    for t in r["tenants"]:
        target = f"{t['target_share']:.3f}" if "target_share" in t else "-"
        lines.append(f"{t['name']:<10} {t['class']:<17} {t['weight']:>6} {t['admitted']:>9} {t['cta_share']:>7.3f} "
                     f"{target:>7} {_us(t.get('p50_us')):>9} {_us(t.get('p99_us')):>9}")
    c = r["copy"]
    lines += ["",
              f"paced copy ({c['tenant']}): target {c['target_bytes_per_s'] / 1e9:.3f} GB/s, achieved "
              f"{c['achieved_bytes_per_s'] / 1e9:.3f} GB/s ({c['bytes']} bytes)",
              f"live swap ({r['swap']['program']}): admissions lost {r['swap']['lost']}, doubled "
              f"{r['swap']['doubled']}",
              f"reaction time (request posted -> decision seen): p50 {_us(r['reaction']['p50_us'])} us, p99 "
              f"{_us(r['reaction']['p99_us'])} us over {r['reaction']['samples']} requests",
              f"plane: {r['plane']['ticks']} ticks, loop period {r['plane']['loop_period_ns']} ns, "
              f"{r['plane']['bypassed']} bypassed waits, {r['plane']['faults']} policy faults"]
    if r["simulated"]:
        lines.append("all figures above are SIMULATED (gbpfd's CPU model of a GPU, the real device code "
                     "compiled with numba.njit); GPU figures come from a GPU run")
    return "\n".join(lines)
