"""Device events as Python values, as one line of text and as JSON.

``Event`` is generated from ``[records.event]`` in ``host_bridge/layout.toml``:
one field per event word, in layout order, except that ``kind`` holds the
kind's name (``"unknown(N)"`` for an id the layout does not define) and the
kind-specific words (``arg0``...) become ``args``, a dict keyed by the names
in the kind's ``args`` list.  Unnamed arg words are left out; an unknown
kind keeps all of them, under the words' own names.  The other words (hook,
program, tenant) say what the event is about; -1 there means "none".
"""
from __future__ import annotations

import json
from dataclasses import field, make_dataclass

from gbpfd.bridge import layout
from gbpfd.vm.status import REASONS

KIND_WORD = layout.EVENT_WORDS[layout.EVENT.kind]
TIME_WORD = layout.EVENT_WORDS[layout.EVENT.time_ns]
ARG_WORDS = tuple(w for w in layout.EVENT_WORDS if w.name.startswith("arg"))
SCALAR_WORDS = tuple(w for w in layout.EVENT_WORDS if w not in ARG_WORDS)
SUBJECT_WORDS = tuple(w for w in SCALAR_WORDS if w not in (KIND_WORD, TIME_WORD))
ARGS_FIELD = "args"
#: a subject word holding this names nothing
NO_SUBJECT = -1

_KIND_NAMES = {code.id: code.name for code in layout.EVENT_KINDS.values()}
_SCALAR_INDEXES = tuple(w.index for w in SCALAR_WORDS)
_KIND_POSITION = SCALAR_WORDS.index(KIND_WORD)
# kind id -> (arg name, word index) of its named args; drain builds many events, so once here
_NAMED_ARGS = {code.id: tuple((name, w.index) for name, w in zip(code.args, ARG_WORDS) if name)
               for code in layout.EVENT_KINDS.values()}
_RAW_ARGS = tuple((w.name, w.index) for w in ARG_WORDS)
OP_NAMES = {code.id: code.name for code in layout.COMMAND_OPS.values()}

#: args whose number stands for a name: arg name -> number -> text
ARG_DECODERS = {
    "status": REASONS,
    "op": OP_NAMES,
}

for _code in layout.EVENT_KINDS.values():
    if len(_code.args) != len(ARG_WORDS):
        raise ValueError(f"host_bridge/layout.toml: event kind {_code.name} names {len(_code.args)} args, "
                         f"the event record has {len(ARG_WORDS)} arg words")
for _name in ARG_DECODERS:
    if not any(_name in code.args for code in layout.EVENT_KINDS.values()):
        raise ValueError(f"host_bridge/layout.toml: no event kind has an arg named {_name!r} any more; "
                         f"gbpfd/bridge/events.py decodes one")


def _kind_name(kind_id: int) -> str:
    return _KIND_NAMES.get(kind_id) or f"unknown({kind_id})"


def _from_words(cls, words):
    """The event in one record's words (any int sequence in layout order)."""
    kind_id = words[KIND_WORD.index]
    scalars = [words[i] for i in _SCALAR_INDEXES]
    scalars[_KIND_POSITION] = _kind_name(kind_id)
    args = {name: words[i] for name, i in _NAMED_ARGS.get(kind_id, _RAW_ARGS)}
    return cls(*scalars, args)


Event = make_dataclass(
    "Event",
    [(w.name, str if w is KIND_WORD else int) for w in SCALAR_WORDS]
    + [(ARGS_FIELD, dict, field(hash=False))],
    frozen=True,
    namespace={"from_words": classmethod(_from_words), "__doc__": "One device event (fields: see the module).",
               "__module__": __name__},
)


def _subjects(event, hook_names, tenant_names) -> dict:
    """Subject word name -> its name from the given names, else its number; None for -1."""
    names_by_word = {layout.EVENT.hook: hook_names, layout.EVENT.tenant: tenant_names}
    subjects = {}
    for word in SUBJECT_WORDS:
        value = getattr(event, word.name)
        names = names_by_word.get(word.index, ())
        if value == NO_SUBJECT:
            subjects[word.name] = None
        else:
            subjects[word.name] = names[value] if 0 <= value < len(names) else value
    return subjects


def _logfmt(value) -> str:
    text = str(value)
    if not text or any(c in text for c in ' ="'):
        return json.dumps(text)
    return text


def _seconds(time_ns: int) -> str:
    return f"{time_ns // 1_000_000_000:>4}.{time_ns % 1_000_000_000 // 1000:06d}"


def format_event(event, *, hook_names=(), tenant_names=()) -> str:
    """One line: seconds, kind, subjects other than -1, then the named args.

    ``hook_names`` / ``tenant_names`` name hook and tenant indexes; numbers
    outside them print as numbers.  Status codes and command ops print as
    their names.
    """
    parts = [_seconds(event.time_ns), event.kind]
    parts += [f"{name}={_logfmt(value)}" for name, value in _subjects(event, hook_names, tenant_names).items()
              if value is not None]
    for name, value in event.args.items():
        parts.append(f"{name}={_logfmt(ARG_DECODERS.get(name, {}).get(value, value))}")
    return " ".join(parts)


def event_to_json(event, *, hook_names=(), tenant_names=()) -> dict:
    """A JSON-ready dict: the layout's words by name (subjects named as in
    ``format_event``, None for -1) and ``args`` with their numbers."""
    out = {w.name: getattr(event, w.name) for w in SCALAR_WORDS}
    out.update(_subjects(event, hook_names, tenant_names))
    out[ARGS_FIELD] = dict(event.args)
    return out
