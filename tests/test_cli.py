"""The CLI contract: exit codes, output formats, one-line errors for bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gbpfd.cli import DESCRIPTION, EXIT_CODES, main

POLICIES = Path(__file__).resolve().parents[1] / "gbpfd" / "policies"


def run_cli(capsys, *argv, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        import io
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(path)


def test_verify_accepts_example_and_prints_cost(capsys):
    code, out, err = run_cli(capsys, "verify", str(POLICIES / "tenant_cap.s"))
    assert code == 0, err
    assert out.startswith("accepted for cta_admit:")
    assert "worst-case path" in out


def test_verify_rejects_with_log_on_stderr(tmp_path, capsys):
    src = write(tmp_path, "bad.s", ".hook cta_admit\nmov %r0, 2\nexit\n")
    code, out, err = run_cli(capsys, "verify", src)
    assert code == 1
    assert out == ""
    assert "R0" in err and "[0, 1]" in err


@pytest.mark.parametrize("name,data,message", [
    ("ragged.bin", b"\x95" + bytes(8), "ragged.bin: ragged byte count: 9 bytes is not a multiple of 8"),
    ("empty.bin", b"", "empty.bin: empty program (0 bytes)"),
    ("prog.txt", "exit\n", "prog.txt: unknown file type '.txt'"),
    ("bad.s", "mov %r0, 1\naddd %r0, 1\nexit\n", "bad.s:2:1: unknown mnemonic 'addd'"),
    ("notelf.o", b"\x7fELF" + b"\x00" * 10, "notelf.o: "),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, name, data, message):
    path = write(tmp_path, name, data)
    code, out, err = run_cli(capsys, "verify", path, "--hook", "tick")
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err


def test_missing_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "disasm", str(tmp_path / "nope.s"))
    assert code == 2
    assert "nope.s: cannot read: No such file or directory" in err


def test_unknown_hook_is_named(capsys):
    code, _, err = run_cli(capsys, "verify", str(POLICIES / "admit_all.bin"), "--hook", "bogus")
    assert code == 2
    assert "unknown hook 'bogus'" in err


def test_raw_bin_verifies_with_hook(capsys):
    code, out, err = run_cli(capsys, "verify", str(POLICIES / "admit_all.bin"), "--hook", "cta_admit")
    assert code == 0, err


def test_asm_then_disasm_round_trip(tmp_path, capsys):
    out_bin = tmp_path / "admit_all.bin"
    code, _, _ = run_cli(capsys, "asm", str(POLICIES / "admit_all.s"), "-o", str(out_bin))
    assert code == 0
    assert out_bin.read_bytes() == (POLICIES / "admit_all.bin").read_bytes()
    code, text, _ = run_cli(capsys, "disasm", str(out_bin))
    assert code == 0
    assert "exit" in text


@pytest.mark.parametrize("vm", ["reference", "fast"])
def test_exec_conformance_protocol(monkeypatch, capsys, vm):
    # ldxw r0, [r1+0]; add r0, r2; exit  -> first word of memory + its length
    program = "61 10 00 00 00 00 00 00 0f 20 00 00 00 00 00 00 95 00 00 00 00 00 00 00"
    code, out, err = run_cli(capsys, "exec", "05000000aabbccdd", "--vm", vm,
                             stdin=program, monkeypatch=monkeypatch)
    assert code == 0, err
    assert out == "d\n"


@pytest.mark.parametrize("vm", ["reference", "fast"])
def test_exec_helper_5_returns_first_argument(monkeypatch, capsys, vm):
    # mov r1, 42; call 5; exit
    program = "b7 01 00 00 2a 00 00 00 85 00 00 00 05 00 00 00 95 00 00 00 00 00 00 00"
    code, out, _ = run_cli(capsys, "exec", "--vm", vm, stdin=program, monkeypatch=monkeypatch)
    assert (code, out) == (0, "2a\n")


@pytest.mark.parametrize("vm", ["reference", "fast"])
def test_exec_fault_exits_1_with_reason(monkeypatch, capsys, vm):
    # ldxdw r0, [r1+64]; exit  with 8 bytes of memory
    program = "79 10 40 00 00 00 00 00 95 00 00 00 00 00 00 00"
    code, out, err = run_cli(capsys, "exec", "0011223344556677", "--vm", vm,
                             stdin=program, monkeypatch=monkeypatch)
    assert code == 1 and out == ""
    assert err == "insn 0: memory access out of bounds\n"


def test_exec_bad_hex_exits_2(monkeypatch, capsys):
    code, _, err = run_cli(capsys, "exec", stdin="zz 00", monkeypatch=monkeypatch)
    assert code == 2
    assert "program is not hex" in err


def test_exec_reference_does_not_import_numba():
    code = ("import sys, io; sys.stdin = io.StringIO('b7 00 00 00 07 00 00 00 95 00 00 00 00 00 00 00');"
            "from gbpfd.cli import main; rc = main(['exec']);"
            "assert 'numba' not in sys.modules, 'numba imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "7\n"


# ------------------------------------------------------------------ what a new user tripped on

def test_asm_to_a_missing_folder_is_one_line_exit_2(capsys, tmp_path):
    target = tmp_path / "no" / "x.bin"
    code, out, err = run_cli(capsys, "asm", str(POLICIES / "admit_all.s"), "-o", str(target))
    assert (code, out) == (2, "")
    assert err == f"gbpfd asm: {target}: cannot write: No such file or directory\n"


def test_an_os_error_inside_any_command_is_one_line_exit_2(capsys, monkeypatch):
    import gbpfd.bench.suite

    def refuse(args, command):
        raise PermissionError(13, "Permission denied", "/srv/results/x.json")
    monkeypatch.setattr(gbpfd.bench.suite, "run_from_args", refuse)
    code, out, err = run_cli(capsys, "bench", "--list")
    assert (code, out, err) == (2, "", "gbpfd bench: /srv/results/x.json: Permission denied\n")


class _ClosedPipe:
    """A stdout whose reader has gone away."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        pass


def test_a_closed_output_ends_the_command_quietly(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    code = main(["disasm", str(POLICIES / "tenant_cap.s")])
    assert code == 141
    assert capsys.readouterr().err == ""


def test_top_piped_into_head_ends_quietly():
    # more frames than a pipe buffers, so the command is still writing when the reader goes
    argv = ["top", "--backend", "sim", "--json", "--frames", "100000", "--interval", "0.001"]
    proc = subprocess.Popen([sys.executable, "-m", "gbpfd", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `| head -1` does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert first.startswith(b'{"backend": "sim"')
    assert err == "gbpfd top: backend sim (asked for the simulated device)\n"


def test_top_runs_a_workload_over_any_quota_file(capsys, tmp_path):
    quotas = tmp_path / "mine.toml"
    quotas.write_text('[tenants.web]\nclass = "latency-critical"\nweight = 1\nmax_ctas = 16\n'
                      '[tenants.etl]\nclass = "best-effort"\nweight = 1\nmax_ctas = 64\n'
                      'dma_bytes_per_epoch = 65536\n')
    code = main(["top", "--backend", "sim", "--json", "--once", "--interval", "0.01", "--quotas", str(quotas)])
    out, err = capsys.readouterr()
    assert code == 0, err
    tenants = {t["name"]: t for t in json.loads(out)["tenants"]}
    assert tenants["web"]["admitted"] > 0 and tenants["etl"]["admitted"] > 0
    assert tenants["etl"]["dma_bytes"] > 0 and tenants["web"]["dma_bytes"] == 0


def test_help_is_whole_sentences_without_markup(capsys):
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    assert "``" not in out
    assert " ".join(DESCRIPTION.split()) in " ".join(out.split())
    assert DESCRIPTION.rstrip().endswith(".")
    for line in EXIT_CODES.splitlines()[1:]:
        assert line in out


def test_version(capsys):
    from importlib.metadata import version
    code, out, _ = run_cli(capsys, "--version")
    assert (code, out) == (0, f"gbpfd {version('gbpfd')}\n")


def test_dir_lists_the_public_api():
    import gbpfd
    assert set(gbpfd.__all__) <= set(dir(gbpfd))
    assert all(hasattr(gbpfd, name) for name in gbpfd.__all__)


def test_asm_refuses_to_drop_the_programs_maps(capsys, tmp_path):
    target = tmp_path / "tenant_cap.bin"
    source = POLICIES / "tenant_cap.s"
    code, out, err = run_cli(capsys, "asm", str(source), "-o", str(target))
    assert (code, out) == (2, "")
    assert err == (f"gbpfd asm: {source}: the program declares 1 map (state), which raw bytecode cannot carry, "
                   "so the .bin would never verify: verify, load or disasm the source itself\n")
    assert not target.exists()


def test_asm_without_maps_notes_the_hook_to_pass(capsys, tmp_path):
    source = POLICIES / "admit_all.s"
    code, _, err = run_cli(capsys, "asm", str(source), "-o", str(tmp_path / "a.bin"))
    assert code == 0
    assert err == (f"{source}: note: raw bytecode does not carry the .hook declaration; "
                   "pass --hook cta_admit to verify it\n")


def test_verifying_a_bin_with_map_references_says_why_it_fails(capsys, tmp_path):
    from gbpfd.isa.load import load_program
    raw = write(tmp_path, "cap.bin", load_program(POLICIES / "tenant_cap.s").to_bytes())
    code, _, err = run_cli(capsys, "verify", raw, "--hook", "cta_admit")
    assert code == 1
    assert err.splitlines()[-1] == (f"{raw}: note: raw bytecode carries no .map declarations, so its map "
                                    "references resolve to nothing: verify the .s or .o it was built from")


def test_demo_draws_no_progress_into_a_log(capsys):
    code, out, err = run_cli(capsys, "demo", "--backend", "sim", "--seconds", "0.02")
    assert code == 0, err
    assert out.startswith("gbpfd demo: backend sim")
    assert err == ""


def test_docs_cli_md_is_generated_from_the_parser():
    from gbpfd.cli_doc import DOC, render
    assert DOC.read_text() == render(), "docs/cli.md is stale: run python -m gbpfd.cli_doc"


def test_the_reference_names_every_option_of_every_command():
    import argparse

    from gbpfd.cli import build_parser
    from gbpfd.cli_doc import DOC, _subcommands
    page = DOC.read_text()

    def walk(parser, path):
        for name, _, sub in _subcommands(parser):
            assert f"## `{path} {name}`" in page
            section = page.split(f"## `{path} {name}`", 1)[1].split("\n## ", 1)[0]
            for action in sub._actions:
                if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                    for option in action.option_strings:
                        assert f"`{option}`" in section, (path, name, option)
            walk(sub, f"{path} {name}")
    walk(build_parser(), "gbpfd")


def test_a_registered_subcommand_gets_its_own_section(monkeypatch):
    import gbpfd.cli_doc
    from gbpfd.cli import build_parser

    def with_extra():
        parser = build_parser()
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        sub.add_parser("extra", help="an extra command").add_argument("--level", type=int, default=3, help="how much")
        return parser
    monkeypatch.setattr(gbpfd.cli_doc, "build_parser", with_extra)
    page = gbpfd.cli_doc.render()
    assert "## `gbpfd extra`\n\nAn extra command.\n\n```text\ngbpfd extra [-h] [--level LEVEL]\n```" in page
    assert "| `--level` `LEVEL` | how much; default `3` |" in page
