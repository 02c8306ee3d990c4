"""The control kernel compiles the policy interpreter in once per warp: each
step from the kernel down to ``execute`` has one call site (warp 0:
``serve_slot``; warp 1: ``control_warp``, whose lane 0 runs
``housekeeping``, through one ``run_periodic`` for
every periodic hook), and the fallback to the baseline is a loop around the
one ``invoke``.  Device functions are inlined, so every extra call site was
a copy of the interpreter (ten before issue 12: 45,725 PTX lines, 14,043
after, measured with gbpfd.ptx on sm_90)."""
from __future__ import annotations

import ast
from pathlib import Path

DEVICE = Path(__file__).resolve().parents[2] / "gbpfd" / "device"


def call_sites(name: str) -> dict[str, list[str]]:
    """callee name -> the functions of gbpfd/device/``name`` that call it, once per call site
    (read as source: kernels_cuda.py needs numba-cuda to import)."""
    sites: dict[str, list[str]] = {}
    for fn in ast.parse((DEVICE / name).read_text()).body:
        if isinstance(fn, ast.FunctionDef):
            for node in ast.walk(fn):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    sites.setdefault(node.func.id, []).append(fn.name)
    return sites


def test_each_step_to_the_interpreter_has_one_call_site():
    sites = call_sites("control.py")
    assert sites["execute"] == ["invoke"]
    assert sites["invoke"] == ["invoke_with_fallback"]
    assert sorted(sites["invoke_with_fallback"]) == ["decide_claimed", "run_periodic"]  # warp 0, warp 1
    assert sites["run_periodic"] == ["periodic"]
    assert sites["periodic"] == ["housekeeping"]
    assert sites["decide_claimed"] == ["serve_slot"]
    assert sites["housekeeping"] == ["control_warp"]


def test_the_control_kernel_calls_each_warp_s_entry_once():
    sites = call_sites("kernels_cuda.py")
    assert sites["serve_slot"] == ["control_kernel"] and sites["control_warp"] == ["control_kernel"]
