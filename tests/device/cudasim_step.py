"""Run in a NUMBA_ENABLE_CUDASIM=1 process by test_cudasim_step.py: the
shared device source, built for the CUDA simulator, adopts a snapshot,
serves one admission and runs one tick inside a simulated kernel of one
warp (the housekeeping warp's 32 lanes copy the snapshot in and the
counters out together); prints the results as JSON."""
import json
import os

import numpy as np

assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1", "run me with NUMBA_ENABLE_CUDASIM=1"

from numba import cuda  # noqa: E402

from gbpfd.bridge.layout import REGION  # noqa: E402
from gbpfd.bridge.ring import CommandRing  # noqa: E402
from gbpfd.device import state as S  # noqa: E402
from gbpfd.device.build import for_cudasim  # noqa: E402
from gbpfd.plane import arrays as A  # noqa: E402
from gbpfd.policies.catalog import baseline_programs  # noqa: E402
from gbpfd.quotas.load import load_quotas  # noqa: E402
from gbpfd.quotas.snapshot import SnapshotPublisher, pack_quotas  # noqa: E402
from gbpfd.resources import shared_file  # noqa: E402

_D = for_cudasim()
control_warp, serve_slot, try_token, post_request, poll_request, cta_exit = (
    _D.control_warp, _D.serve_slot, _D.try_token, _D.post_request, _D.poll_request, _D.cta_exit)
LANES = 32


@cuda.jit
def step_kernel(ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout, tenant, out):
    lane = cuda.threadIdx.x
    copied = control_warp(lane, LANES, 1_000, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout)
    adopted = control_warp(lane, LANES, 1_010, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout)
    if lane == 0:
        out[0] = copied + adopted
        out[1] = try_token(ctl, tenant, 1_100)
        slot = post_request(ctl, tenant, 1, 1_200)
        out[2] = slot
        out[3] = poll_request(ctl, slot)
        out[4] = serve_slot(slot, 1_500, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout)
        out[5] = poll_request(ctl, slot)
    cuda.syncthreads()   # one warp per block: lane 0 done before the lanes go on
    ticked = control_warp(lane, LANES, 100_000, ctl, host, code, flat8, flat, desc, regs, frames, stack, vmout)
    if lane == 0:
        out[6] = ticked
        out[7] = try_token(ctl, tenant, 100_100)
        cta_exit(ctl, tenant, S.ENTER_TOKEN)


def main():
    a = A.allocate()
    A.initialise(a, A.Periods(), wait_bound_ns=1_000_000, active_window_ns=1_000_000, sample_every=1)
    for pid, (hook, program) in enumerate(baseline_programs("asm").items(), 1):
        A.install_baseline(a, hook, program, pid)
    quotas = load_quotas(shared_file("quotas", "demo.toml"))
    SnapshotPublisher(a.host).publish(quotas, total_slots=100)
    CommandRing(a.host).push("quotas")
    out = np.zeros(8, np.int64)
    tenant = quotas.index("train")
    # flat8 and flat must stay two views of one buffer on the device too
    flat = cuda.to_device(a.flat)
    args = list(a.device_args())
    args[3], args[4] = flat.view(np.uint8), flat
    step_kernel[1, LANES](*args, tenant, out)
    flat.copy_to_host(a.flat)
    tw = S.TENANT_BASE + tenant * S.TENANT_STRIDE
    counters = slice(REGION.counters, REGION.counters + S.MAX_TENANTS * S.COUNTER_RECORD_WORDS)
    quotas_in_use = a.flat[S.QUOTA_WORD:S.QUOTA_WORD + S.QUOTA_BYTES // 8]
    print(json.dumps({"out": out.tolist(), "epoch": int(a.ctl[S.META.epoch]),
                      "quotas_in_use": quotas_in_use.tolist(), "quotas_published": pack_quotas(quotas).tolist(),
                      "host_counters": a.host[counters].tolist(),
                      "device_counters": a.flat[S.COUNTERS_WORD:S.COUNTERS_WORD + counters.stop - counters.start
                                                ].tolist(),
                      "running": int(a.ctl[tw + S.TENANT.running]), "tokens": int(a.ctl[tw + S.TENANT.tokens]),
                      "be_weight_sum": int(a.ctl[S.PLANE.be_weight_sum]),
                      "lc_reserved": int(a.ctl[S.PLANE.lc_reserved])}))


if __name__ == "__main__":
    main()
