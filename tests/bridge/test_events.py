"""Events from record words, and their text and JSON forms (exact output pinned)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from gbpfd.bridge import layout
from gbpfd.bridge.events import Event, event_to_json, format_event
from gbpfd.isa.abi import HOOKS

HOOK_NAMES = tuple(HOOKS)
TENANTS = ("infer", "train", "batch jobs")


def words(kind, time_ns=12_345_678_901, hook=-1, program=-1, tenant=-1, arg0=0, arg1=0, arg2=0) -> list[int]:
    record = [0] * len(layout.EVENT)
    for name, value in (("kind", kind), ("time_ns", time_ns), ("hook", hook), ("program", program),
                        ("tenant", tenant), ("arg0", arg0), ("arg1", arg1), ("arg2", arg2)):
        record[getattr(layout.EVENT, name)] = value
    return record


def test_event_fields_follow_the_layout_with_the_arg_words_gathered_in_args():
    names = [f.name for f in dataclasses.fields(Event)]
    assert names == [n for n in layout.EVENT._fields if not n.startswith("arg")] + ["args"]


def test_from_words_names_the_kind_and_its_args():
    event = Event.from_words(words(layout.KIND.fault, hook=1, program=3, tenant=0, arg0=3, arg1=7, arg2=12))
    assert event == Event(kind="fault", time_ns=12_345_678_901, hook=1, program=3, tenant=0,
                          args={"status": 3, "pc": 7, "steps": 12})


def test_unnamed_arg_words_are_left_out():
    assert Event.from_words(words(layout.KIND.trace, arg0=-5, arg1=9, arg2=9)).args == {"value": -5, "calls": 9}


def test_an_unknown_kind_is_kept_with_its_raw_args():
    event = Event.from_words(words(42, arg0=1, arg1=2, arg2=3))
    assert event.kind == "unknown(42)"
    assert event.args == {"arg0": 1, "arg1": 2, "arg2": 3}


def test_events_are_frozen_and_hashable():
    event = Event.from_words(words(layout.KIND.stopped, arg0=1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.kind = "fault"
    assert len({event, Event.from_words(words(layout.KIND.stopped, arg0=1))}) == 1


KIND_LINES = [
    (words(layout.KIND.fault, hook=1, program=3, tenant=0, arg0=3, arg1=7, arg2=12),
     '  12.345678 fault hook=cta_admit program=3 tenant=infer status="out of fuel" pc=7 steps=12'),
    (words(layout.KIND.fallback, hook=2, program=-1, arg0=4),
     "  12.345678 fallback hook=dma_tick from_program=4"),
    (words(layout.KIND.swapped, hook=0, program=9, arg0=17, arg1=1),
     "  12.345678 swapped hook=tick program=9 seq=17 slot=1"),
    (words(layout.KIND.quotas, arg0=5, arg1=18),
     "  12.345678 quotas epoch=5 seq=18"),
    (words(layout.KIND.trace, hook=3, program=2, tenant=2, arg0=-1, arg1=3),
     '  12.345678 trace hook=warp_throttle_tick program=2 tenant="batch jobs" value=-1 calls=3'),
    (words(layout.KIND.decision, hook=1, program=1, tenant=1, arg0=1, arg1=640),
     "  12.345678 decision hook=cta_admit program=1 tenant=train admit=1 wait_ns=640"),
    (words(layout.KIND.stopped, arg0=1),
     "  12.345678 stopped reason=1"),
    (words(layout.KIND.bad_command, arg0=layout.OP.unload, arg1=4),
     "  12.345678 bad_command op=unload seq=4"),
]


@pytest.mark.parametrize("record, line", KIND_LINES)
def test_format_event_prints_every_layout_kind(record, line):
    assert format_event(Event.from_words(record), hook_names=HOOK_NAMES, tenant_names=TENANTS) == line


def test_the_kind_lines_cover_every_event_kind():
    assert {record[layout.EVENT.kind] for record, _ in KIND_LINES} == {c.id for c in layout.EVENT_KINDS.values()}


@pytest.mark.parametrize("record, line", [
    (words(layout.KIND.fault, time_ns=0, hook=1, program=3, tenant=0, arg0=3, arg1=7, arg2=12),
     '   0.000000 fault hook=1 program=3 tenant=0 status="out of fuel" pc=7 steps=12'),
    (words(layout.KIND.fault, time_ns=1_700_000_000_123_456_789, hook=9, arg0=99),
     "1700000000.123456 fault hook=9 status=99 pc=0 steps=0"),
    (words(layout.KIND.bad_command, arg0=77, arg1=4),
     "  12.345678 bad_command op=77 seq=4"),
    (words(200, tenant=5, arg0=1, arg1=2, arg2=3),
     "  12.345678 unknown(200) tenant=5 arg0=1 arg1=2 arg2=3"),
])
def test_format_event_prints_numbers_where_it_has_no_name(record, line):
    assert format_event(Event.from_words(record)) == line


def test_event_to_json_gives_the_layout_words_by_name():
    event = Event.from_words(words(layout.KIND.fault, hook=1, program=3, tenant=2, arg0=3, arg1=7, arg2=12))
    assert event_to_json(event, hook_names=HOOK_NAMES, tenant_names=TENANTS) == {
        "kind": "fault", "time_ns": 12_345_678_901, "hook": "cta_admit", "program": 3, "tenant": "batch jobs",
        "args": {"status": 3, "pc": 7, "steps": 12}}
    assert json.dumps(event_to_json(Event.from_words(words(layout.KIND.quotas, arg0=5, arg1=18)))) == (
        '{"kind": "quotas", "time_ns": 12345678901, "hook": null, "program": null, "tenant": null, '
        '"args": {"epoch": 5, "seq": 18}}')


def test_event_to_json_keeps_an_unknown_kind():
    assert event_to_json(Event.from_words(words(9, time_ns=5, arg2=-3))) == {
        "kind": "unknown(9)", "time_ns": 5, "hook": None, "program": None, "tenant": None,
        "args": {"arg0": 0, "arg1": 0, "arg2": -3}}
