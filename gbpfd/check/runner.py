"""Run the stages of ``gbpfd check`` in order, each in its own process group
under its own bound, and write one JSON line per stage as it ends.

A stage past its bound gets SIGTERM to its whole group, then SIGKILL, and
is recorded as ``timeout`` with the last lines it printed; the next stage
still runs.  A stage is not started when the time left in the budget would
not cover its bound (it, and every stage after it, is recorded as ``skip``
with that reason), so the check as a whole ends within its budget.
"""
from __future__ import annotations

import collections
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from gbpfd.check.stage import Stage

TAIL_LINES = 40
KILL_GRACE_S = 5.0
MAX_FILES = 8          # what a lent GPU machine sends back
RECORD = "check.jsonl"


@dataclass
class Outcome:
    stage: str
    title: str
    backend: str
    status: str
    reason: str | None
    seconds: float
    timeout_s: float
    figures: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    output_tail: list = field(default_factory=list)

    def as_json(self) -> str:
        return json.dumps({"stage": self.stage, "title": self.title, "backend": self.backend, "status": self.status,
                           "reason": self.reason, "seconds": round(self.seconds, 3), "timeout_s": self.timeout_s,
                           "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                           "figures": self.figures, "notes": self.notes, "output_tail": self.output_tail})


def _echo_and_keep(stream, tail: collections.deque, echo) -> None:
    for line in iter(stream.readline, ""):
        tail.append(line.rstrip("\n"))
        echo.write(line)
        echo.flush()


def _kill_group(proc: subprocess.Popen) -> None:
    """End the stage and anything it started (its own session)."""
    for sig, grace in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _exit_reason(code: int) -> str:
    if code < 0:
        return f"the stage's process was killed by {signal.Signals(-code).name} before it reported"
    return f"the stage's process exited with code {code} before it reported"


def run_stage(stage: Stage, backend: str, out: Path, timeout_s: float, echo=None, env: dict | None = None) \
        -> Outcome:
    """Run one stage in a child process and say how it ended; its output is
    copied to ``echo`` (default: standard output) as it comes."""
    echo = echo or sys.stdout
    with tempfile.TemporaryDirectory(prefix="gbpfd-check-") as tmp:
        result = Path(tmp, "result.json")
        child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        started = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "gbpfd.check.child", stage.target, backend, str(out),
                                 str(result)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=child_env)
        tail: collections.deque = collections.deque(maxlen=TAIL_LINES)
        reader = threading.Thread(target=_echo_and_keep, args=(proc.stdout, tail, echo), daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        _kill_group(proc)  # also after a clean exit: nothing the stage started outlives it
        reader.join(timeout=KILL_GRACE_S)
        seconds = time.monotonic() - started
        outcome = Outcome(stage.name, stage.title, backend, "fail", None, seconds, timeout_s, output_tail=list(tail))
        if timed_out:
            outcome.status, outcome.reason = "timeout", f"killed after its bound of {timeout_s:g} s"
        elif result.exists():
            reported = json.loads(result.read_text())
            outcome.status, outcome.reason = reported["status"], reported["reason"]
            outcome.figures, outcome.notes = reported["figures"], reported["notes"]
        else:
            outcome.reason = _exit_reason(proc.returncode)
        return outcome


def _skipped(stage: Stage, backend: str, reason: str) -> Outcome:
    return Outcome(stage.name, stage.title, backend, "skip", reason, 0.0, stage.timeout_s)


def run_check(stages: list[Stage], backend: str, out: Path, budget_s: float, echo=None,
              env: dict | None = None) -> list[Outcome]:
    """Every stage in order; appends each outcome to ``out/check.jsonl`` as it ends."""
    echo = echo or sys.stdout
    out.mkdir(parents=True, exist_ok=True)
    record = out / RECORD
    started = time.monotonic()
    outcomes: list[Outcome] = []
    out_of_budget = None
    for stage in stages:
        left = budget_s - (time.monotonic() - started)
        if backend in stage.forms and out_of_budget is None and stage.timeout_s > left:
            out_of_budget = (f"not started: {left:.0f} s of the {budget_s:g} s budget left, and stage "
                             f"{stage.name} may take {stage.timeout_s:g} s")
        if backend not in stage.forms:
            outcome = _skipped(stage, backend, f"no {backend} form: this stage needs a GPU")
        elif out_of_budget:
            outcome = _skipped(stage, backend, out_of_budget)
        else:
            echo.write(f"== {stage.name}: {stage.title} (bound {stage.timeout_s:g} s)\n")
            echo.flush()
            outcome = run_stage(stage, backend, out, stage.timeout_s, echo=echo, env=env)
        outcomes.append(outcome)
        with record.open("a") as fh:
            fh.write(outcome.as_json() + "\n")
    return outcomes


def files_problem(out: Path) -> str | None:
    """Why ``out`` holds more than a GPU machine sends back, or None."""
    files = [p for p in out.rglob("*") if p.is_file()]
    deep = [p for p in files if len(p.relative_to(out).parts) > 2]
    if len(files) > MAX_FILES:
        return f"{out} holds {len(files)} files; at most {MAX_FILES} come back from a GPU machine"
    if deep:
        return f"{deep[0]} is more than one folder deep under {out}"
    return None


def passed(outcomes: list[Outcome]) -> bool:
    """True when every stage that ran passed (skips do not count against it)."""
    return all(o.status in ("pass", "skip") for o in outcomes)


def table(outcomes: list[Outcome]) -> str:
    rows = [("stage", "status", "seconds", "reason")]
    rows += [(o.stage, o.status, f"{o.seconds:.1f}", o.reason or "") for o in outcomes]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip()
                     for r in rows)
