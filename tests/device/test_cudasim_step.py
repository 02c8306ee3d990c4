"""One step of the control loop and the worker gates, as device functions,
in Numba's CUDA simulator (a separate process: the simulator is chosen when
numba.cuda is first imported)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba_cuda", reason="numba-cuda is not installed")

SCRIPT = Path(__file__).with_name("cudasim_step.py")


def test_one_control_step_of_a_whole_housekeeping_warp_in_the_cuda_simulator():
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    done = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout.strip().splitlines()[-1])
    stop, token_before_tick, slot, undecided, served, decision, stop2, token_after_tick = r["out"]
    assert (stop, stop2) == (0, 0)
    assert r["epoch"] == 1                      # the quotas command adopted the snapshot
    assert r["quotas_in_use"] == r["quotas_published"]          # every lane's share of the copy landed
    assert r["host_counters"] == r["device_counters"] and any(r["host_counters"])   # and of the mirror
    assert token_before_tick == 0               # no tick yet: no tokens
    assert 0 <= slot < 64 and undecided == -1   # posted, not yet decided
    assert served == 1 and decision == 1        # the baseline admitted it
    assert token_after_tick == 1                # the tick refilled tokens; one taken
    # train: weight 3 of 3 active (batch idle), pool = 100 - 16 reserved for infer = 84
    assert r["lc_reserved"] == 16 and r["be_weight_sum"] == 3
    assert r["running"] == 1                    # policy admission still running; the token CTA exited
    assert r["tokens"] == 84 - 1 - 1 + 1        # allowance - running at tick, one taken, one returned
