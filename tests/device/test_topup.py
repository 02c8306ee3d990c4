"""The persistent launcher's top-up rule (gbpfd.device.topup): it spends
the tokens its workers leave unused, no more than the SMs it may use have
room for, and it counts the workers that will land on drained SMs first."""
from __future__ import annotations

import numpy as np
import pytest

from gbpfd.device import state as S
from gbpfd.device.topup import top_up_workers


def words(*, tokens=0, workers=0, worker_sms=0, drained_sms=0):
    w = np.zeros(S.TENANT_STRIDE, np.int64)
    w[S.TENANT.tokens], w[S.TENANT.workers] = tokens, workers
    w[S.TENANT.worker_sms], w[S.TENANT.drained_sms] = worker_sms, drained_sms
    return w


@pytest.mark.parametrize("case, w, launch, per_sm, cap, want", [
    ("tokens bound it", words(tokens=3, workers=10, worker_sms=10), 100, 2, 0, 3),
    ("the launch's worker count bounds it", words(tokens=50, workers=10, worker_sms=10), 12, 2, 0, 2),
    ("the room on the SMs it may use bounds it", words(tokens=50, workers=18, worker_sms=10), 100, 2, 0, 2),
    ("max_ctas_per_sm shrinks the room", words(tokens=50, workers=10, worker_sms=10), 100, 2, 1, 0),
    ("no room: nothing, however many tokens", words(tokens=50, workers=20, worker_sms=10), 100, 2, 0, 0),
    ("a useful top-up adds the slots of the drained SMs", words(tokens=5, workers=10, worker_sms=10,
                                                                drained_sms=4), 100, 2, 0, 5 + 8),
    ("drained SMs alone start nothing", words(tokens=0, workers=10, worker_sms=10, drained_sms=4), 100, 2, 0, 0),
    ("workers over the room (a drain began) start nothing", words(tokens=9, workers=30, worker_sms=10), 100, 2, 0,
     0),
])
def test_top_up_workers(case, w, launch, per_sm, cap, want):
    assert top_up_workers(w, launch, per_sm, cap) == want, case
