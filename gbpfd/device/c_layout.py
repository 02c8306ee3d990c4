"""Write ``kernels/gbpfd_layout.h``: the ctl and flat word offsets, slot
states and wait constants as C macros, for CUDA C kernels that include
``kernels/gbpfd_admit.cuh``.

The header is generated so that C never carries a hand-copied offset; a
test checks that the committed file is what this module prints.  Run from
the repository root::

    python -m gbpfd.device.c_layout > kernels/gbpfd_layout.h

The backoff bounds are read from ``kernels_cuda.py``'s source rather than
imported, so that generating the header needs neither numba-cuda nor a GPU.
"""
from __future__ import annotations

import ast
from pathlib import Path

from gbpfd.device import state as S

#: module-level integer constants of kernels_cuda.py that the C waits share
WAIT_CONSTANTS = ("BACKOFF_MIN_NS", "BACKOFF_MAX_NS")
GUARD = "GBPFD_LAYOUT_H"


def _fields(prefix: str, group) -> list[tuple[str, int]]:
    return [(f"{prefix}_{name.upper()}", value) for name, value in group._asdict().items()]


def wait_constants(path: Path | None = None) -> list[tuple[str, int]]:
    """``WAIT_CONSTANTS`` as assigned (integer literals) in kernels_cuda.py."""
    path = path or Path(__file__).with_name("kernels_cuda.py")
    found = {}
    for node in ast.parse(path.read_text(), str(path)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in WAIT_CONSTANTS:
                if not (isinstance(node.value, ast.Constant) and type(node.value.value) is int):
                    raise ValueError(f"{path}:{node.lineno}: {name} must be an integer literal for the C header")
                found[name] = node.value.value
    missing = [n for n in WAIT_CONSTANTS if n not in found]
    if missing:
        raise ValueError(f"{path}: no module-level assignment of {', '.join(missing)}")
    return [(f"GBPFD_{n}", found[n]) for n in WAIT_CONSTANTS]


def sections() -> list[tuple[str, list[tuple[str, int]]]]:
    return [
        ("array sizes (int64 words)", [("GBPFD_CTL_WORDS", S.CTL_WORDS), ("GBPFD_FLAT_WORDS", S.FLAT_WORDS),
                                       ("GBPFD_MAX_TENANTS", S.MAX_TENANTS)]),
        ("ctl: plane words", _fields("GBPFD_PLANE", S.PLANE)),
        ("ctl: per-tenant words, at GBPFD_TENANT_BASE + tenant * GBPFD_TENANT_STRIDE",
         [("GBPFD_TENANT_BASE", S.TENANT_BASE), ("GBPFD_TENANT_STRIDE", S.TENANT_STRIDE),
          *_fields("GBPFD_TENANT", S.TENANT)]),
        ("ctl: admission request slots, at GBPFD_SLOT_BASE + slot * GBPFD_SLOT_STRIDE",
         [("GBPFD_NSLOTS", S.NSLOTS), ("GBPFD_SLOT_BASE", S.SLOT_BASE), ("GBPFD_SLOT_STRIDE", S.SLOT_STRIDE),
          *_fields("GBPFD_SLOT", S.SLOT)]),
        ("slot states and decisions",
         [("GBPFD_FREE", S.FREE), ("GBPFD_CLAIMED", S.CLAIMED), ("GBPFD_POSTED", S.POSTED),
          ("GBPFD_SERVING", S.SERVING), ("GBPFD_DECIDED", S.DECIDED), ("GBPFD_ABANDONED", S.ABANDONED),
          ("GBPFD_DEFER", S.DEFER), ("GBPFD_ADMIT", S.ADMIT)]),
        ("how a CTA got in (cta_exit may hand a token on for GBPFD_ENTER_TOKEN and GBPFD_ENTER_POLICY)",
         [("GBPFD_ENTER_DENIED", S.ENTER_DENIED), ("GBPFD_ENTER_TOKEN", S.ENTER_TOKEN),
          ("GBPFD_ENTER_POLICY", S.ENTER_POLICY), ("GBPFD_ENTER_BYPASS", S.ENTER_BYPASS)]),
        ("flat: per-tenant counter records, at GBPFD_COUNTERS_WORD + tenant * GBPFD_COUNTER_RECORD_WORDS",
         [("GBPFD_COUNTERS_WORD", S.COUNTERS_WORD), ("GBPFD_COUNTER_RECORD_WORDS", S.COUNTER_RECORD_WORDS),
          *_fields("GBPFD_COUNTER", S.COUNTER)]),
        ("waits: exponential backoff bounds in ns (gbpfd/device/kernels_cuda.py)", wait_constants()),
    ]


def render() -> str:
    groups = sections()
    width = max(len(name) for _, defs in groups for name, _ in defs)
    lines = ["/* gbpfd_layout.h: generated from gbpfd/device/state.py by",
             " *     python -m gbpfd.device.c_layout > kernels/gbpfd_layout.h",
             " * Do not edit: regenerate (tests/device/test_c_layout.py checks it is current). */",
             f"#ifndef {GUARD}", f"#define {GUARD}"]
    for title, defs in groups:
        lines += ["", f"/* {title} */"]
        lines += [f"#define {name.ljust(width)} {value}" for name, value in defs]
    lines += ["", f"#endif /* {GUARD} */", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
