"""Progress bars.  The suite's: one line redrawn in place on a terminal, one
line per step in a log (a GPU machine's output is a file).  The demo's
fraction bar: on a terminal only, since redrawn frames are noise in a log."""
from __future__ import annotations

import sys
import time

WIDTH = 24
FRACTION_WIDTH = 30


def fraction_bar(label: str, stream=None):
    """A ``show(fraction)`` that redraws ``label [###...] 50%`` in place, or
    None when ``stream`` (default stderr) is not a terminal."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None

    def show(fraction: float) -> None:
        filled = int(fraction * FRACTION_WIDTH)
        stream.write(f"\r{label} [{'#' * filled}{'.' * (FRACTION_WIDTH - filled)}] {fraction:4.0%}"
                     + ("\n" if fraction >= 1 else ""))
        stream.flush()
    return show


class Progress:
    def __init__(self, total: int, stream=None):
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.started = time.monotonic()

    def _draw(self, text: str, end: str = "") -> None:
        filled = WIDTH * self.done // max(self.total, 1)
        line = (f"[{'#' * filled}{'.' * (WIDTH - filled)}] {self.done}/{self.total} "
                f"{time.monotonic() - self.started:6.1f}s  {text}")
        if self.live:
            self.stream.write("\r\033[K" + line + end)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def step(self, case: str, text: str) -> None:
        self._draw(f"{case}: {text}")

    def case_done(self, case: str, status: str, seconds: float) -> None:
        self.done += 1
        self._draw(f"{case}: {status} in {seconds:.1f}s", end="\n")
