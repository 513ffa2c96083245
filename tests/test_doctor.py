"""`scsa-yolo doctor` in a healthy environment and in broken ones: hook off, -S, no compiler, an extra missing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scsa_yolo import doctor
from scsa_yolo.cli import main


def run_doctor(*args: str, python_flags: tuple = (), **env: str) -> subprocess.CompletedProcess:
    """``scsa-yolo doctor --no-build ARGS`` in a new interpreter (the fused kernel off unless ``env`` says)."""
    code = "import sys, scsa_yolo_command; sys.exit(scsa_yolo_command.main(sys.argv[1:]))"
    if "-S" in python_flags:  # without site, put this environment's packages and the checkout on the path by hand
        paths = [p for p in sys.path if p.endswith("site-packages")] + [str(Path(__file__).resolve().parents[1])]
        code = f"import sys; sys.path += {paths!r}; " + code
    environment = {**os.environ, "SCSA_YOLO_FUSED": "0", **env}
    command = [sys.executable, *python_flags, "-c", code, "doctor", "--no-build", *args]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)


def lines(result: subprocess.CompletedProcess, topic: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.split(":")[0].split(maxsplit=1)[-1] == topic]


def test_healthy_environment_exits_0_with_every_check_reported():
    result = run_doctor()
    assert result.returncode == 0, result.stdout + result.stderr
    for topic in ("Python", "torch", "torchvision", "ultralytics", "start-up hook", "CPU kernel", "CUDA"):
        assert len(lines(result, topic)) == 1, (topic, result.stdout)
    assert lines(result, "start-up hook")[0].startswith("OK    start-up hook: active")
    assert lines(result, "registration")[0].startswith("OK")
    assert "yolov8, yolo11, yolo26" in lines(result, "model families")[0]  # 8.4.x ships all three
    assert result.stdout.rstrip().endswith("everything checked can run")


@pytest.mark.parametrize(
    ("flags", "env", "fix"),
    [((), {"SCSA_YOLO_AUTOLOAD": "0"}, "unset SCSA_YOLO_AUTOLOAD"), (("-S",), {}, "run Python without -S")],
)
def test_hook_off_fails_with_the_reason_and_the_fix_on_one_line(flags, env, fix):
    result = run_doctor(python_flags=flags, **env)
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = lines(result, "start-up hook")
    assert line.startswith("FAIL  start-up hook: off") and f"-> fix: {fix}" in line and "python -m scsa_yolo" in line


def test_no_compiler_on_path_fails_the_kernel_check():
    bin_dir = Path(sys.executable).parent  # this environment's commands (ninja) but no C++ compiler
    result = run_doctor(PATH=str(bin_dir), SCSA_YOLO_FUSED="1")
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = lines(result, "CPU kernel")
    assert line.startswith("FAIL  CPU kernel: cannot be built: no C++ compiler ('c++' is not on PATH)")
    assert "SCSA_YOLO_FUSED=0" in line
    assert run_doctor(PATH=str(bin_dir)).returncode == 0  # switched off, the PyTorch ops run: nothing fails


def test_missing_extra_is_information_unless_needed(monkeypatch, capsys):
    real = doctor.installed_version
    monkeypatch.setattr(doctor, "installed_version", lambda name: None if name == "timm" else real(name))
    (finding,) = [f for f in doctor.check_extras([]) if f.topic == "extra 'compare'"]
    assert finding.status == doctor.INFO and "timm missing" in finding.found
    monkeypatch.setattr(doctor, "check_cpu_kernel", lambda build: [])  # the kernel is checked above
    assert main(["doctor", "--no-build", "--need", "compare"]) == 1
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "extra 'compare'" in line]
    assert line.startswith("FAIL") and line.endswith("-> fix: pip install 'scsa-yolo[compare]'")


def test_unknown_extra_is_named():
    (finding,) = [f for f in doctor.check_extras(["gpu"]) if f.topic == "extra 'gpu'"]
    assert finding.status == doctor.FAIL and "compare" in finding.fix


@pytest.mark.parametrize(
    ("version", "specifier", "expected"),
    [("2.4.1+cu121", ">=2.4.1", True), ("2.4.0", ">=2.4.1", False), ("8.4.190", ">=8.2.103,<8.5", True),
     ("8.5.0", "<8.5,>=8.2.103", False), ("3.9.18", ">=3.9", True), ("3.8.10", ">=3.9", False)],
)  # fmt: skip
def test_version_specifiers(version, specifier, expected):
    assert doctor.satisfies(version, specifier) is expected


def test_requirements_are_read_from_the_installed_metadata():
    declared = doctor.requirements()
    assert {"ultralytics", "torch", "torchvision"} <= set(declared[None])
    assert "ray" in declared["cluster"] and "timm" in declared["compare"]
