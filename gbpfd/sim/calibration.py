"""The simulated device's constants, each with its unit and its source, in
one file format (``FORMAT``): the default file shipped beside this module
(published figures and guesses, each said to be so) or a ``calibration.json``
that ``gbpfd check``'s calibrate stage measured on a GPU.

``SimGPU`` (gbpfd.sim.model) is built from such a file, and every simulated
result names the calibration it ran under."""
from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

from gbpfd.errors import InputError

#: ``calibration.json``, version 1:
#:   {"format": FORMAT,
#:    "gpu": {"name": str, "sms": int, "cc": "major.minor", "driver": str},
#:    "date": ISO 8601 UTC, "command": str (what measured it),
#:    "constants": {name: {"value": number, "unit": str, "source": str}},
#:    "rules": {name: {"value": str, "source": str}}}   (optional: the model's named choices, e.g. placement)
#: where a source is "measured: <GPU>, <date>, gbpfd check calibrate",
#: "published: <where>" or "guess".
FORMAT = "gbpfd-calibration/1"
SOURCE_KINDS = ("measured: ", "published: ")
GPU_FIELDS = {"name": str, "sms": int, "cc": str, "driver": str}


class CalibrationError(InputError):
    """A calibration file that is not of ``FORMAT``; the message names the field."""


def write_calibration(path: Path, constants: dict, provenance: dict) -> dict:
    """Write ``constants`` (name -> (value, unit)) measured under
    ``provenance`` ({"gpu": {...}, "date": ..., "command": ...}) to ``path``
    as ``FORMAT``; the document written.  Refuses what it could not load."""
    source = f"measured: {provenance['gpu']['name']}, {provenance['date']}, gbpfd check calibrate"
    doc = {"format": FORMAT, "gpu": provenance["gpu"], "date": provenance["date"], "command": provenance["command"],
           "constants": {name: {"value": value, "unit": unit, "source": source}
                         for name, (value, unit) in sorted(constants.items())}}
    validate(doc, str(path))
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def load_calibration(path: Path) -> dict:
    """The calibration document at ``path``, checked field by field."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as err:
        raise CalibrationError(f"cannot read the calibration: {err.strerror}", path=str(path)) from None
    except json.JSONDecodeError as err:
        raise CalibrationError(f"not JSON: {err}", path=str(path)) from None
    validate(doc, str(path))
    return doc


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _need(doc: dict, key: str, kind, where: str, path: str):
    if not isinstance(doc, dict) or key not in doc:
        raise CalibrationError(f"{where}: missing", path=path)
    value = doc[key]
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise CalibrationError(f"{where}: expected an integer, got {value!r}", path=path)
    if not isinstance(value, kind):
        raise CalibrationError(f"{where}: expected {_KIND_NAMES[kind]}, got {value!r}", path=path)
    return value


_KIND_NAMES = {str: "a string", int: "an integer", dict: "an object"}


def validate(doc, path: str) -> None:
    """Raise ``CalibrationError`` naming the first field that is not as ``FORMAT`` says."""
    if not isinstance(doc, dict):
        raise CalibrationError(f"expected a JSON object, got {type(doc).__name__}", path=path)
    if _need(doc, "format", str, "format", path) != FORMAT:
        raise CalibrationError(f"format: expected {FORMAT!r}, got {doc['format']!r}", path=path)
    gpu = _need(doc, "gpu", dict, "gpu", path)
    for key, kind in GPU_FIELDS.items():
        _need(gpu, key, kind, f"gpu.{key}", path)
    _check_date(_need(doc, "date", str, "date", path), path)
    _need(doc, "command", str, "command", path)
    for name, entry in _need(doc, "constants", dict, "constants", path).items():
        _check_constant(name, entry, path)
    if "rules" in doc:
        for name, entry in _need(doc, "rules", dict, "rules", path).items():
            _check_rule(name, entry, path)


def _check_date(date: str, path: str) -> None:
    try:
        parsed = datetime.datetime.fromisoformat(date)
    except ValueError:
        parsed = None
    if parsed is None or parsed.utcoffset() != datetime.timedelta(0):
        raise CalibrationError(f"date: expected an ISO 8601 UTC date, got {date!r}", path=path)


def _check_constant(name: str, entry, path: str) -> None:
    where = f"constants.{name}"
    if not isinstance(entry, dict):
        raise CalibrationError(f"{where}: expected an object, got {entry!r}", path=path)
    if "value" not in entry:
        raise CalibrationError(f"{where}.value: missing", path=path)
    if not _is_number(entry["value"]):
        raise CalibrationError(f"{where}.value: expected a finite number, got {entry['value']!r}", path=path)
    _need(entry, "unit", str, f"{where}.unit", path)
    _check_source(entry, where, path)


def _check_rule(name: str, entry, path: str) -> None:
    where = f"rules.{name}"
    if not isinstance(entry, dict):
        raise CalibrationError(f"{where}: expected an object, got {entry!r}", path=path)
    _need(entry, "value", str, f"{where}.value", path)
    _check_source(entry, where, path)


def _check_source(entry: dict, where: str, path: str) -> None:
    source = _need(entry, "source", str, f"{where}.source", path)
    if source != "guess" and not source.startswith(SOURCE_KINDS):
        raise CalibrationError(f"{where}.source: expected 'measured: ...', 'published: ...' or 'guess', "
                               f"got {source!r}", path=path)


# -- analysis (pure, tested without a GPU) ----------------------------------
