"""``gbpfd check``: its arguments and what it prints.

Exit 0 only when every stage that ran passed; 1 when one failed or timed
out; 2 for a bad command line or an output folder that already holds a
check.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from gbpfd.check import runner
from gbpfd.cuda_toolchain import KERNEL_CACHE_ENV
from gbpfd.check.stages import NAMES, STAGES, select

DEFAULT_BUDGET_S = 480.0


def add_arguments(cmd) -> None:
    cmd.add_argument("--backend", choices=("auto", "cuda", "sim"), default="auto",
                     help="the GPU, the simulated device, or the GPU when one is present (default)")
    cmd.add_argument("--out", type=Path, help="folder for check.jsonl and the stages' files "
                                              "(default: a new folder under the system's temporary directory)")
    cmd.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                     help=f"seconds for the whole check (default {DEFAULT_BUDGET_S:g}); a stage whose bound would "
                          "not fit in what is left is not started")
    cmd.add_argument("--only", nargs="+", metavar="STAGE", help=f"run only these stages ({', '.join(NAMES)})")
    cmd.add_argument("--list", action="store_true", help="list the stages and their bounds, run nothing")


def _auto_backend() -> str:
    """Asked in a child process, so this one never holds a CUDA context
    beside the stages' planes."""
    probe = "from gbpfd.plane.gpu_probe import gpu_missing_reason as r; print(r() or '')"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    reason = done.stdout.strip() if done.returncode == 0 else f"the GPU probe failed: {done.stderr.strip()[-200:]}"
    if reason:
        print(f"gbpfd check: no GPU ({reason}): checking the simulated device", flush=True)
        return "sim"
    return "cuda"


def _listing() -> str:
    return "\n".join(f"{s.name:<10} {s.timeout_s:>5g} s  {'GPU only' if s.forms == ('cuda',) else 'GPU or sim':<10}  "
                     f"{s.title}" for s in STAGES)


def run(args) -> int:
    if args.list:
        print(_listing())
        return 0
    if not args.budget > 0:
        raise ValueError(f"--budget must be > 0 seconds, got {args.budget:g}")
    stages = select(args.only)
    out = args.out or Path(tempfile.mkdtemp(prefix="gbpfd-check-"))
    if (out / runner.RECORD).exists():
        raise ValueError(f"--out: {out / runner.RECORD} already exists; give a new folder")
    backend = _auto_backend() if args.backend == "auto" else args.backend
    with tempfile.TemporaryDirectory(prefix="gbpfd-kernel-cache-") as cache:
        # the stages share one fresh kernel cache: the control kernel compiles once per check
        env = {"NUMBA_CACHE_DIR": cache, KERNEL_CACHE_ENV: "1"}
        outcomes = runner.run_check(stages, backend, out, args.budget, env=env)
    print(runner.table(outcomes))
    problem = runner.files_problem(out)
    if problem:
        print(f"gbpfd check: {problem}", file=sys.stderr)
    print(f"gbpfd check: {out / runner.RECORD}")
    return 0 if runner.passed(outcomes) and not problem else 1
