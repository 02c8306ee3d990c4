"""``gbpfd check`` from the command line, on the simulated device."""
from __future__ import annotations

import json

from gbpfd.check.stages import NAMES
from gbpfd.cli import main


def test_list_names_every_stage_with_its_bound(capsys):
    assert main(["check", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(NAMES)
    assert lines[2].split()[1:5] == ["90", "s", "GPU", "only"]


def test_env_and_plane_pass_on_the_simulated_device_and_gpu_stages_are_skipped(tmp_path, capsys):
    out = tmp_path / "check"
    code = main(["check", "--backend", "sim", "--out", str(out), "--only", "env", "resident", "plane"])
    lines = [json.loads(line) for line in (out / "check.jsonl").read_text().splitlines()]
    assert code == 0, [(line["stage"], line["reason"], line["output_tail"][-5:]) for line in lines]
    assert [(line["stage"], line["status"]) for line in lines] == [("env", "pass"), ("resident", "skip"),
                                                                   ("plane", "pass")]
    plane = lines[2]["figures"]
    assert plane["simulated"]["value"] is True and plane["stop_reason"]["value"] == "stop command"
    assert plane["admit_by_token.deltas"]["value"]["fast_grants"] == 1
    assert plane["admit_by_request.deltas"]["value"]["decisions"] == 1
    assert lines[0]["figures"]["ptx_emitted"]["unit"] == "PTX ISA"
    printed = capsys.readouterr().out
    assert "stage     status  seconds  reason" in printed
    assert f"gbpfd check: {out / 'check.jsonl'}" in printed


def test_a_folder_that_already_holds_a_check_is_refused(tmp_path, capsys):
    (tmp_path / "check.jsonl").write_text("")
    assert main(["check", "--backend", "sim", "--out", str(tmp_path), "--only", "env"]) == 2
    assert capsys.readouterr().err.strip() == (f"gbpfd check: --out: {tmp_path / 'check.jsonl'} already exists; "
                                               "give a new folder")


def test_bad_arguments_are_refused_naming_them(capsys):
    assert main(["check", "--budget", "0", "--only", "env"]) == 2
    assert capsys.readouterr().err.strip() == "gbpfd check: --budget must be > 0 seconds, got 0"
    assert main(["check", "--only", "env", "nope"]) == 2
    assert "no stage 'nope'; the stages are env, compile" in capsys.readouterr().err
