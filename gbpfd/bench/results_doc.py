"""Render ``docs/results.md`` from the committed records in ``bench/results``.

Run ``python -m gbpfd.bench.results_doc`` after adding a record; a test
fails while the committed page differs from what the records give.  The
latest full (not ``--quick``) GPU run of each GPU is shown against the
targets and the published figures of other systems; simulated runs are
shown apart, labelled, and never counted against a target.
"""
from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

from gbpfd.bench.machine import REPO
from gbpfd.bench.published import PUBLISHED

RESULTS = REPO / "bench" / "results"
PAGE = REPO / "docs" / "results.md"
MET = {True: "met", False: "**not met**", None: "not measured"}


def load_records(results: Path) -> tuple[list[dict], list[dict]]:
    """(GPU records, simulated records), full runs only, oldest first; each
    carries its path relative to ``results`` as ``_path``."""
    gpu, sim = [], []
    for path in sorted(results.glob("*.json")) + sorted((results / "sim").glob("*.json")):
        record = json.loads(path.read_text())
        if record.get("quick"):
            continue
        record["_path"] = path.relative_to(results).as_posix()
        (sim if record["simulated"] else gpu).append(record)
    key = lambda r: r["date"]  # noqa: E731
    return sorted(gpu, key=key), sorted(sim, key=key)


def latest_per_gpu(records: list[dict]) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for r in records:
        latest[r["machine"]["gpu"]] = r
    return latest


def _value(f: dict | None) -> str:
    if not f or f["value"] is None:
        return "-"
    v = f["value"]
    return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"


@functools.cache
def _declared_targets() -> dict[tuple[str, str], object]:
    """(case, figure) -> the Target the shipped case declares now."""
    from gbpfd.bench.suite import discover
    return {(case.name, t.figure): t for case in discover(REPO / "bench").values() for t in case.targets}


def _target_text(case: str, figure: str, t: dict) -> str:
    """The target and the requirement it comes from.  Older records name
    their source by a tracker number no reader can see: the same bound as
    the case declares it now takes the case's words."""
    now = _declared_targets().get((case, figure))
    source = now.source if now is not None and (now.op, now.bound) == (t["op"], t["bound"]) else t["source"]
    return f"{t['text']} ({source})"


def _figure_table(record: dict, simulated: bool) -> list[str]:
    lines = ["| case | figure | value | unit | samples | target | |", "|---|---|---:|---|---:|---|---|"]
    for cname, case in record["cases"].items():
        if case["status"] != "ok":
            lines.append(f"| {cname} | ({case['status']}: {case.get('error') or case.get('reason')}) | | | | | |")
            continue
        for fname, f in case["figures"].items():
            t = case["targets"].get(fname)
            target = _target_text(cname, fname, t) if t else ""
            verdict = "" if not t else ("simulated: not counted" if case["simulated"] else MET[t["met"]])
            where = f" [{case['backend']}]" if case["backend"] != record["backend"] or simulated else ""
            lines.append(f"| {cname}{where} | `{fname}` | {_value(f)} | {f['unit']} | {f['samples']} | "
                         f"{target} | {verdict} |")
    return lines


def _plots(record: dict, results: Path, page_dir: Path) -> list[str]:
    stem = Path(record["_path"]).with_suffix("")
    found = sorted((results / stem.parent).glob(f"{stem.name}-*.png"))
    return [f"![{p.stem}]({Path(os.path.relpath(p, page_dir)).as_posix()})" for p in found]


def _provenance(record: dict) -> str:
    m = record["machine"]
    where = (f"{m['gpu']} ({m.get('sms')} SMs, driver {m.get('driver')}, CUDA driver API {m.get('cuda_driver_api')})"
             if m.get("gpu") else f"the simulated device on {m['host_cpu']} ({m['host_cores']} cores)")
    modified = " (tree modified)" if record.get("tree_modified") else ""
    return (f"{where}; {record['date']}; commit `{record['commit'][:12]}`{modified}; "
            f"`{record['command']}`; record `bench/results/{record['_path']}`")


def _published_table(gpu_latest: dict[str, dict]) -> list[str]:
    names = list(gpu_latest)
    lines = ["| system | quantity | their figure | ours | " + " | ".join(names or ["ours (GPU)"]) + " | comparable because |",
             "|---|---|---|---|" + "---:|" * max(len(names), 1) + "---|"]
    for p in PUBLISHED:
        if p.ours is None:
            lines.append(f"| {p.system} | {p.quantity} | {p.figure} | - | " + " | ".join(["n/a"] * max(len(names), 1))
                         + f" | {p.why} |")
            continue
        case, fname = p.ours
        ours = [_value(r["cases"].get(case, {}).get("figures", {}).get(fname)) for r in gpu_latest.values()]
        unit = next((r["cases"][case]["figures"][fname]["unit"] for r in gpu_latest.values()
                     if fname in r["cases"].get(case, {}).get("figures", {})), "")
        cells = " | ".join(f"{v} {unit}".strip() for v in ours) if ours else "no GPU record yet"
        lines.append(f"| {p.system} | {p.quantity} | {p.figure} | `{case}.{fname}` | {cells} | {p.why} |")
    return lines


def render(results: Path = RESULTS, page_dir: Path = PAGE.parent) -> str:
    gpu, sim = load_records(results)
    gpu_latest = latest_per_gpu(gpu)
    out = ["# Results", "",
           "Generated by `python -m gbpfd.bench.results_doc` from the records in `bench/results/` "
           "(one JSON file per `gbpfd bench` run); nothing on this page is typed by hand. "
           "How to make a GPU record: [bench/results/README.md](../bench/results/README.md).", ""]
    out += ["## Latest GPU runs", ""]
    if not gpu_latest:
        out += ["No GPU record yet. The targets are checked only by a GPU run; the simulated figures "
                "further down are not counted against them.", ""]
    for name, record in gpu_latest.items():
        out += [f"### {name}", "", _provenance(record), ""] + _figure_table(record, False) + [""]
        out += _plots(record, results, page_dir) + [""]
    out += ["## Beside published figures of other systems", "",
            "Other papers' figures on other hardware (the design brief, section 5), beside the figure of ours "
            "that measures the same kind of quantity, from the latest GPU run of each GPU.", ""]
    out += _published_table(gpu_latest) + [""]
    out += ["## Simulated runs (not GPU figures)", ""]
    if not sim:
        out += ["No simulated record.", ""]
    else:
        latest = sim[-1]
        out += ["SIMULATED: gbpfd's CPU model of a GPU (`gbpfd/sim`, [simulator.md](simulator.md)) running the "
                "real device code. Its latencies and sharing come from the model and the calibration it names, "
                "so these figures show the plane's behaviour in shape, not GPU performance; host figures "
                "(verify, CPU VMs, event ring) are real measurements of the machine named.", "",
                _provenance(latest), ""]
        out += _figure_table(latest, True) + [""] + _plots(latest, results, page_dir) + [""]
    out += ["## Every record", "", "| record | date | commit | backend | GPU |", "|---|---|---|---|---|"]
    for r in gpu + sim:
        out.append(f"| `{r['_path']}` | {r['date']} | `{r['commit'][:12]}` | {r['backend']} | "
                   f"{r['machine'].get('gpu') or 'simulated'} |")
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    PAGE.write_text(render())
    print(f"wrote {PAGE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
