"""The demo on a GPU: the same keys and the same promises as on the simulated device."""
from __future__ import annotations

import pytest

from gbpfd.demo import DemoConfig, run_demo


@pytest.mark.gpu
def test_demo_on_the_gpu_keeps_shares_and_loses_nothing():
    r = run_demo(DemoConfig(backend="cuda", seconds=2.0))
    assert r["simulated"] is False and r["backend"] == "cuda"
    assert r["swap"] == {**r["swap"], "lost": 0, "doubled": 0}
    for t in r["tenants"]:
        if t["class"] == "best-effort":
            assert abs(t["cta_share"] - t["target_share"]) <= 0.1 * t["target_share"], t
    assert r["copy"]["achieved_bytes_per_s"] == pytest.approx(r["copy"]["target_bytes_per_s"], rel=0.1)
