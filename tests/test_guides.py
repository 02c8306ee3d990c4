"""The hand-written guides restate tables that come from data, and show
policies; both are checked here.

A table sits between ``<!-- begin NAME -->`` and ``<!-- end NAME -->``; when
one fails, the message holds the table to paste in its place.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gbpfd.isa.abi import HOOKS, LIMITS
from gbpfd.isa.asm import assemble
from gbpfd.isa.elf import load_elf
from gbpfd.quotas.schema import FIELDS, MAX_TENANTS, MIN_TENANTS, NAME
from gbpfd.verifier import verify

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CLANG = shutil.which("clang-14") or shutil.which("clang")


def render_quota_fields() -> str:
    rows = [f"A quota file holds {MIN_TENANTS} to {MAX_TENANTS} `[tenants.NAME]` tables. NAME is {NAME.rule}.\n\n",
            "| field | type | required | allowed values | meaning |\n|---|---|---|---|---|\n"]
    for spec in FIELDS:
        if spec.type == "enum":
            allowed = ", ".join(f"`\"{word}\"` ({number})" for word, number in spec.values.items())
        elif spec.type == "sms":
            allowed = f"`\"all\"`, or a list of SM numbers 0 to {LIMITS.max_sms - 1} and `\"A-B\"` ranges"
        else:
            allowed = f"{spec.minimum} to {spec.maximum}"
        required = "yes" if spec.required else f"no, default `{spec.default}`"
        rows.append(f"| `{spec.name}` | {spec.type} | {required} | {allowed} | {spec.doc} |\n")
    return "".join(rows)


def render_hooks() -> str:
    rows = [f"Limits for every program: {LIMITS.max_insns} instruction slots, a {LIMITS.stack_bytes}-byte "
            f"stack per frame, {LIMITS.max_call_depth} frames of local calls, {LIMITS.max_maps} maps; "
            f"{LIMITS.max_tenants} tenants.\n\n",
            "| hook | when it runs | r0 at exit | budget (instructions) | ctx fields it may write |\n|---|---|---|---|---|\n"]
    for hook in HOOKS.values():
        written = ", ".join(f"`{f.name}`" for f in hook.ctx if f.access == "rw")
        rows.append(f"| `{hook.name}` | {hook.doc} | {hook.ret_doc} | {hook.budget} | {written} |\n")
    return "".join(rows)


def block(doc: str, name: str) -> str:
    text = (DOCS / doc).read_text()
    found = re.search(rf"<!-- begin {name} -->\n\n(.*?)\n<!-- end {name} -->", text, re.S)
    assert found, f"docs/{doc} has no <!-- begin {name} --> ... <!-- end {name} --> block"
    return found.group(1)


@pytest.mark.parametrize("doc, name, render", [
    ("quotas.md", "quota-fields", render_quota_fields),
    ("writing-policies.md", "hooks", render_hooks),
])
def test_table_matches_its_data(doc, name, render):
    expected = render()
    assert block(doc, name) == expected, f"docs/{doc} block {name} is stale; it should read:\n\n{expected}"


def fences(doc: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", (DOCS / doc).read_text(), re.S)


@pytest.mark.parametrize("text", fences("writing-policies.md", "asm"))
def test_assembler_policies_verify(text):
    verdict = verify(assemble(text, "writing-policies.md"))
    assert verdict.accepted, verdict.log


@pytest.mark.skipif(CLANG is None, reason="needs clang-14 or clang to compile the C policy")
@pytest.mark.parametrize("text", fences("writing-policies.md", "c"))
def test_c_policies_compile_and_verify(text, tmp_path):
    source, obj = tmp_path / "policy.bpf.c", tmp_path / "policy.o"
    source.write_text(text)
    subprocess.run([CLANG, "-O2", "-g", "-target", "bpf", "-I", str(ROOT / "gbpfd" / "policies"),
                    "-c", str(source), "-o", str(obj)], check=True, capture_output=True)
    verdict = verify(load_elf(obj))
    assert verdict.accepted, verdict.log


def test_the_guides_show_policies():
    assert fences("writing-policies.md", "asm") and fences("writing-policies.md", "c")
