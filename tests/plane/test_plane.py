"""The Plane API (gbpfd.plane.plane) on the simulated device: lifecycle,
loading policies live, publishing quotas, and the counters, events and
health it reads back."""
from __future__ import annotations

import dataclasses
import re
import time
from types import SimpleNamespace

import numpy as np
import pytest

from gbpfd.bridge.events import Event
from gbpfd.bridge.layout import HEADER, HEADER_WORDS, HIST_BUCKETS, MAGIC
from gbpfd.device import state as S
from gbpfd.errors import LoadError
from gbpfd.isa.abi import RECORDS
from gbpfd.isa.asm import assemble
from gbpfd.plane.gpu_probe import gpu_missing_reason
from gbpfd.plane.options import PlaneOptions
from gbpfd.plane.plane import Health, LoadedProgram, Plane, PlaneError, VerifyError
from gbpfd.policies.catalog import BASELINE_HOOKS, policy_path
from gbpfd.quotas import QuotaError, pack_quotas

DEFER_ALL = assemble(".name defer_all\n.hook cta_admit\nmov %r0, 0\nexit\n")
ADMIT_ALL = assemble(".name admit_all\n.hook cta_admit\nmov %r0, 1\nexit\n")
OUT_OF_BOUNDS = assemble(".name oob\n.hook cta_admit\nldxdw %r0, [%r1+4096]\nexit\n")
ADMIT_HOOK = S.HOOK_NAMES.index("cta_admit")
COUNTER_FIELDS = [f.name for f in RECORDS["counters"].fields]
NOT_RUNNING = re.escape("the plane is not running; call start() or use it in a with block")


@pytest.fixture
def plane():
    with Plane(backend="sim") as p:
        yield p


def decide(plane, tenant_name: str) -> int:
    """Post one admission request for the tenant on the device; the decision it sees."""
    d = plane.device
    seen = []
    assert d.post(plane.quotas.index(tenant_name), lambda decision, when: seen.append(decision))
    assert d.run_while(lambda: not seen, 1_000_000)
    return seen[0]


def active_slot(plane, hook: str = "cta_admit") -> int:
    return int(plane.arrays.ctl[S.ACTIVE + S.HOOK_NAMES.index(hook)])


# -------------------------------------------------------------- lifecycle

def test_context_manager_starts_and_stops():
    with Plane(backend="sim") as plane:
        h = plane.health()
        assert h.ready and not h.stalled
        assert plane.arrays.host[HEADER.magic] == MAGIC
    assert plane.stop() == "not running"
    assert not plane.health().stalled
    assert "stopped" in [e.kind for e in plane.events()]
    with pytest.raises(PlaneError, match=rf"^Plane\.load: {NOT_RUNNING}$"):
        plane.load(ADMIT_ALL)


def test_stop_returns_why_it_ended():
    plane = Plane(backend="sim").start()
    assert plane.stop() == "stop command"
    assert plane.arrays.host[HEADER.exit_reason] == 1


def test_start_twice_is_refused(plane):
    with pytest.raises(PlaneError, match=r"^Plane\.start: the plane is already running$"):
        plane.start()


def test_sim_backend_says_it_is_simulated(plane):
    assert plane.backend_name == "sim"
    assert plane.simulated
    assert plane.backend_reason == "asked for the simulated device"
    assert plane.health().simulated and plane.health().backend == "sim"


def test_a_bad_backend_name_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"^Plane: backend must be one of auto, cuda, sim; got 'gpu'$"):
        Plane(backend="gpu")


@pytest.mark.skipif(gpu_missing_reason() is None, reason="a CUDA GPU is present")
def test_auto_falls_back_to_the_simulated_device_saying_why():
    plane = Plane(backend="auto")
    assert plane.backend_name == "sim"
    assert plane.backend_reason == f"no GPU ({gpu_missing_reason()}): using the simulated device"


@pytest.mark.skipif(gpu_missing_reason() is None, reason="a CUDA GPU is present")
def test_cuda_without_a_gpu_is_refused_saying_why():
    with pytest.raises(PlaneError, match=r"^backend='cuda' needs a CUDA GPU: "):
        Plane(backend="cuda")


@pytest.mark.parametrize("method,args", [("load", (ADMIT_ALL,)), ("unload", ("cta_admit",)),
                                         ("set_quotas", ({"tenants": {}},))])
def test_using_the_plane_before_start_is_refused(method, args):
    plane = Plane(backend="sim")
    with pytest.raises(PlaneError, match=rf"^Plane\.{method}: {NOT_RUNNING}$"):
        getattr(plane, method)(*args)


def test_start_installs_the_baseline_in_every_baseline_hook(plane):
    programs = plane.programs()
    assert sorted(p.hook for p in programs.values()) == sorted(BASELINE_HOOKS)
    for p in programs.values():
        assert p.slot == S.BASELINE_SLOT and p.name.endswith("[c]")
        assert active_slot(plane, p.hook) == S.BASELINE_SLOT
    assert active_slot(plane, "therm_tick") == S.NO_PROGRAM


def test_baseline_form_asm():
    with Plane(backend="sim", options=PlaneOptions(baseline_form="asm")) as plane:
        assert all(p.name.endswith("[asm]") for p in plane.programs().values())
        assert plane.baseline_form == "asm"


def test_without_pyelftools_the_plane_starts_on_the_assembler_baseline(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "elftools" else real(name, *a))
    import builtins
    real_import = builtins.__import__

    def no_elftools(name, *args, **kwargs):
        if name.split(".")[0] == "elftools":
            raise ModuleNotFoundError("No module named 'elftools'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_elftools)
    with Plane(backend="sim") as plane:
        assert plane.baseline_form == "asm"
        assert sorted(p.hook for p in plane.programs().values()) == sorted(BASELINE_HOOKS)
        assert all(p.name.endswith("[asm]") for p in plane.programs().values())


# ---------------------------------------------------------------- loading

def test_load_swaps_in_live_alternating_slots(plane):
    assert decide(plane, "train") == S.ADMIT  # the baseline
    first = plane.load(DEFER_ALL)
    assert (first.hook, first.slot, first.name, first.insns) == ("cta_admit", 0, "defer_all", 2)
    assert active_slot(plane) == 0
    assert decide(plane, "train") == S.DEFER
    second = plane.load(ADMIT_ALL)
    assert second.slot == 1 and active_slot(plane) == 1 and second.id > first.id
    assert decide(plane, "train") == S.ADMIT
    assert plane.load(DEFER_ALL).slot == 0
    swapped = [e for e in plane.events() if e.kind == "swapped"]
    assert [e.args["slot"] for e in swapped] == [0, 1, 0]
    assert plane.programs()[second.id] == dataclasses.replace(second, active=False)   # swapped out, still held


def test_a_rejected_program_changes_nothing(plane):
    plane.load(DEFER_ALL)
    code, active = plane.arrays.code.copy(), plane.arrays.ctl[S.ACTIVE:S.ACTIVE + S.NHOOKS].copy()
    programs = plane.programs()
    with pytest.raises(VerifyError) as info:
        plane.load(OUT_OF_BOUNDS)
    assert str(info.value).startswith("oob: rejected by the verifier for hook 'cta_admit':\n")
    assert info.value.log[0].startswith("0: (79) ldxdw %r0, [%r1+4096]: invalid ctx access at offset 4096")
    assert info.value.log[0] in str(info.value)
    np.testing.assert_array_equal(plane.arrays.code, code)
    np.testing.assert_array_equal(plane.arrays.ctl[S.ACTIVE:S.ACTIVE + S.NHOOKS], active)
    assert plane.programs() == programs
    assert decide(plane, "train") == S.DEFER  # still the old policy
    # and the next accepted load goes to the idle slot, not over the running program
    assert plane.load(ADMIT_ALL).slot == 1


@pytest.mark.parametrize("path", [policy_path("tenant_cap.s"), str(policy_path("tenant_cap.s"))],
                         ids=["Path", "str"])
def test_load_accepts_an_assembler_file(plane, path):
    loaded = plane.load(path)
    assert (loaded.hook, loaded.name, loaded.slot) == ("cta_admit", "tenant_cap", 0)
    assert loaded.cost > 0
    assert plane.arrays.ctl[S.PROGRAM_ID + ADMIT_HOOK * S.NPROG_SLOTS + 0] == loaded.id


def test_load_accepts_a_clang_object_with_a_section(plane):
    loaded = plane.load(policy_path("baseline.o"), section="cta_admit")
    assert (loaded.hook, loaded.name) == ("cta_admit", "baseline_admit")
    assert active_slot(plane) == 0


def test_load_of_an_object_with_several_sections_needs_one(plane):
    with pytest.raises(LoadError, match=r"several program sections \(tick, cta_admit, dma_tick, "
                                        r"warp_throttle_tick, sm_tick\): choose one"):
        plane.load(policy_path("baseline.o"))


def test_load_accepts_raw_bytes_with_a_hook(plane):
    loaded = plane.load(DEFER_ALL.to_bytes(), hook="cta_admit")
    assert (loaded.hook, loaded.insns) == ("cta_admit", 2)
    assert decide(plane, "train") == S.DEFER


def test_load_needs_a_hook(plane):
    with pytest.raises(LoadError, match=r"^prog: no hook given and none declared; pass hook=$"):
        plane.load(assemble("mov %r0, 0\nexit\n"))


def test_load_refuses_an_unknown_hook(plane):
    with pytest.raises(LoadError, match=r"^hook 'nope' is not one of tick, cta_admit, dma_tick, "):
        plane.load(ADMIT_ALL, "nope")


def test_load_refuses_what_is_not_a_program(plane):
    with pytest.raises(TypeError, match=r"^Plane\.load: program must be a Program, a path or bytes, got int$"):
        plane.load(42)


def test_unload_returns_to_the_baseline(plane):
    plane.load(DEFER_ALL)
    plane.unload("cta_admit")
    assert active_slot(plane) == S.BASELINE_SLOT
    assert decide(plane, "train") == S.ADMIT
    assert [e.args["slot"] for e in plane.events() if e.kind == "swapped"] == [0, S.BASELINE_SLOT]


# ----------------------------------------------------------------- quotas

def test_set_quotas_refuses_an_invalid_dict_and_keeps_the_epoch(plane):
    quotas = plane.quotas
    quota_words = plane.arrays.flat[S.QUOTA_WORD:S.QUOTA_WORD + S.QUOTA_BYTES // 8].copy()
    with pytest.raises(QuotaError, match=r"^<dict>: tenant 'infer': field 'class': 'nope' is not"):
        plane.set_quotas({"tenants": {"infer": {"class": "nope", "weight": 1, "max_ctas": 1}}})
    plane.device.run_until(plane.device.now + 100_000)
    assert plane.arrays.ctl[S.META.epoch] == 1
    assert plane.health().epoch == 1
    assert plane.quotas is quotas
    np.testing.assert_array_equal(plane.arrays.flat[S.QUOTA_WORD:S.QUOTA_WORD + S.QUOTA_BYTES // 8], quota_words)


def test_set_quotas_refuses_renamed_tenants(plane):
    with pytest.raises(PlaneError, match=r"^set_quotas: tenants keep their index while the plane runs; had "
                                         r"infer, train, batch, got train$"):
        plane.set_quotas({"tenants": {"train": {"class": "best-effort", "weight": 1, "max_ctas": 1}}})
    assert plane.arrays.ctl[S.META.epoch] == 1


def test_set_quotas_publishes_a_new_epoch_the_device_adopts(plane):
    plane.events()
    new = {"tenants": {"infer": {"class": "latency-critical", "weight": 1, "max_ctas": 4},
                       "train": {"class": "best-effort", "weight": 1, "max_ctas": 10},
                       "batch": {"class": "best-effort", "weight": 1, "max_ctas": 10},
                       "extra": {"class": "best-effort", "weight": 2, "max_ctas": 10}}}
    epoch = plane.set_quotas(new)
    assert epoch == 2
    assert plane.arrays.ctl[S.META.epoch] == 2 and plane.arrays.ctl[S.META.ntenants] == 4
    assert plane.health().epoch == 2
    assert plane.quotas.names == ("infer", "train", "batch", "extra")
    np.testing.assert_array_equal(plane.arrays.flat[S.QUOTA_WORD:S.QUOTA_WORD + S.QUOTA_BYTES // 8],
                                  pack_quotas(plane.quotas))
    assert [(e.kind, e.args["epoch"]) for e in plane.events() if e.kind == "quotas"] == [("quotas", 2)]
    assert list(plane.counters()) == ["infer", "train", "batch", "extra"]


def test_publish_quotas_returns_before_the_device_adopts_and_await_quotas_waits(plane):
    plane.events()
    before = time.perf_counter_ns()
    publication = plane.publish_quotas({"tenants": {"infer": {"class": "latency-critical", "weight": 1,
                                                             "max_ctas": 2}}})
    assert publication.epoch == 2 and before < publication.written_ns < time.perf_counter_ns()
    assert plane.arrays.ctl[S.META.epoch] == 1, "adopted only once the device has run"
    assert plane.await_quotas(publication) == 2
    assert plane.arrays.ctl[S.META.epoch] == 2
    assert [e.args["seq"] for e in plane.events() if e.kind == "quotas"] == [publication.seq]


def test_cta_slots_option_sets_total_slots():
    with Plane(backend="sim", options=PlaneOptions(cta_slots=100)) as plane:
        assert plane.total_slots == 100
        assert plane.arrays.ctl[S.META.total_slots] == 100


@pytest.mark.parametrize("field,value,message", [
    ("wait_bound_us", 0, "PlaneOptions.wait_bound_us must be a positive number, got 0"),
    ("ack_timeout_s", -1.0, "PlaneOptions.ack_timeout_s must be a positive number, got -1.0"),
    ("slots_per_sm", 1.5, "PlaneOptions.slots_per_sm must be a positive integer, got 1.5"),
    ("cta_slots", 0, "PlaneOptions.cta_slots must be a positive integer, got 0"),
    ("sample_every", -1, "PlaneOptions.sample_every must be an integer >= 0, got -1"),
    ("baseline_form", "rust", "PlaneOptions.baseline_form must be 'auto', 'c' or 'asm', got 'rust'"),
])
def test_plane_options_are_checked(field, value, message):
    with pytest.raises(ValueError) as info:
        PlaneOptions(**{field: value})
    assert str(info.value) == message


# ---------------------------------------------------------------- reading

def test_counters_shape(plane):
    d = plane.device
    d.launch(plane.quotas.index("train"), blocks=50, block_ns=10_000, mode="gate")
    d.run_until(d.now + 1_000_000)
    counters = plane.counters()
    assert list(counters) == list(plane.quotas.names)
    for row in counters.values():
        assert list(row) == COUNTER_FIELDS + ["latency_histogram"]
        assert all(type(row[f]) is int for f in COUNTER_FIELDS)
        assert len(row["latency_histogram"]) == HIST_BUCKETS
        assert all(type(n) is int for n in row["latency_histogram"])
    assert counters["train"]["admitted"] + counters["train"]["bypassed"] == 50
    assert counters["infer"]["admitted"] == 0


def test_events_are_drained_oldest_first(plane):
    events = plane.events()
    assert all(isinstance(e, Event) for e in events)
    assert [(e.kind, e.args) for e in events][:1] == [("quotas", {"epoch": 1, "seq": 1})]
    assert plane.events() == []
    plane.load(DEFER_ALL)
    plane.unload("cta_admit")
    events = plane.events()
    assert [e.kind for e in events] == ["swapped", "swapped"]
    assert events[0].args["seq"] < events[1].args["seq"]
    assert events[0].time_ns <= events[1].time_ns


def test_health_shape(plane):
    plane.device.run_until(plane.device.now + 200_000)
    h = plane.health()
    assert isinstance(h, Health)
    assert (h.backend, h.simulated, h.ready, h.stalled, h.epoch) == ("sim", True, True, False, 1)
    assert h.loops > 0 and h.ticks >= 9  # 200 us of 20 us ticks
    assert 0 <= h.heartbeat_age_ns <= plane.options.periods.tick_ns
    assert h.loop_period_ns > 0
    assert (h.event_drops, h.command_drops, h.torn_retries, h.bypassed) == (0, 0, 0, 0)
    for f in dataclasses.fields(h):
        assert isinstance(getattr(h, f.name), (int, float, str, bool)), f.name


def test_plane_stats_name_every_header_word(plane):
    stats = plane.plane_stats()
    assert list(stats) == [w.name for w in HEADER_WORDS]
    assert stats["ready"] == 1 and stats["epoch"] == 1


def test_loaded_program_records(plane):
    loaded = plane.load(policy_path("tenant_cap.s"))
    assert isinstance(loaded, LoadedProgram)
    assert loaded == plane.programs()[loaded.id]
    assert loaded.id not in (p.id for p in plane.programs().values() if p.slot == S.BASELINE_SLOT)


def test_unload_of_an_unknown_hook_is_refused_naming_the_hooks(plane):
    with pytest.raises(LoadError, match=r"^hook 'cta_admitt' is not one of tick, cta_admit, "):
        plane.unload("cta_admitt")
    assert active_slot(plane) == S.BASELINE_SLOT


def test_programs_says_what_each_slot_holds_and_which_is_active(plane):
    def listing():
        return [(p.hook, p.slot, p.name, p.active) for p in plane.programs().values() if p.hook == "cta_admit"]
    baseline = listing()
    assert len(baseline) == 1 and baseline[0][1] == S.BASELINE_SLOT and baseline[0][3] is True
    plane.load(DEFER_ALL)
    plane.load(ADMIT_ALL)
    held = {p.slot: (p.name, p.active) for p in plane.programs().values() if p.hook == "cta_admit"}
    assert held == {S.BASELINE_SLOT: (baseline[0][2], False), 0: ("defer_all", False), 1: ("admit_all", True)}
    third = plane.load(DEFER_ALL)                      # back into slot 0: it replaces the first defer_all
    held = {p.slot: (p.id, p.active) for p in plane.programs().values() if p.hook == "cta_admit"}
    assert held[0] == (third.id, True) and held[1][1] is False and len(held) == 3
    plane.unload("cta_admit")
    assert listing() == [(*baseline[0][:3], True)]


def test_a_fallback_after_a_fault_marks_the_baseline_active_again(plane, monkeypatch):
    # let a program the verifier refuses through, to see the device's own guard
    monkeypatch.setattr(plane, "_check", lambda program, hook: SimpleNamespace(accepted=True, log=[], cost=0))
    faulty = plane.load(OUT_OF_BOUNDS)
    assert plane.programs()[faulty.id].active
    decide(plane, "train")
    plane.device.run_until(plane.device.now + plane.options.periods.tick_ns)  # the next loop forwards its events
    programs = plane.programs()
    assert not programs[faulty.id].active
    assert [p.slot for p in programs.values() if p.hook == "cta_admit" and p.active] == [S.BASELINE_SLOT]


def test_a_loaded_program_has_a_tag_of_its_bytes_and_a_load_time(plane):
    import hashlib
    loaded = plane.load(ADMIT_ALL)
    assert loaded.tag == hashlib.sha256(ADMIT_ALL.to_bytes()).hexdigest()[:16]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", loaded.loaded_at)


def test_program_code_returns_what_was_loaded_and_names_the_ids_it_knows(plane):
    loaded = plane.load(ADMIT_ALL)
    assert plane.program_code(loaded.id).to_bytes() == ADMIT_ALL.to_bytes()
    with pytest.raises(PlaneError, match=r"^no program 999 is loaded; Plane.programs\(\) lists \d"):
        plane.program_code(999)


def test_gauges_say_what_each_tenant_has_in_flight(plane):
    d = plane.device
    d.run_until(d.now + 4 * plane.options.periods.tick_ns)
    assert plane.gauges()["train"]["running"] == 0
    d.launch(plane.quotas.index("train"), blocks=10_000, block_ns=1_000_000, mode="persistent")
    d.run_until(d.now + 2_000_000)
    gauges = plane.gauges()
    assert gauges["train"]["running"] > 0 and gauges["batch"]["running"] == 0
    assert gauges["train"]["workers"] >= gauges["train"]["running"] and gauges["batch"]["workers"] == 0
    assert set(gauges["infer"]) == {"running", "queued", "tokens", "workers"}
