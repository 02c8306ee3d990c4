"""What a benchmark case is and what it may record.

A case is one module in ``bench/`` that declares:

* ``NAME`` (the suite's name for it), ``TITLE`` (one line);
* ``BACKENDS``: which of ``"cuda"``, ``"sim"``, ``"host"`` it measures.
  ``"host"`` is the form that needs no device (the verifier, the CPU VMs):
  it runs where the suite's backend is not in the list;
* ``PARAMS``: ``{name: (full, quick)}`` sizes; ``--quick`` picks the second;
* ``TARGETS``: the bounds the project's requirements set on its figures, as ``Target`` rows;
* ``measure(run: CaseRun) -> None``, which reports through ``run``;
* optionally ``ORDER`` (default 50): the suite runs cases by it, then by
  name; a case whose failure could wedge the GPU runs late, so a hang
  costs the others nothing.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from types import ModuleType

from gbpfd.bench.stats import quantiles
from gbpfd.errors import InputError

BACKEND_KINDS = ("cuda", "sim", "host")
_TYPE_WORDS = {int: "an integer", float: "a number"}
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Target:
    """A bound a figure should meet: ``figure op bound`` (``text`` says it
    in words, ``source`` names the requirement it comes from, in words a
    reader can follow: no tracker numbers)."""
    figure: str
    op: str
    bound: float
    text: str
    source: str

    def __post_init__(self):
        if self.op not in _OPS:
            raise ValueError(f"Target {self.figure}: op must be one of {', '.join(_OPS)}, got {self.op!r}")

    def met(self, value) -> bool | None:
        """None when the figure was not measured."""
        return None if value is None else bool(_OPS[self.op](value, self.bound))


@dataclass
class CaseRun:
    """What a case's ``measure`` reports into; becomes the case's part of the record."""
    name: str
    backend: str
    params: dict
    progress: object = None
    figures: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)
    cdfs: dict = field(default_factory=dict)
    bars: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def simulated(self) -> bool:
        return self.backend == "sim"

    def step(self, text: str) -> None:
        """Say what the case is doing now (the progress line)."""
        if self.progress is not None:
            self.progress.step(self.name, text)

    def figure(self, name: str, value, unit: str, samples: int) -> None:
        if name in self.figures:
            raise ValueError(f"case {self.name}: figure {name!r} reported twice")
        if value is not None and not math.isfinite(float(value)):
            value = None
        self.figures[name] = {"value": None if value is None else round(float(value), 4), "unit": unit,
                              "samples": int(samples)}

    def cdf(self, name: str, samples, unit: str, *, floor: bool = False) -> None:
        """Keep ``samples``' distribution for the CDF plot; ``floor``: it is the
        hardware floor the other curves are drawn against."""
        self.cdfs[name] = {"unit": unit, "samples": len(samples), "floor": floor, "quantiles": quantiles(samples)}

    def bar_chart(self, name: str, values: dict, unit: str, *, target: float | None = None,
                  band: tuple[float, float] | None = None) -> None:
        """Bars ``{label: value}`` in one chart, with the target drawn as a
        line, or as a shaded ``band`` (low, high) where it is a tolerance."""
        if target is not None and band is not None:
            raise ValueError(f"case {self.name}: bar chart {name!r} takes a target line or a band, not both")
        self.bars[name] = {"unit": unit, "values": {k: None if v is None else round(float(v), 4)
                                                   for k, v in values.items()}, "target": target,
                           "band": None if band is None else [float(band[0]), float(band[1])]}

    def check(self, name: str, value) -> None:
        """A fact that makes the figures trustworthy (requests answered, SMs used...)."""
        self.checks[name] = value

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclass(frozen=True)
class Case:
    """A loaded case module, checked for the declarations above."""
    name: str
    title: str
    backends: tuple
    params: dict
    targets: tuple
    module: ModuleType
    order: int = 50

    @classmethod
    def from_module(cls, module: ModuleType) -> "Case":
        where = getattr(module, "__file__", module.__name__)
        missing = [a for a in ("NAME", "TITLE", "BACKENDS", "PARAMS", "TARGETS", "measure") if not hasattr(module, a)]
        if missing:
            raise ValueError(f"{where}: a bench case must define {', '.join(missing)}")
        bad = [b for b in module.BACKENDS if b not in BACKEND_KINDS]
        if bad or not module.BACKENDS:
            raise ValueError(f"{where}: BACKENDS must name some of {', '.join(BACKEND_KINDS)}, got {module.BACKENDS!r}")
        for key, sizes in module.PARAMS.items():
            if not (isinstance(sizes, tuple) and len(sizes) == 2):
                raise ValueError(f"{where}: PARAMS[{key!r}] must be a (full, quick) pair, got {sizes!r}")
        return cls(module.NAME, module.TITLE, tuple(module.BACKENDS), dict(module.PARAMS), tuple(module.TARGETS),
                   module, getattr(module, "ORDER", 50))

    def backend_for(self, backend: str) -> str | None:
        """Where this case runs when the suite runs on ``backend``: there, else
        on the host when it has a host-only form, else None (it cannot)."""
        if backend in self.backends:
            return backend
        return "host" if "host" in self.backends else None

    def sized(self, quick: bool, overrides: dict) -> dict:
        params = {k: v[1] if quick else v[0] for k, v in self.params.items()}
        for key, value in overrides.items():
            if key not in params:
                raise InputError(f"--set {self.name}.{key}: case {self.name} has no parameter {key!r} "
                                 f"(it has {', '.join(params) or 'none'})")
            params[key] = self._converted(key, value, params[key])
        return params

    def _converted(self, key: str, value: str, default):
        """``value`` as the parameter's type, which its default gives."""
        try:
            return type(default)(value)
        except ValueError:
            kind = _TYPE_WORDS.get(type(default), type(default).__name__)
            raise InputError(f"--set {self.name}.{key}={value}: {key} is {kind} (default {default!r})") from None
