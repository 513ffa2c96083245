"""The ``scsa-yolo`` command: every subcommand's parser, the scripts as wrappers, the demo-data error."""

import pytest

from scsa_yolo import cli
from scsa_yolo.data import deepforest


@pytest.mark.parametrize("name", sorted(cli.SUBCOMMANDS))
def test_every_subcommand_has_its_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: scsa-yolo {name}" in capsys.readouterr().out


def test_bad_flag_is_named(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["benchmark", "--seeds", "0,x"])
    assert exit_info.value.code == 2
    assert "seeds must be comma-separated integers, got '0,x'" in capsys.readouterr().err


def test_benchmark_without_demo_wheel_prints_the_one_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # ./data_cache is where the demo wheel is looked for
    assert cli.main(["benchmark", "--epochs", "1", "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert deepforest.download_command() in error and str(tmp_path) in error
    assert not (tmp_path / "out").exists()  # refused before any work


def test_script_wrapper_runs_the_same_parser(monkeypatch, capsys):
    import scsa_yolo_command  # the top-level launcher that the console script and scripts/*.py call

    with pytest.raises(SystemExit):
        scsa_yolo_command.script_main("models", ["--help"])
    assert "usage: scsa-yolo models" in capsys.readouterr().out


def test_parsers_of_benchmark_cam_and_speed_import_none_of_their_work_modules():
    """add_arguments reads only light modules: the benchmark's planner/runner, cam and the speed bench stay unloaded."""
    import subprocess
    import sys

    heavy = ("scsa_yolo.benchmark.plan", "scsa_yolo.benchmark.runner", "scsa_yolo.cam", "scsa_yolo.benchmark.speed")
    code = (
        "import sys; from scsa_yolo.cli import build_parser\n"
        "for name in ('benchmark', 'cam', 'speed'): build_parser(chosen=name)\n"
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
