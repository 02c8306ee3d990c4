"""Shared set-up for the VM tests: case files, exec-mode memory, running both VMs."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gbpfd.isa.abi import LIMITS, RECORDS
from gbpfd.vm import fast, reference
from gbpfd.vm.memory import RID_INPUT, Memory, address, build_memory

from case_files import load_cases  # noqa: F401 (re-exported: test_cases takes it from here)

CASES_DIR = Path(__file__).parent / "cases"
NOW_NS = 0x0123456789ABCDEF  # what ktime_get_ns returns in the cases
VMS = {"reference": reference.run, "fast": fast.run}


def quota_pattern() -> bytes:
    """Quota snapshot whose byte i is i % 251, so every field reads a distinct value."""
    return bytes(i % 251 for i in range(RECORDS["quota"].size * LIMITS.max_tenants))


def exec_memory(program, mem: bytes) -> Memory:
    return build_memory(program.maps, input_mem=mem, quota=quota_pattern())


def exec_args(mem: bytes) -> tuple[int, int]:
    """The ``gbpfd exec`` convention: r1 = the input buffer, r2 = its length."""
    return address(RID_INPUT, 0), len(mem)


def run_both(program, make_memory, **kwargs):
    """{vm name: (Result, Memory after the run)} for both VMs, each on fresh memory."""
    outcomes = {}
    for name, run in VMS.items():
        memory = make_memory()
        outcomes[name] = (run(program, memory, **kwargs), memory)
    return outcomes


def assert_same(outcomes) -> None:
    (ref, ref_mem), (got, got_mem) = outcomes["reference"], outcomes["fast"]
    assert got == ref
    assert np.array_equal(got_mem.flat, ref_mem.flat)
