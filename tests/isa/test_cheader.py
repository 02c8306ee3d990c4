"""The generated C header: committed copy, contents derived from the ABI, and it compiles."""
import re
import shutil
import subprocess

import pytest

from gbpfd.isa.abi import HELPERS, HOOKS, LIMITS, MAP_KINDS, RECORDS, Field
from gbpfd.isa.cheader import HEADER_PATH, _struct, render_header

CLANG = shutil.which("clang-14") or shutil.which("clang")


def test_committed_header_matches_generator():
    assert HEADER_PATH.read_text() == render_header(), "run `python -m gbpfd.isa.cheader`"


def test_every_hook_context_field_is_declared_with_its_offset():
    text = render_header()
    for hook in HOOKS.values():
        for field in hook.ctx:
            assert (f"__builtin_offsetof(struct gbpfd_{hook.name}_ctx, {field.name}) == {field.offset} "
                    f"&& sizeof(((struct gbpfd_{hook.name}_ctx *)0)->{field.name}) == {field.size}") in text


def test_helpers_are_declared_with_their_abi_ids():
    declared = dict(re.findall(r"\(\*gbpfd_(\w+)\)\(.*\) = \(void \*\) (\d+);", render_header()))
    assert {name: int(i) for name, i in declared.items()} == {h.name: h.id for h in HELPERS.values()}


def test_constants_come_from_the_abi():
    text = render_header()
    assert f"#define GBPFD_MAX_TENANTS {LIMITS.max_tenants}\n" in text
    for kind in MAP_KINDS.values():
        assert f"#define GBPFD_MAP_{kind.name.upper()} {kind.id} " in text
    for number, field in enumerate(RECORDS["quota"].fields):
        assert f"#define GBPFD_QUOTA_{field.name.upper()} {number}\n" in text


def test_gaps_and_tail_get_padding_members():
    lines = _struct("t", (Field("a", 0, 4, "x"), Field("b", 8, 8, "y")), 24)
    assert lines[1:5] == ["\t__u32 a; /* read-only: x */", "\t__u8 __pad4[4];",
                          "\t__u64 b; /* read-only: y */", "\t__u8 __reserved16[8];"]
    assert "_Static_assert(sizeof(struct t) == 24, \"t size\");" in lines


def test_header_compiles_standalone_and_its_asserts_hold(tmp_path):
    if not CLANG:
        pytest.skip("needs clang-14 or clang to compile the header")
    probe = tmp_path / "probe.c"
    probe.write_text('#include "gbpfd.h"\nSEC("tick") int p(struct gbpfd_tick_ctx *c) { return 0; }\n')
    result = subprocess.run([CLANG, "-O2", "-target", "bpf", "-nostdinc", "-I", str(HEADER_PATH.parent),
                             "-c", str(probe), "-o", str(tmp_path / "probe.o")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_wrong_offset_fails_to_compile(tmp_path):
    """The asserts are live: a header whose struct disagrees with its assert is refused."""
    if not CLANG:
        pytest.skip("needs clang-14 or clang to compile the header")
    broken = render_header().replace("\t__u64 now_ns;", "\t__u32 now_ns;", 1)
    (tmp_path / "gbpfd.h").write_text(broken)
    probe = tmp_path / "probe.c"
    probe.write_text('#include "gbpfd.h"\n')
    result = subprocess.run([CLANG, "-target", "bpf", "-I", str(tmp_path), "-c", str(probe), "-o",
                             str(tmp_path / "probe.o")], capture_output=True, text=True)
    assert result.returncode != 0
    assert '"gbpfd_tick_ctx.now_ns layout"' in result.stderr
