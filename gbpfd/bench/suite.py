"""``gbpfd bench``: run the cases of ``bench/`` in one process and keep one
JSON record of the run (plus its plots).

A GPU run's record goes to ``--out`` (default: the user's results folder,
``options.default_results_dir``); a simulated run's goes to ``<out>/sim``,
apart, and says SIMULATED in every case.  A case that fails is recorded with its error and the suite goes on:
one broken measurement must not cost the others on a 10-minute GPU call.
"""
from __future__ import annotations

import argparse
import faulthandler
import importlib.util
import json
import os
import re
import sys
import time
import traceback
from pathlib import Path

from gbpfd.bench.case import Case, CaseRun
from gbpfd.bench.machine import REPO, machine, provenance
from gbpfd.bench.options import add_arguments, default_results_dir
from gbpfd.bench.progress import Progress
from gbpfd.errors import InputError
from gbpfd.plane.gpu_probe import load_modules_eagerly

load_modules_eagerly()  # before any case can start the driver

SCHEMA = 1
SIM_LABEL = "SIMULATED: gbpfd's CPU model of a GPU running the real device code; not GPU figures"
HOST_LABEL = "host CPU figure (no device involved)"


def bench_dir() -> Path:
    """The folder of case modules: ``GBPFD_BENCH_DIR``, else the checkout's ``bench/``."""
    where = Path(os.environ.get("GBPFD_BENCH_DIR") or REPO / "bench")
    if not where.is_dir():
        raise FileNotFoundError(f"gbpfd bench runs the cases in a checkout's bench/ folder; {where} is not one "
                                "(set GBPFD_BENCH_DIR to it)")
    return where


def _import(path: Path):
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))  # a case may import its sibling GPU-kernel modules
    name = f"gbpfd_bench_case_{path.stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def discover(where: Path | None = None) -> dict[str, Case]:
    """Every case in ``bench/bench_*.py``, by name, in the order they run (``ORDER``, then name)."""
    cases = {}
    for path in sorted((where or bench_dir()).glob("bench_*.py")):
        case = Case.from_module(_import(path))
        if case.name in cases:
            raise ValueError(f"{path}: case name {case.name!r} is taken by {cases[case.name].module.__file__}")
        cases[case.name] = case
    return {c.name: c for c in sorted(cases.values(), key=lambda c: (c.order, c.name))}


def resolve_backend(backend: str) -> tuple[str, str]:
    """The backend the suite runs on and why; asking for cuda without a GPU is refused."""
    from gbpfd.plane.plane import choose_backend
    return choose_backend(backend)


def _parse_sets(items: list[str], cases: dict[str, Case]) -> dict[str, dict]:
    overrides: dict[str, dict] = {}
    for item in items:
        m = re.fullmatch(r"(\w+)\.(\w+)=(.+)", item)
        if not m:
            raise InputError(f"--set {item!r}: expected CASE.PARAM=VALUE")
        name, key, value = m.groups()
        if name not in cases:
            raise InputError(f"--set {item!r}: no case {name!r} (cases: {', '.join(cases)})")
        overrides.setdefault(name, {})[key] = value
    return overrides


def _label(backend: str) -> str:
    return {"sim": SIM_LABEL, "host": HOST_LABEL}.get(backend, "GPU figure")


def run_case(case: Case, backend: str, params: dict, progress: Progress | None) -> dict:
    where = case.backend_for(backend)
    entry = {"title": case.title, "backend": where, "simulated": where == "sim", "label": _label(where),
             "params": params}
    if where is None:
        entry.update(status="skipped", reason=f"no {backend} form (it measures {', '.join(case.backends)})")
        return entry
    run = CaseRun(case.name, where, params, progress)
    start = time.monotonic()
    try:
        case.module.measure(run)
        entry["status"] = "ok"
    except Exception as err:  # recorded, and the other cases still run
        entry.update(status="error", error=f"{type(err).__name__}: {err}",
                     traceback=traceback.format_exc(limit=8))
    entry["seconds"] = round(time.monotonic() - start, 2)
    entry.update(figures=run.figures, checks=run.checks, cdfs=run.cdfs, bars=run.bars, notes=run.notes,
                 targets={t.figure: {"text": t.text, "source": t.source, "op": t.op, "bound": t.bound,
                                     "met": t.met(run.figures.get(t.figure, {}).get("value"))}
                          for t in case.targets})
    return entry


def run_suite(names: list[str], *, backend: str = "auto", quick: bool = False, sets: list[str] = (),
              progress: bool = True, command: str = "gbpfd bench", case_timeout_s: float = 0,
              after_case=None) -> dict:
    """Run the cases; ``after_case(record)`` is called as each starts and
    ends (``gbpfd bench`` writes the record then), and past
    ``case_timeout_s`` (0: no limit) a case ends the process with every
    thread's traceback: a hang inside a driver call cannot be interrupted,
    and the record written so far says which case it was."""
    cases = discover()
    unknown = [n for n in names if n not in cases]
    if unknown:
        raise ValueError(f"no bench case {', '.join(map(repr, unknown))}; the cases are {', '.join(cases)}")
    chosen = [cases[n] for n in (names or cases)]
    overrides = _parse_sets(list(sets), cases)
    sized = {c.name: c.sized(quick, overrides.get(c.name, {})) for c in chosen}  # refuse bad sizes up front
    where, reason = resolve_backend(backend)
    bar = Progress(len(chosen)) if progress else None
    record = {"schema": SCHEMA, "command": command, "backend": where, "backend_reason": reason,
              "simulated": where == "sim", "quick": quick, **provenance(), "machine": machine(where), "cases": {}}
    started = time.monotonic()
    for case in chosen:
        record["cases"][case.name] = {"title": case.title, "status": "running",
                                      "reason": "the run ended while this case ran: see the run's log"}
        if after_case:
            after_case(record)
        if case_timeout_s:
            faulthandler.dump_traceback_later(case_timeout_s, exit=True, file=sys.__stderr__)
        try:
            entry = run_case(case, where, sized[case.name], bar)
        finally:
            faulthandler.cancel_dump_traceback_later()
        record["cases"][case.name] = entry
        if after_case:
            after_case(record)
        if bar:
            bar.case_done(case.name, entry["status"], entry.get("seconds", 0.0))
    record["seconds"] = round(time.monotonic() - started, 2)
    return record


def record_stem(record: dict) -> str:
    date = record["date"].replace(":", "").replace("-", "")[:13]  # 20261122T1530
    gpu = record["machine"].get("gpu") or "sim"
    slug = re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-")
    return f"{date}Z-{slug}-bench{'-quick' if record['quick'] else ''}"


def write_record(record: dict, out: Path) -> Path:
    folder = out / "sim" if record["simulated"] else out
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{record_stem(record)}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def format_table(record: dict) -> str:
    m = record["machine"]
    where = (f"{m['gpu']} ({m['sms']} SMs, driver {m['driver']}, CUDA driver API {m['cuda_driver_api']})"
             if m.get("gpu") else f"the simulated device on {m['host_cpu']}")
    lines = [f"gbpfd bench on {where}; backend {record['backend']} ({record['backend_reason']})",
             f"commit {record['commit'][:12]}, {record['date']}, {record['seconds']:.1f} s", ""]
    for name, case in record["cases"].items():
        lines.append(f"== {name}: {case['title']} [{case['label']}]")
        if case["status"] != "ok":
            lines.append(f"   {case['status'].upper()}: {case.get('error') or case.get('reason')}")
        for fname, f in case.get("figures", {}).items():
            value = "-" if f["value"] is None else f"{f['value']:.4g}"
            t = case["targets"].get(fname)
            mark = "" if not t else (f"  target {t['text']}: " + {True: "met", False: "NOT met", None: "-"}[t["met"]]
                                     + (" (simulated)" if case["simulated"] else ""))
            lines.append(f"   {fname:<34} {value:>12} {f['unit']:<10} n={f['samples']:<8}{mark}")
        lines += [f"   note: {n}" for n in case.get("notes", [])]
    if any(c["simulated"] for c in record["cases"].values()):
        lines += ["", "every figure of a case marked SIMULATED is from the model, not a GPU"]
    return "\n".join(lines)


def list_cases() -> str:
    lines = []
    for case in discover().values():
        sizes = ", ".join(f"{k}={v[0]} (quick {v[1]})" for k, v in case.params.items())
        lines.append(f"{case.name:<12} [{'/'.join(case.backends)}] {case.title}" + (f"\n{'':<13}{sizes}" if sizes else ""))
    return "\n".join(lines)


def run_from_args(args, command: str) -> int:
    if args.list:
        print(list_cases())
        return 0
    out = args.out or default_results_dir()
    record = run_suite(args.names, backend=args.backend, quick=args.quick, sets=args.set,
                       progress=not args.no_progress, command=command, case_timeout_s=args.case_timeout,
                       after_case=lambda partial: write_record(partial, out))
    path = write_record(record, out)
    plots = []
    if not args.no_plots:
        from gbpfd.bench.plots import PlotsUnavailable, draw_plots
        try:
            plots = draw_plots(record, path.with_suffix(""))
        except PlotsUnavailable as err:  # the record is what matters; say why there are no plots
            print(f"plots: none drawn: {err}", file=sys.stderr)
    print(json.dumps(record) if args.json else format_table(record))
    print(f"record: {path}", file=sys.stderr)
    for p in plots:
        print(f"plot: {p}", file=sys.stderr)
    return 0 if all(c["status"] != "error" for c in record["cases"].values()) else 1


def parser(prog: str = "gbpfd bench") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="run one benchmark case; a table, a JSON record, plots")
    p.add_argument("names", nargs="*", metavar="NAME", help=argparse.SUPPRESS)
    add_arguments(p)
    return p


def script_main(case_file: str) -> int:
    """``python bench/bench_X.py [options]``: the suite with that one case."""
    name = _import(Path(case_file)).NAME
    args = parser(f"python {Path(case_file).name}").parse_args([name, *sys.argv[1:]])
    return run_from_args(args, " ".join(["python", *sys.argv]))
