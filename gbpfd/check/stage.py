"""What one stage of ``gbpfd check`` is, and what it hands back.

A stage is a function ``run(ctx: StageContext) -> None`` that prints what
it does, records figures with ``ctx.figure`` and ends in one of three ways:
it returns (pass), raises ``StageSkip`` (it has no form for this backend,
or something it needs is absent: the reason says which), or raises
anything else (fail; the traceback lands in the stage's output).  It runs
in a child process of its own (``gbpfd.check.child``), so it may hang or
crash without taking the check with it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

STATUSES = ("pass", "fail", "timeout", "skip")


class StageSkip(Exception):
    """The stage has nothing to run here; ``str(err)`` says why."""


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    timeout_s: float
    target: str          # "module:function" run in the child
    forms: tuple[str, ...] = ("cuda", "sim")   # backends the stage has a form for

    def __post_init__(self):
        if ":" not in self.target:
            raise ValueError(f"Stage {self.name}: target must be 'module:function', got {self.target!r}")
        if self.timeout_s <= 0:
            raise ValueError(f"Stage {self.name}: timeout_s must be positive, got {self.timeout_s!r}")


@dataclass
class StageContext:
    """What a stage gets: the backend it checks and the folder its files go
    to (``out``; a check sends back at most ``MAX_FILES`` files, so a stage
    writes one file at most, named after itself, unless told otherwise)."""
    backend: str
    out: Path
    figures: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def gpu(self) -> bool:
        return self.backend == "cuda"

    def figure(self, name: str, value, unit: str, samples: int | None = None) -> None:
        self.figures[name] = {"value": value, "unit": unit, **({"samples": samples} if samples else {})}
        print(f"  {name} = {value} {unit}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)
