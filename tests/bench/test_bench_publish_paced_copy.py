"""The publish and paced-copy cases on the simulated device: what their
figures are made of."""
from __future__ import annotations

import numpy as np
import pytest

from gbpfd.bench import suite
from gbpfd.bench.case import CaseRun
from gbpfd.device import state as S


@pytest.fixture(scope="module")
def cases():
    return suite.discover()


def _run(case, **params) -> CaseRun:
    run = CaseRun(case.name, "sim", case.sized(True, params))
    case.module.measure(run)
    return run


def test_a_trial_spans_from_its_start_to_its_first_decision_of_its_kind(cases):
    spans = cases["publish"].module.spans
    times = [5, 10, 12, 20, 30, 31]
    decisions = [S.ADMIT, S.DEFER, S.DEFER, S.ADMIT, S.ADMIT, S.DEFER]
    # trial 1 (DEFER) starts at 8; trial 2 (ADMIT) at 12 sees the ADMIT at 20; trial 3 (DEFER) at 25 sees 31
    assert spans(times, decisions, [8, 12, 25], [S.DEFER, S.ADMIT, S.DEFER]) == [2, 8, 6]
    # a decision seen at the instant the next trial starts is the earlier trial's
    assert spans(times, decisions, [3, 20], [S.DEFER, S.ADMIT]) == [7, 0]
    # a trial with no decision of its kind before the next one starts is left out, not given a later one
    assert spans(times, decisions, [0, 6, 11], [S.ADMIT, S.ADMIT, S.DEFER]) == [5, 1]
    assert spans(np.array([], np.int64), np.array([], np.int64), [0], [S.ADMIT]) == []


def test_publish_sees_every_trial_decided_after_its_adoption(cases):
    run = _run(cases["publish"], trials=12)
    f = run.figures
    assert run.checks["trials_with_decision"] == 12 and f["publish_to_decision_p50"]["samples"] == 12
    assert f["adopt_to_decision_p50"]["samples"] == 12
    # the adoption comes after the publish, so each trial's device span is the shorter
    assert 0 <= f["adopt_to_decision_p99"]["value"] <= f["publish_to_decision_p99"]["value"]
    assert f["set_quotas_call_p50"]["value"] <= f["publish_to_decision_p50"]["value"]


def test_paced_copy_moves_every_byte_through_tokens_near_each_quota(cases):
    case = cases["paced_copy"]
    run = _run(case, epochs=20)
    for per in case.module.EPOCH_BYTES:
        name = case.module.label(per)
        assert run.checks[f"paced_bytes_{name}"] == per * 20 and run.checks[f"bypassed_{name}"] == 0
        # two banked epochs move at once and the rest one per DMA period from the first refill, which
        # comes up to one period after the start: 20 epochs' bytes take 17 to 18 periods (less 2% of drift)
        assert 20 / 18 * 0.98 <= run.figures[f"copy_rate_ratio_{name}"]["value"] <= 20 / 17
    assert set(run.bars["copy_rate_ratio"]["values"]) == {f"{per >> 10} KiB/epoch" for per in case.module.EPOCH_BYTES}


def test_paced_copy_refuses_a_chunk_larger_than_the_smallest_quota(cases):
    with pytest.raises(ValueError, match="chunk_kib"):
        _run(cases["paced_copy"], chunk_kib=1024)
