"""Stage ``compile``: every device kernel compiled to sm_90 PTX and assembled
by ``ptxas -v`` (registers, stack frame, spill bytes, seconds), the CUDA C
admission header compiled too; on a GPU each kernel is also compiled and
loaded by numba-cuda for the device present, with the occupancy the driver
reports.  Writes ``compile.json`` (the static cost report) into the
check's folder and prints it.

Runs without a GPU wherever NVVM and ptxas exist (the development
machines and CI do): there the figures are PTX-level, for sm_90.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from gbpfd import ptx as P
from gbpfd.check.kernel_catalog import KERNELS
from gbpfd.check.stage import StageContext, StageSkip

REPORT = "compile.json"
HEADER_PROBE = """#include "gbpfd_admit.cuh"
extern "C" __global__ void probe(GBPFD_GATE_PARAMS, long long *out) {
    GBPFD_CTA_ENTER_WITH_WARP_GATE();
    if (threadIdx.x == 0) out[blockIdx.x] = 1;
    GBPFD_WARP_GATE();
    GBPFD_CTA_EXIT();
}
"""


def _kernel_cost(name: str, build, ctx: StageContext) -> dict:
    started = time.perf_counter()
    kernel, sig = build()
    text = P.compile_ptx(kernel, sig, gpu=ctx.gpu)
    nvvm_s = time.perf_counter() - started
    costs, ptxas_s = P.assemble(text)
    cost = max(costs, key=lambda c: c.registers)  # one entry per kernel; max() only guards a surprise
    row = {"kernel": name, **cost.as_dict(), "nvvm_s": round(nvvm_s, 2), "ptxas_s": round(ptxas_s, 2),
           "ptx_lines": text.count("\n"), "sys_scope_ops": text.count(".sys")}
    if ctx.gpu:
        row.update(_loaded_cost(kernel, sig))
    return row


def _loaded_cost(kernel, sig) -> dict:
    """What the driver says of the kernel compiled for the GPU present."""
    from gbpfd.cuda_toolchain import cache_if_asked
    cache_if_asked(kernel)
    compiled = kernel.compile(sig)
    return {"gpu_registers": compiled.get_regs_per_thread(), "gpu_local_bytes": compiled.get_local_mem_per_thread(),
            "max_blocks_per_sm_at_64_threads": compiled.max_cooperative_grid_blocks(64)
            // _sm_count()}


def _sm_count() -> int:
    from numba import cuda
    return cuda.get_current_device().MULTIPROCESSOR_COUNT


def _header_cost() -> dict:
    """kernels/gbpfd_admit.cuh compiled by nvcc to PTX, then ptxas -v."""
    from gbpfd.resources import shared_file
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return {"kernel": "gbpfd_admit.cuh", "skipped": "nvcc not found"}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "probe.cu")
        src.write_text(HEADER_PROBE)
        started = time.perf_counter()
        done = subprocess.run([nvcc, "-arch=sm_90", "-ptx", "-I", str(shared_file("kernels", "gbpfd_admit.cuh").parent), str(src), "-o",
                               str(Path(tmp, "probe.ptx"))], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"nvcc failed on gbpfd_admit.cuh: {(done.stderr or done.stdout).strip()[-400:]}")
        costs, ptxas_s = P.assemble(Path(tmp, "probe.ptx").read_text())
    return {"kernel": "gbpfd_admit.cuh", **costs[0].as_dict(), "nvcc_s": round(time.perf_counter() - started, 2),
            "ptxas_s": round(ptxas_s, 2)}


def run(ctx: StageContext) -> None:
    reason = P.nvvm_missing_reason()
    if reason:
        raise StageSkip(reason)
    if P.ptxas() is None:
        raise StageSkip("ptxas was not found on PATH or under the CUDA toolkit")
    rows = []
    for name, build in KERNELS.items():
        print(f"compiling {name}", flush=True)
        rows.append(_kernel_cost(name, build, ctx))
        r = rows[-1]
        ctx.figure(f"{name}.registers", r["registers"], "registers")
        ctx.figure(f"{name}.spill_bytes", r["spill_stores"] + r["spill_loads"], "bytes")
        ctx.figure(f"{name}.stack_frame", r["stack_frame"], "bytes")
        ctx.figure(f"{name}.compile_s", round(r["nvvm_s"] + r["ptxas_s"], 2), "s")
    rows.append(_header_cost())
    report = {"target": f"sm_{P.TARGET_CC[0]}{P.TARGET_CC[1]}", "gpu": ctx.gpu, "kernels": rows}
    (ctx.out / REPORT).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
