"""The daemon's memory of recent device events, numbered, so that several
``gbpfd events`` followers can each read from where they left off."""
from __future__ import annotations

import collections
import itertools

KEPT = 10_000


class EventLog:
    def __init__(self, kept: int = KEPT):
        self._events: collections.deque = collections.deque(maxlen=kept)
        self._seq = itertools.count()

    def add(self, record: dict) -> None:
        self._events.append({"seq": next(self._seq), **record})

    def since(self, after: int, limit: int) -> dict:
        """Events numbered above ``after`` (at most ``limit``); ``lost`` counts
        those that fell out of the log before they were read."""
        events = [e for e in self._events if e["seq"] > after][:limit]
        first_kept = self._events[0]["seq"] if self._events else 0
        return {"events": events, "lost": max(0, first_kept - after - 1)}

    def recent(self, n: int) -> list[dict]:
        return list(self._events)[-n:]
