"""The suite's command-line options, shared by ``gbpfd bench`` and the
case scripts; importing this loads nothing heavy (``gbpfd exec`` starts fast)."""
from __future__ import annotations

import argparse
from pathlib import Path

from gbpfd.bench.machine import REPO


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("auto", "cuda", "sim"), default="auto")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results",
                   help="folder for the record and plots (simulated runs go to OUT/sim)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not figures to keep")
    p.add_argument("--set", action="append", default=[], metavar="CASE.PARAM=VALUE", help="override one size")
    p.add_argument("--list", action="store_true", help="list the cases and their sizes, run nothing")
    p.add_argument("--case-timeout", type=float, default=240.0, metavar="S",
                   help="end the run (with tracebacks) when one case takes longer; the record so far is kept "
                        "(default 240; 0: no limit)")
    p.add_argument("--json", action="store_true", help="print the record as JSON instead of the table")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--no-progress", action="store_true", help="draw no progress bar")
