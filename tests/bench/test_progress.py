"""Progress bars: redrawn frames on a terminal, none in a log."""
from __future__ import annotations

import io

from gbpfd.bench.progress import fraction_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_fraction_bar_redraws_in_place_on_a_terminal():
    stream = Terminal()
    show = fraction_bar("demo", stream)
    show(0.5)
    show(1.0)
    assert stream.getvalue() == (f"\rdemo [{'#' * 15}{'.' * 15}]  50%"
                                 f"\rdemo [{'#' * 30}] 100%\n")


def test_fraction_bar_draws_nothing_into_a_log():
    assert fraction_bar("demo", io.StringIO()) is None
