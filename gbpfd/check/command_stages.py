"""Stages that run another gbpfd command in a process of their own (which
the runner's bound ends with the stage): the GPU tests, the benchmark
suite and the demo."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gbpfd.check.stage import StageContext, StageSkip

REPO = Path(__file__).resolve().parents[2]
#: GPU test files, safest first; the soak and the risky paths run last in
#: their file, so a hang there leaves the rest reported
GPU_TEST_FILES = ("tests/plane/test_plane_gpu.py", "tests/test_admission_cupy.py", "tests/test_docs_examples.py",
                  "tests/demo/test_demo_gpu.py")
PER_TEST_TIMEOUT_S = 90


def _run(ctx: StageContext, argv: list[str], cwd: Path | None = None, env: dict | None = None) \
        -> subprocess.CompletedProcess:
    """Run ``argv``; its output is the stage's output (and so its record's tail)."""
    print("$ " + " ".join(argv), flush=True)
    done = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env={**os.environ, **(env or {})})
    sys.stdout.write(done.stdout)
    ctx.figure("exit_code", done.returncode, "")
    return done


def _has(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def gpu_tests(ctx: StageContext) -> None:
    if not ctx.gpu:
        raise StageSkip("needs a GPU: the tests marked gpu are skipped without one")
    files = [f for f in GPU_TEST_FILES if (REPO / f).exists()]
    if not files:
        raise StageSkip(f"no GPU test files under {REPO / 'tests'} (run the check from a source checkout)")
    argv = [sys.executable, "-m", "pytest", "-m", "gpu", "-v", "-p", "no:cacheprovider", "-o",
            f"faulthandler_timeout={PER_TEST_TIMEOUT_S - 10}", *files]
    if _has("pytest_timeout"):
        argv += [f"--timeout={PER_TEST_TIMEOUT_S}", "--timeout-method=signal"]
    else:
        ctx.note("pytest-timeout is not installed: tests are bounded only by the stage")
    done = _run(ctx, argv, cwd=REPO, env={"GBPFD_RESULTS_DIR": str(ctx.out)})   # the soak writes soak.json
    summary = [line for line in done.stdout.splitlines() if line.startswith("=") and " in " in line]
    ctx.figure("summary", summary[-1].strip("= ") if summary else None, "")
    if done.returncode != 0:
        raise AssertionError(f"pytest -m gpu exited with {done.returncode}")


def bench(ctx: StageContext) -> None:
    argv = [sys.executable, "-m", "gbpfd", "bench", "--backend", ctx.backend, "--out", str(ctx.out), "--no-plots",
            "--no-progress"]
    if not ctx.gpu:
        argv.append("--quick")   # the simulated suite at full size is not what this check is for
    done = _run(ctx, argv)
    paths = [line.split(":", 1)[1].strip() for line in done.stdout.splitlines() if line.startswith("record:")]
    if not paths:
        raise AssertionError(f"gbpfd bench wrote no record (exit {done.returncode})")
    record = json.loads(Path(paths[-1]).read_text())
    ctx.figure("record", paths[-1], "path")
    for name, case in record["cases"].items():
        ctx.figure(f"{name}.status", case["status"], "")
    if done.returncode != 0:
        raise AssertionError(f"gbpfd bench exited with {done.returncode}")


def demo(ctx: StageContext) -> None:
    done = _run(ctx, [sys.executable, "-m", "gbpfd", "demo", "--backend", ctx.backend, "--json"])
    if done.returncode != 0:
        raise AssertionError(f"gbpfd demo exited with {done.returncode}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("backend", "simulated", "swap", "reaction", "plane"):
        ctx.figure(key, report.get(key), "")
