"""SimDevice.cancel: a launch whose process went away stops starting
blocks, its running blocks finish, its waiting CTAs leave, and the
tenant's running count drains to zero within one block time."""
from __future__ import annotations

import pytest

from gbpfd.device import state as S
from gbpfd.device.gates import tenant_word
from gbpfd.plane.plane import Plane

MS = 1_000_000
QUOTAS = {"tenants": {"gone": {"class": "best-effort", "weight": 1, "max_ctas": 4096},
                      "stays": {"class": "best-effort", "weight": 1, "max_ctas": 4096}}}


@pytest.mark.parametrize("mode", ["gate", "persistent"])
def test_a_cancelled_launch_drains_within_one_block_time(mode):
    with Plane(backend="sim", quotas=QUOTAS) as plane:
        d = plane.device
        run = d.launch(0, blocks=100_000, block_ns=MS, mode=mode)
        other = d.launch(1, blocks=2_000, block_ns=MS, mode=mode)
        d.run_until(d.now + 5 * MS)
        assert d.a.ctl[tenant_word(0, S.TENANT.running)] > 0
        started = run.blocks_done
        assert d.cancel(run) is True
        d.run_until(d.now + MS + 100_000)     # one block time, and a little for the exits
        assert d.a.ctl[tenant_word(0, S.TENANT.running)] == 0
        assert run.done_ns is not None and run.blocks_done < run.blocks
        assert run.blocks_done - started <= plane.total_slots   # only the blocks already running finished
        assert d.cancel(run) is False
        assert d.run_while(lambda: other.done_ns is None, 200 * MS)
        assert other.blocks_done == other.blocks               # the other tenant's work is untouched
