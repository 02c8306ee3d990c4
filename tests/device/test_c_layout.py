"""kernels/gbpfd_layout.h is what gbpfd.device.c_layout generates from the live layout."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gbpfd.device import c_layout
from gbpfd.device import state as S

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "kernels" / "gbpfd_layout.h"
REGENERATE = "python -m gbpfd.device.c_layout > kernels/gbpfd_layout.h"


def _defines(text: str) -> dict[str, int]:
    return {name: int(value) for name, value in re.findall(r"^#define (GBPFD_\w+)\s+(-?\d+)$", text, re.M)}


def test_the_committed_header_is_current():
    assert COMMITTED.read_text() == c_layout.render(), f"kernels/gbpfd_layout.h is stale: run {REGENERATE}"


def test_the_module_prints_the_header():
    out = subprocess.run([sys.executable, "-m", "gbpfd.device.c_layout"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out == c_layout.render()


def test_the_words_the_c_gates_use_match_state():
    d = _defines(c_layout.render())
    assert d["GBPFD_PLANE_WAIT_BOUND_NS"] == S.PLANE.wait_bound_ns
    assert d["GBPFD_TENANT_BASE"] + 3 * d["GBPFD_TENANT_STRIDE"] + d["GBPFD_TENANT_WARP_CAP"] == \
        S.TENANT_BASE + 3 * S.TENANT_STRIDE + S.TENANT.warp_cap
    assert d["GBPFD_SLOT_BASE"] + 5 * d["GBPFD_SLOT_STRIDE"] + d["GBPFD_SLOT_DECISION"] == \
        S.SLOT_BASE + 5 * S.SLOT_STRIDE + S.SLOT.decision
    assert d["GBPFD_COUNTERS_WORD"] + d["GBPFD_COUNTER_BYPASSED"] == S.COUNTERS_WORD + S.COUNTER.bypassed
    assert (d["GBPFD_POSTED"], d["GBPFD_DECIDED"], d["GBPFD_ADMIT"], d["GBPFD_ENTER_TOKEN"]) == \
        (S.POSTED, S.DECIDED, S.ADMIT, S.ENTER_TOKEN)


def test_every_name_is_unique_and_every_group_is_complete():
    names = [name for _, defs in c_layout.sections() for name, _ in defs]
    assert len(names) == len(set(names))
    for prefix, group in (("GBPFD_PLANE_", S.PLANE), ("GBPFD_TENANT_", S.TENANT), ("GBPFD_SLOT_", S.SLOT),
                          ("GBPFD_COUNTER_", S.COUNTER)):
        assert {f"{prefix}{field.upper()}" for field in group._fields} <= set(names)


def test_the_backoff_bounds_come_from_kernels_cuda(tmp_path):
    source = Path(c_layout.__file__).with_name("kernels_cuda.py").read_text()
    assert c_layout.wait_constants() == [
        (f"GBPFD_{name}", int(re.search(rf"^{name} = (\d+)$", source, re.M).group(1)))
        for name in c_layout.WAIT_CONSTANTS]
    changed = tmp_path / "kernels_cuda.py"
    changed.write_text("BACKOFF_MIN_NS = 2 * 16\nBACKOFF_MAX_NS = 4096\n")
    with pytest.raises(ValueError, match=r"kernels_cuda.py:1: BACKOFF_MIN_NS must be an integer literal"):
        c_layout.wait_constants(changed)
    changed.write_text("BACKOFF_MIN_NS = 32\n")
    with pytest.raises(ValueError, match="no module-level assignment of BACKOFF_MAX_NS"):
        c_layout.wait_constants(changed)
