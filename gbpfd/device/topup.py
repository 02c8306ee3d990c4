"""How many workers a persistent launch's host launcher adds while its wave
runs (host code, shared by ``gbpfd.admission`` and the simulated device).

A top-up spends tokens the tenant holds but its workers on SMs leave
unused (a raised allowance, a tenant gone), up to the launch's worker count
and to the room the device leaves it: ``worker_sms`` (the SMs the control
CTA says its workers may stay on: its mask, less the drained ones for a
best-effort tenant) times the workers one SM holds.  The block scheduler
places a new CTA on the SM with the most room, and a drained SM is emptier
than any other, so a top-up adds one worker per slot of the drained SMs
(they land there first and leave at once, taking no token) before those
that fill the room.  Sized so, a top-up is not repeated every poll with
workers that only land on drained SMs.
"""
from __future__ import annotations

from gbpfd.device import state as S


def top_up_workers(words, launch_workers: int, per_sm: int, max_per_sm: int = 0) -> int:
    """Workers to launch now, from tenant ``words`` (state.TENANT, as read
    from the device): ``launch_workers`` the launch's worker count,
    ``per_sm`` its kernel's CTAs per SM (occupancy), ``max_per_sm`` the
    tenant's max_ctas_per_sm (0: none)."""
    on_sms = int(words[S.TENANT.workers])
    per_sm = min(per_sm, max_per_sm) if max_per_sm > 0 else per_sm
    room = int(words[S.TENANT.worker_sms]) * per_sm - on_sms
    useful = min(int(words[S.TENANT.tokens]), launch_workers - on_sms, room)
    return useful + int(words[S.TENANT.drained_sms]) * per_sm if useful > 0 else 0
