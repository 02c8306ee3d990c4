"""The CLI contract: exit codes, output formats, one-line errors for bad input."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gbpfd.cli import main

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
