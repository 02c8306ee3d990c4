"""Where and from what a record was made: the machine, the GPU, the
software versions, the date and the commit."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
PACKAGES = ("numpy", "numba", "numba-cuda", "cuda-bindings", "cupy-cuda13x", "nvidia-ml-py")


def _run(argv: list[str], cwd: Path | None = None) -> str | None:
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def provenance() -> dict:
    """UTC date, git commit and whether the tree had uncommitted changes.
    ``GBPFD_COMMIT`` names the commit where the tree was copied without git."""
    commit = os.environ.get("GBPFD_COMMIT") or _run(["git", "rev-parse", "HEAD"], REPO) or "unknown"
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], REPO)
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": commit, "tree_modified": None if status is None else bool(status)}


def _versions() -> dict:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_facts() -> dict:
    """The current CUDA device: name, SMs, compute capability, driver and CUDA versions."""
    from numba import cuda
    from numba.cuda.cudadrv import driver
    dev = cuda.get_current_device()
    name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    smi = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return {"gpu": name, "sms": dev.MULTIPROCESSOR_COUNT, "compute_capability": "%d.%d" % tuple(dev.compute_capability),
            "driver": smi.splitlines()[0] if smi else None, "cuda_driver_api": "%d.%d" % tuple(driver.get_version())}


def machine(backend: str) -> dict:
    facts = {"host_cpu": _cpu_model(), "host_cores": os.cpu_count(), "os": platform.platform(),
             "versions": _versions()}
    if backend == "cuda":
        facts.update(gpu_facts())
    else:
        facts["gpu"] = None
    return facts
