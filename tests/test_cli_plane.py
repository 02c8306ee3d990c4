"""The plane's commands on the CLI: ``gbpfd demo`` output and exit codes
(``gbpfd top`` is in test_top.py)."""
from __future__ import annotations

import json

import pytest

from gbpfd.cli import main

DEMO_KEYS = {"backend", "simulated", "tenants", "copy", "swap", "reaction"}


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_json_prints_one_object(capsys):
    code, out, err = run_cli(capsys, "demo", "--backend", "sim", "--seconds", "0.1", "--json")
    assert code == 0, err
    assert out.count("\n") == 1
    report = json.loads(out)
    assert DEMO_KEYS <= set(report)
    assert report["simulated"] is True and report["backend"] == "sim"
    assert report["seconds"] == 0.1
    assert [t["name"] for t in report["tenants"]] == ["infer", "train", "batch"]
    assert err == ""  # no progress bar in --json mode


def test_demo_text_report_says_its_backend_and_draws_no_progress_off_a_terminal(capsys):
    code, out, err = run_cli(capsys, "demo", "--backend", "sim", "--seconds", "0.02")
    assert code == 0, err
    assert out.startswith("gbpfd demo: backend sim (SIMULATED: modelled device, not GPU figures): "
                          "asked for the simulated device\n")
    assert err == ""   # pytest's captured stderr is not a terminal


@pytest.mark.parametrize("value", ["abc", ""])
def test_demo_seconds_that_is_not_a_number_exits_2(capsys, value):
    code, out, err = run_cli(capsys, "demo", "--backend", "sim", "--seconds", value)
    assert code == 2
    assert out == ""
    assert f"argument --seconds: invalid float value: {value!r}" in err


@pytest.mark.parametrize("value", ["0", "-1", "nan", "7200"])
def test_demo_seconds_out_of_range_exits_2(capsys, value):
    code, out, err = run_cli(capsys, "demo", "--backend", "sim", "--seconds", value)
    assert code == 2
    assert out == ""
    assert "seconds" in err and "Traceback" not in err


def test_demo_refuses_an_unknown_backend(capsys):
    code, out, err = run_cli(capsys, "demo", "--backend", "gpu")
    assert code == 2
    assert "argument --backend: invalid choice: 'gpu'" in err


def test_top_refuses_a_bad_interval_value(capsys):
    code, _, err = run_cli(capsys, "top", "--backend", "sim", "--interval", "soon")
    assert code == 2
    assert "argument --interval: invalid float value: 'soon'" in err
