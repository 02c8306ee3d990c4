"""Quota files and dicts -> a validated ``QuotaSet``.

A quota source is checked whole against ``quotas/schema.toml`` before
anything is returned: the first error raises a ``QuotaError`` naming the
file (or ``<dict>``), the line of the offending key, the tenant and the
field, and echoing the bad value.
"""
from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path

from gbpfd.errors import InputError
from gbpfd.quotas.access import Access, parse_access
from gbpfd.quotas.schema import ALL_SMS, FIELD_BY_NAME, FIELDS, MAX_SMS, MAX_TENANTS, MIN_TENANTS, NAME, FieldSpec

DICT_SOURCE = "<dict>"
TOP_LEVEL_KEYS = ("tenants", "access")


class QuotaError(InputError):
    """A quota file or dict that breaks the schema, or a lookup of a tenant it lacks."""


class UnknownTenantError(QuotaError, KeyError):
    """``QuotaSet.index`` of a name that is not there; also a ``KeyError``."""

    __str__ = BaseException.__str__  # KeyError's own would quote the whole message


@dataclass(frozen=True)
class Tenant:
    name: str
    klass: str  # the schema's "class": "latency-critical" or "best-effort"
    weight: int
    max_ctas: int
    warp_cap: int
    dma_bytes_per_epoch: int
    burst: int
    max_ctas_per_sm: int = 0
    sms: str | tuple[int, ...] = "all"  # "all", or the SM numbers, ascending

    @property
    def latency_critical(self) -> bool:
        return self.klass == "latency-critical"

    def field_value(self, field_name: str) -> int | str:
        """The value of schema field ``field_name`` (``class`` is ``klass``)."""
        return getattr(self, attribute_name(field_name))


def attribute_name(field_name: str) -> str:
    """The ``Tenant`` attribute holding schema field ``field_name``."""
    return "klass" if field_name == "class" else field_name


@dataclass(frozen=True)
class QuotaSet:
    tenants: tuple[Tenant, ...]  # file order: position = tenant index
    source: str                  # the file it came from, or "<dict>"
    access: Access = field(default_factory=Access, compare=False)   # the [access] table (gbpfd serve)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tenants)

    def index(self, name: str) -> int:
        for i, tenant in enumerate(self.tenants):
            if tenant.name == name:
                return i
        raise UnknownTenantError(f"no tenant {name!r}; the tenants are {', '.join(self.names)}",
                                 path=self.source)

    def with_fields(self, tenant: str, **fields) -> "QuotaSet":
        """These quotas with some of ``tenant``'s fields changed (``class_``
        for ``class``), checked whole as a quota file is."""
        self.index(tenant)
        table = {t.name: {f.name: t.field_value(f.name) for f in FIELDS} for t in self.tenants}
        table[tenant].update({"class" if name == "class_" else name: value for name, value in fields.items()})
        return load_quotas({"tenants": table})


def load_quotas(source: str | os.PathLike | Mapping | QuotaSet) -> QuotaSet:
    """A path to a ``.toml`` quota file, a ``{"tenants": {name: {...}}}``
    dict, or a ``QuotaSet`` (returned as is)."""
    if isinstance(source, QuotaSet):
        return source
    if isinstance(source, Mapping):
        return _check_document(source, _Checker(DICT_SOURCE, _KeyLines("")))
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        return load_quotas_text(_read_text(path), path)
    raise TypeError(f"load_quotas: expected a quota file path, a dict or a QuotaSet, got "
                    f"{type(source).__name__} {source!r}")


def load_quotas_text(text: str, path: str) -> QuotaSet:
    """Quota-file text that came from ``path`` (named in every error)."""
    return _check_document(_parse_toml(text, path), _Checker(path, _KeyLines(text)))


def _read_text(path: str) -> str:
    try:
        return Path(path).read_bytes().decode("utf-8")
    except OSError as err:
        raise QuotaError(f"cannot read the quota file: {err.strerror}", path=path) from None
    except UnicodeDecodeError as err:
        raise QuotaError(f"not UTF-8 text: byte {err.object[err.start]:#04x} at offset {err.start}",
                         path=path) from None


_TOML_POSITION = re.compile(r"^(?P<reason>.*) \(at line (?P<line>\d+), column (?P<column>\d+)\)$")


def _parse_toml(text: str, path: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # Python 3.11's TOMLDecodeError carries its position only in the message.
        found = _TOML_POSITION.match(str(err))
        if found is None:
            raise QuotaError(f"TOML syntax error: {err}", path=path) from None
        raise QuotaError(f"TOML syntax error: {found['reason']}", path=path, line=int(found["line"]),
                         column=int(found["column"])) from None


class _KeyLines:
    """The first line of every key path in TOML text (tomllib gives no
    positions): table headers set the current table, ``key = value`` lines
    add their dotted keys to it.  Good enough for quota files; a line inside
    a multi-line string could be taken for a key, which at worst points an
    error message at the wrong line."""

    _HEADER = re.compile(r"^\[\[?(?P<keys>[^\]]*)\]\]?\s*(#.*)?$")

    def __init__(self, text: str):
        self._first: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            header = self._HEADER.match(stripped)
            if header:
                table = _key_parts(header["keys"])
                self._first.setdefault(table, number)
            elif "=" in stripped and not stripped.startswith("#"):
                path = table + _key_parts(stripped.split("=", 1)[0])
                for end in range(len(table) + 1, len(path) + 1):
                    self._first.setdefault(path[:end], number)

    def find(self, keys: tuple[str, ...]) -> int | None:
        """Line of ``keys``, or of the nearest enclosing key found (an inline table's line)."""
        while keys:
            if keys in self._first:
                return self._first[keys]
            keys = keys[:-1]
        return None


def _key_parts(text: str) -> tuple[str, ...]:
    """``a."b.c" . d`` -> ("a", "b.c", "d")."""
    parts, current, quote = [], "", None
    for ch in text.strip():
        if quote:
            if ch == quote:
                quote = None
            else:
                current += ch
        elif ch in "\"'":
            quote = ch
        elif ch == ".":
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    return tuple(parts)


@dataclass(frozen=True)
class _Checker:
    source: str
    lines: _KeyLines

    def error(self, reason: str, *keys) -> QuotaError:
        line = self.lines.find(tuple(str(k) for k in keys))
        return QuotaError(reason, path=self.source, line=line)


def _check_document(data: Mapping, check: _Checker) -> QuotaSet:
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise check.error(f"unknown top-level key {key!r}{_did_you_mean(key, TOP_LEVEL_KEYS)}; "
                              f"a quota file holds [tenants.NAME] tables (and an optional [access] table)", key)
    tenants = data.get("tenants", {})
    if not isinstance(tenants, Mapping):
        raise check.error(f"'tenants' must be a table of [tenants.NAME] tables, got {_describe(tenants)}",
                          "tenants")
    if len(tenants) < MIN_TENANTS:
        raise check.error(f"no tenants: at least {MIN_TENANTS} [tenants.NAME] table is required", "tenants")
    if len(tenants) > MAX_TENANTS:
        first_over = list(tenants)[MAX_TENANTS]
        raise check.error(f"too many tenants: {len(tenants)}, at most {MAX_TENANTS} are allowed "
                          f"(tenant {first_over!r} is number {MAX_TENANTS + 1})", "tenants", first_over)
    checked = tuple(_check_tenant(name, body, check) for name, body in tenants.items())
    access = parse_access(data.get("access"), tuple(t.name for t in checked), check.error)
    return QuotaSet(checked, check.source, access)


def _check_tenant(name, body, check: _Checker) -> Tenant:
    if not isinstance(name, str) or not NAME.accepts(name):
        raise check.error(f"tenant {name!r}: bad name: a tenant name is {NAME.rule}", "tenants", name)
    if not isinstance(body, Mapping):
        raise check.error(f"tenant {name!r}: expected a table of fields, got {_describe(body)}", "tenants", name)
    for key, value in body.items():
        spec = FIELD_BY_NAME.get(key)
        if spec is None:
            raise check.error(f"tenant {name!r}: unknown field {key!r}{_did_you_mean(key, FIELD_BY_NAME)}",
                              "tenants", name, key)
        reason = _value_error(spec, value)
        if reason:
            raise check.error(f"tenant {name!r}: field {key!r}: {reason}", "tenants", name, key)
    for spec in FIELDS:
        if spec.required and spec.name not in body:
            raise check.error(f"tenant {name!r}: missing required field {spec.name!r}", "tenants", name)
    values = {attribute_name(spec.name): _normal(spec, body.get(spec.name, spec.default)) for spec in FIELDS}
    return Tenant(name=name, **values)


def _value_error(spec: FieldSpec, value) -> str | None:
    if spec.type == "sms":
        return _sms_error(value)
    if spec.type == "enum":
        choices = " or ".join(repr(v) for v in spec.values)
        if not isinstance(value, str):
            return f"expected {choices}, got {_describe(value)}"
        if value not in spec.values:
            return f"{value!r} is not {choices}{_did_you_mean(value, spec.values)}"
        return None
    if isinstance(value, bool) or not isinstance(value, Integral):
        return f"expected an integer, got {_describe(value)}"
    if not spec.minimum <= value <= spec.maximum:
        return f"{value} is out of range {spec.minimum}..{spec.maximum}"
    return None


def _sms_error(value) -> str | None:
    if value == ALL_SMS:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        return f"expected {ALL_SMS!r} or a list of SM numbers and \"A-B\" ranges, got {_describe(value)}"
    if not value:
        return f"the list names no SM; give {ALL_SMS!r} for every SM"
    for i, item in enumerate(value):
        if _sm_range(item) is None:
            return (f"item {i} ({_describe(item)}): expected an SM number or an \"A-B\" range with "
                    f"0 <= A <= B <= {MAX_SMS - 1}")
    return None


def _sm_range(item) -> range | None:
    """The SMs one list item names, or None when it is not a valid SM number or range."""
    if isinstance(item, Integral) and not isinstance(item, bool):
        lo = hi = int(item)
    elif isinstance(item, str) and re.fullmatch(r"\d+-\d+", item):
        lo, hi = map(int, item.split("-"))
    else:
        return None
    return range(lo, hi + 1) if 0 <= lo <= hi < MAX_SMS else None


def _normal(spec: FieldSpec, value):
    """A validated value as a Tenant holds it: integers as ``int`` (a dict
    may hold numpy integers), an SM list as its SM numbers, ascending."""
    if spec.type == "sms" and value != ALL_SMS:
        return tuple(sorted({sm for item in value for sm in _sm_range(item)}))
    return int(value) if isinstance(value, Integral) else value


def _did_you_mean(word, choices) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _describe(value) -> str:
    """A value with its TOML kind, for 'expected X, got Y' messages."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    for kind, name in ((str, "string"), (Integral, "integer"), (float, "float"), (Mapping, "table"),
                       (list, "array")):
        if isinstance(value, kind):
            return f"{name} {value!r}"
    return f"{type(value).__name__} {value!r}"
