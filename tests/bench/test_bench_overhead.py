"""The overhead case on the simulated device, at sizes where the answer is
known: a kernel of one wave of the whole GPU, timed with no plane, beside
it and admitted by it."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from gbpfd.bench.case import Case
from gbpfd.bench.suite import run_case
from gbpfd.sim.model import sim_gpu

BENCH = Path(__file__).resolve().parents[2] / "bench"


def run_sim(name: str, **sizes) -> dict:
    spec = importlib.util.spec_from_file_location(f"test_{name}", BENCH / f"bench_{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    case = Case.from_module(module)
    entry = run_case(case, "sim", case.sized(True, sizes), None)
    assert entry["status"] == "ok", entry.get("traceback")
    return entry


def test_every_logical_block_is_admitted_once_and_the_reserved_sm_costs_a_wave():
    gpu = sim_gpu()
    whole = gpu.num_sms * gpu.slots_per_sm
    entry = run_sim("overhead", sim_ctas=whole, sim_cta_us=40, sim_reps=2)
    f, checks = entry["figures"], entry["checks"]
    one_wave_ms = (gpu.launch_ns + 40_000) / 1e6
    assert f["kernel_noplane_ms"]["value"] == round(one_wave_ms, 4)          # the whole GPU: one wave
    assert f["kernel_resident_ms"]["value"] == round(one_wave_ms + 0.04, 4)  # the control CTA's SM taken: two
    for v in ("gate", "persistent", "gate_tokens", "persistent_tokens"):
        row = checks[f"entries_{v}"]
        assert row["blocks_admitted"] == 2 * whole, v
        entries = row["by_token"] + row["policy_decisions"]
        if v.startswith("gate"):
            assert entries == 2 * whole, v
        else:  # each worker's last entry finds no block left: at most one extra entry per worker per run
            assert 2 * whole <= entries <= 2 * (whole + gpu.worker_slots), v
        assert row["bypassed"] == 0, v
        assert f[f"kernel_{v}_ms"]["value"] >= f["kernel_resident_ms"]["value"], v
    assert checks["entries_resident"] == {"by_token": 0, "policy_decisions": 0, "bypassed": 0, "blocks_admitted": 0}
    assert set(entry["bars"]["overhead"]["values"]) == {"plane resident, not admitted", "gate", "persistent",
                                                       "gate, token path", "persistent, token path"}
