"""The plane's reaction figures on the simulated device: every figure is SIMULATED.

The real device code runs (``gbpfd.device.build.for_cpu``) in the
simulated device's virtual time, whose latencies are modelled
(``gbpfd.sim.model.SimGPU``), not measured, so these figures say how the
plane behaves in shape; GPU figures come from ``bench_reaction.py`` on a
GPU.  Measured:

* reaction time: request posted -> decision seen by the requester
  (``SimDevice.stats.reaction_ns``), with every request on the policy path
  (a tick program leaves no CTA tokens) and a 16-instruction cta_admit
  policy that always admits;
* the control-loop period (the header's ``loop_period_ns``) while idle;
* quota publish -> the first decision made with the new snapshot, under a
  steady stream of requests: the cta_admit policy admits while the tenant's
  weight is odd, and each trial publishes a weight of the other parity;
* the demo's CTA shares and paced-copy rate against their targets.

Prints a table and one JSON record.

    python bench/bench_plane_sim.py [--requests N] [--trials N] [--demo-seconds S] [--json-out PATH]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
from pathlib import Path

import numpy as np

from gbpfd.device import state as S
from gbpfd.isa.asm import assemble
from gbpfd.plane.options import PlaneOptions
from gbpfd.plane.plane import Plane
from gbpfd.quotas.schema import FIELDS

LABEL = "SIMULATED (gbpfd's CPU model of a GPU running the real device code; not GPU figures)"
REPO = Path(__file__).resolve().parent.parent

# The policies of both reaction benches (this one and bench_reaction.py).
REACTION_ADMIT_ASM = """\
# Reads a few ctx fields, always admits: 16 instructions on every path.
.name reaction_admit
.hook cta_admit
    ldxdw %r2, [%r1+0]          # ctx.now_ns
    ldxdw %r3, [%r1+8]          # ctx.wait_ns
    ldxw %r4, [%r1+16]          # ctx.tenant
    ldxw %r5, [%r1+24]          # ctx.running_ctas
    ldxw %r6, [%r1+28]          # ctx.queued_ctas
    ldxw %r7, [%r1+36]          # ctx.total_running
    ldxw %r8, [%r1+40]          # ctx.total_slots
    add %r5, %r6
    add %r7, %r5
    sub %r8, %r7
    xor %r2, %r3
    rsh %r2, 10
    add %r4, %r2
    add %r4, %r8
    mov %r0, 1
    exit
"""
NO_TOKENS_TICK_ASM = """\
# Leaves every tenant without CTA tokens: each CTA asks cta_admit.
.name no_tokens
.hook tick
    stw [%r1+32], 0             # ctx.cta_tokens
    mov %r0, 0
    exit
"""
ODD_WEIGHT_ADMIT_ASM = """\
# Admits while the tenant's quota weight is odd: a decision shows the snapshot it was made with.
.name admit_odd_weight
.hook cta_admit
    ldxw %r1, [%r1+16]          # ctx.tenant
    mov %r2, 0                  # quota field 0: weight
    call quota_read
    and %r0, 1
    exit
"""
TENANT = "train"
#: gaps between the quota trials' requests: short, so a new snapshot is seen soon after adoption
TRIAL_GAP_NS = 500
#: virtual time a trial may take before it is given up
TRIAL_LIMIT_NS = 10_000_000
IDLE_NS = 1_000_000


def program(text: str, name: str):
    return assemble(text, f"<{name}>")


def percentile(samples, q: float) -> float | None:
    return float(np.percentile(np.asarray(samples, np.float64), q)) if len(samples) else None


def figure(value, unit: str, samples: int) -> dict:
    return {"value": None if value is None else round(float(value), 3), "unit": unit, "samples": int(samples)}


def provenance() -> dict:
    """Date and git commit of a bench record (``GBPFD_COMMIT`` names the
    commit where the tree was copied without its git folder)."""
    commit = os.environ.get("GBPFD_COMMIT")
    if not commit:
        try:
            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                    timeout=10).stdout.strip() or "unknown"
        except (OSError, subprocess.SubprocessError):
            commit = "unknown"
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "commit": commit}


class Requester:
    """One CTA's thread 0 asking for admission again and again, in virtual
    time: the GPU bench's requester kernel.  ``gaps_ns``: the idle time
    before each request (None: ``gap_ns`` forever, until ``stop``)."""

    def __init__(self, device, tenant: int, gaps_ns=None, gap_ns: int = 0):
        self.d, self.tenant = device, tenant
        self.gaps = None if gaps_ns is None else [int(g) for g in gaps_ns]
        self.gap_ns = gap_ns
        self.sent = 0
        self.no_slot = 0
        self.stopped = False
        self.answers: list[tuple[int, int]] = []   # (seen_ns, decision)

    @property
    def done(self) -> bool:
        return self.stopped or (self.gaps is not None and len(self.answers) + self.no_slot >= len(self.gaps))

    def start(self) -> None:
        self._next()

    def stop(self) -> None:
        self.stopped = True

    def _next(self) -> None:
        if self.stopped or (self.gaps is not None and self.sent >= len(self.gaps)):
            return
        gap = self.gap_ns if self.gaps is None else self.gaps[self.sent]
        self.sent += 1
        self.d.at(self.d.now + gap, self._post)

    def _post(self) -> None:
        if not self.d.post(self.tenant, self._answered):
            self.no_slot += 1
            self._next()

    def _answered(self, decision: int, seen_ns: int) -> None:
        self.answers.append((seen_ns, decision))
        if decision == S.ADMIT:  # the control CTA counted it running; it leaves at once
            self.d.dev.cta_exit(self.d.a.ctl, self.tenant, S.ENTER_POLICY)
        self._next()


def measure_reaction(plane: Plane, requests: int, max_gap_ns: int, seed: int) -> dict:
    d = plane.device
    plane.load(program(NO_TOKENS_TICK_ASM, "no_tokens"), "tick")
    plane.load(program(REACTION_ADMIT_ASM, "reaction_admit"), "cta_admit")
    d.run_until(d.now + 2 * plane.options.periods.tick_ns)  # a tick takes the tokens away
    first = len(d.stats.reaction_ns)
    gaps = np.random.default_rng(seed).integers(0, max_gap_ns + 1, requests)
    r = Requester(d, plane.quotas.index(TENANT), gaps_ns=gaps)
    r.start()
    wait_bound_ns = int(plane.options.wait_bound_us * 1000)
    d.run_while(lambda: not r.done, int(gaps.sum()) + requests * wait_bound_ns + TRIAL_LIMIT_NS)
    samples = d.stats.reaction_ns[first:]
    admitted = sum(1 for _, decision in r.answers if decision == S.ADMIT)
    return {"samples": samples, "admitted": admitted, "answered": len(r.answers), "no_slot": r.no_slot}


def measure_loop_period(plane: Plane) -> int:
    d = plane.device
    d.run_until(d.now + IDLE_NS)
    return plane.health().loop_period_ns


def quotas_with_weight(plane: Plane, tenant: str, weight: int) -> dict:
    tenants = {}
    for t in plane.quotas.tenants:
        fields = {f.name: t.field_value(f.name) for f in FIELDS}
        if t.name == tenant:
            fields["weight"] = weight
        tenants[t.name] = fields
    return {"tenants": tenants}


def measure_quota_to_decision(plane: Plane, trials: int) -> list[int]:
    """Per trial: virtual ns from the host's publish to the requester seeing
    the first decision that reflects the new weight."""
    d = plane.device
    plane.load(program(ODD_WEIGHT_ADMIT_ASM, "admit_odd_weight"), "cta_admit")
    r = Requester(d, plane.quotas.index(TENANT), gap_ns=TRIAL_GAP_NS)
    r.start()
    weight = plane.quotas.tenants[plane.quotas.index(TENANT)].weight
    latencies = []
    for _ in range(trials):
        weight = weight + 1 if weight < 10_000 else 1
        expected = S.ADMIT if weight % 2 else S.DEFER
        published = d.now
        seen_before = len(r.answers)
        plane.set_quotas(quotas_with_weight(plane, TENANT, weight))

        def new_decisions():
            return [when for when, decision in r.answers[seen_before:] if decision == expected]
        d.run_while(lambda: not new_decisions(), TRIAL_LIMIT_NS)
        seen = new_decisions()
        if seen:
            latencies.append(seen[0] - published)
    r.stop()
    return latencies


def measure_demo(seconds: float) -> dict:
    from gbpfd.demo.run import DemoConfig, run_demo
    report = run_demo(DemoConfig(seconds=seconds, backend="sim"))
    shares = [{"tenant": t["name"], "share": t["cta_share"], "target": t["target_share"],
               "error": round(abs(t["cta_share"] - t["target_share"]), 4)}
              for t in report["tenants"] if "target_share" in t]
    copy = report["copy"]
    ratio = copy["achieved_bytes_per_s"] / copy["target_bytes_per_s"] if copy["target_bytes_per_s"] else None
    return {"seconds": seconds, "shares": shares, "copy": copy, "copy_ratio": ratio,
            "admitted": sum(t["admitted"] for t in report["tenants"]), "swap": report["swap"]}


def run(requests: int = 20_000, max_gap_ns: int = 4_000, trials: int = 20, demo_seconds: float = 0.2,
        seed: int = 1) -> dict:
    with Plane("sim", options=PlaneOptions()) as plane:
        device = plane._backend.describe()
        reaction = measure_reaction(plane, requests, max_gap_ns, seed)
        loop_period = measure_loop_period(plane)
        quota = measure_quota_to_decision(plane, trials)
    demo = measure_demo(demo_seconds)
    n = len(reaction["samples"])
    figures = {
        "reaction_p50": figure(percentile(reaction["samples"], 50), "ns", n),
        "reaction_p99": figure(percentile(reaction["samples"], 99), "ns", n),
        "loop_period": figure(loop_period, "ns", 1),
        "quota_to_decision_p50": figure(percentile(quota, 50), "ns", len(quota)),
        "quota_to_decision_max": figure(max(quota) if quota else None, "ns", len(quota)),
        "demo_share_error_max": figure(max(s["error"] for s in demo["shares"]) if demo["shares"] else None,
                                       "fraction", demo["admitted"]),
        "demo_copy_rate_ratio": figure(demo["copy_ratio"], "achieved/target", 1),
    }
    return {"bench": "plane_sim", "simulated": True, "label": LABEL, "device": device, **provenance(),
            "config": {"requests": requests, "max_gap_ns": max_gap_ns, "trials": trials,
                       "demo_seconds": demo_seconds, "seed": seed, "tenant": TENANT},
            "figures": figures,
            "checks": {"requests_answered": reaction["answered"], "requests_admitted": reaction["admitted"],
                       "requests_without_slot": reaction["no_slot"], "quota_trials_done": len(quota),
                       "demo_swap_lost": demo["swap"]["lost"], "demo_swap_doubled": demo["swap"]["doubled"]},
            "demo": demo}


def format_table(record: dict) -> str:
    lines = [f"plane on the simulated device: {record['label']}", f"device: {record['device']}", "",
             f"{'figure':<26} {'value':>14} {'unit':<16} {'samples':>8}"]
    for name, f in record["figures"].items():
        value = "-" if f["value"] is None else f"{f['value']:.3f}"
        lines.append(f"{name:<26} {value:>14} {f['unit']:<16} {f['samples']:>8}")
    lines.append("")
    for s in record["demo"]["shares"]:
        lines.append(f"demo share {s['tenant']}: {s['share']:.4f} (target {s['target']:.4f})")
    lines.append("every figure above is SIMULATED")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000, help="reaction-time requests")
    parser.add_argument("--max-gap-us", type=float, default=4.0, help="most idle time before a request, us")
    parser.add_argument("--trials", type=int, default=20, help="quota publish trials")
    parser.add_argument("--demo-seconds", type=float, default=0.2, help="simulated seconds of the demo workload")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json-out", metavar="PATH", help="also write the JSON record to PATH")
    opts = parser.parse_args(argv)
    record = run(opts.requests, int(opts.max_gap_us * 1000), opts.trials, opts.demo_seconds, opts.seed)
    print(format_table(record))
    print(json.dumps(record))
    if opts.json_out:
        with open(opts.json_out, "w") as fh:
            json.dump(record, fh)
    return record


if __name__ == "__main__":
    main()
