"""A requester in the simulated device's virtual time: one CTA's thread 0
asking for admission again and again, as the GPU cases' requester kernel
does on a GPU."""
from __future__ import annotations

from gbpfd.device import state as S


class Requester:
    """``gaps_ns``: the idle time before each request (None: ``gap_ns``
    forever, until ``stop``)."""

    def __init__(self, device, tenant: int, gaps_ns=None, gap_ns: int = 0):
        self.d, self.tenant = device, tenant
        self.gaps = None if gaps_ns is None else [int(g) for g in gaps_ns]
        self.gap_ns = gap_ns
        self.sent = 0
        self.no_slot = 0
        self.stopped = False
        self.answers: list[tuple[int, int]] = []   # (seen_ns, decision)

    @property
    def done(self) -> bool:
        return self.stopped or (self.gaps is not None and len(self.answers) + self.no_slot >= len(self.gaps))

    def start(self) -> None:
        self._next()

    def stop(self) -> None:
        self.stopped = True

    def _next(self) -> None:
        if self.stopped or (self.gaps is not None and self.sent >= len(self.gaps)):
            return
        gap = self.gap_ns if self.gaps is None else self.gaps[self.sent]
        self.sent += 1
        self.d.at(self.d.now + gap, self._post)

    def _post(self) -> None:
        if not self.d.post(self.tenant, self._answered):
            self.no_slot += 1
            self._next()

    def _answered(self, decision: int, seen_ns: int) -> None:
        self.answers.append((seen_ns, decision))
        if decision == S.ADMIT:  # the control CTA counted it running; it leaves at once
            self.d.dev.cta_exit(self.d.a.ctl, self.tenant, S.ENTER_POLICY)
        self._next()
