"""The suite's command-line options, shared by ``gbpfd bench`` and the
case scripts; importing this loads nothing heavy (``gbpfd exec`` starts fast)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def default_results_dir() -> Path:
    """The user's own results folder, ``$XDG_DATA_HOME/gbpfd/bench``: a run
    never lands among a checkout's committed records (``bench/results``,
    which docs/results.md is built from) unless ``--out`` names them."""
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "gbpfd" / "bench"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("auto", "cuda", "sim"), default="auto")
    p.add_argument("--out", type=Path, help="folder for the record and plots, simulated runs in OUT/sim (default: "
                   "$XDG_DATA_HOME/gbpfd/bench, else ~/.local/share/gbpfd/bench; a checkout's committed records "
                   "only with --out bench/results)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not figures to keep")
    p.add_argument("--set", action="append", default=[], metavar="CASE.PARAM=VALUE", help="override one size")
    p.add_argument("--list", action="store_true", help="list the cases and their sizes, run nothing")
    p.add_argument("--case-timeout", type=float, default=240.0, metavar="S",
                   help="end the run (with tracebacks) when one case takes longer; the record so far is kept "
                        "(default 240; 0: no limit)")
    p.add_argument("--json", action="store_true", help="print the record as JSON instead of the table")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--no-progress", action="store_true", help="draw no progress bar")
