"""The built wheel alone (no extras), installed by pip's own resolution next to torch, gives a working ``scsa-yolo``.

The environment is made by ``.ci/compat`` (``.ci/compat wheel``): a fresh venv that sees only a torch-only
environment through a ``.pth`` line, into which pip installed the built wheel and resolved every other dependency
itself, so an undeclared import fails here (as scipy did on 441b05f). Its path comes in ``SCSA_YOLO_WHEEL_ENV``;
without it these tests are skipped. The commands run from a folder outside the checkout with no PYTHONPATH and no
YOLO_OFFLINE, and the tests check where ``scsa_yolo`` was imported from.
"""

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest
from PIL import Image

WHEEL_ENV = os.environ.get("SCSA_YOLO_WHEEL_ENV")
pytestmark = pytest.mark.skipif(
    not WHEEL_ENV, reason="needs the wheel-alone environment that `.ci/compat wheel` makes (SCSA_YOLO_WHEEL_ENV)"
)

PROBE = r"""
import contextlib, io, json, sys, os
from importlib.metadata import distribution
(entry,) = [e for e in distribution("scsa-yolo").entry_points if e.group == "console_scripts"]
main = entry.load()
report = {"entry": entry.name, "help": {}}
for argv in (["--help"], *([name, "--help"] for name in sys.argv[2:])):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(argv)
    report["help"][" ".join(argv)] = out.getvalue()
report["heavy_after_help"] = [m for m in ("torch", "ultralytics") if m in sys.modules]
os.chdir(sys.argv[1])  # the foreign folder: convert a download there with the command's prepare
out = io.StringIO()
with contextlib.redirect_stdout(out):
    report["prepare_exit"] = main(["prepare", "urpc2020", "--source", "download", "--dest", "data/URPC",
                                   "--val-fraction", "0.5"])
report["prepare"] = out.getvalue()
import scsa_yolo, ultralytics.utils
report["package"] = scsa_yolo.__file__
report["online"] = ultralytics.utils.ONLINE
print(json.dumps(report))
"""


def run(command, cwd, env):
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def wheel_env():
    """(venv, its site-packages, the environment for its commands)."""
    venv = Path(WHEEL_ENV)
    python = venv / "bin" / "python"
    site_packages = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], "/", None)
                         .stdout.strip())  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "YOLO_OFFLINE", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return venv, site_packages, env


def write_urpc_download(source: Path) -> None:
    """Six 96-px images with one VOC box each, laid out like the URPC2020 download (image/, box/)."""
    (source / "image").mkdir(parents=True)
    (source / "box").mkdir()
    for index, (name, box) in enumerate([("echinus", (4, 4, 40, 40)), ("scallop", (50, 20, 90, 60))] * 3):
        Image.new("RGB", (96, 96), (40, 80, 120)).save(source / "image" / f"{index:06d}.jpg")
        (source / "box" / f"{index:06d}.xml").write_text(
            f"<annotation><filename>{index:06d}.jpg</filename><size><width>96</width><height>96</height>"
            f"<depth>3</depth></size><object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{box[0]}"
            f"</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object></annotation>"
        )


@pytest.fixture(scope="module")
def prepared(wheel_env, tmp_path_factory):
    """The foreign folder with a URPC-style download, and the probe's report (help texts, prepare run)."""
    from scsa_yolo.cli import SUBCOMMANDS

    venv, _, env = wheel_env
    work = tmp_path_factory.mktemp("elsewhere")
    write_urpc_download(work / "download")
    result = run([venv / "bin" / "python", "-c", PROBE, str(work), *SUBCOMMANDS], cwd=work, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return work, json.loads(result.stdout.splitlines()[-1])


def test_no_extra_is_installed_and_the_package_is_the_wheel(wheel_env, prepared):
    venv, site_packages, env = wheel_env
    _, report = prepared
    assert Path(report["package"]).is_relative_to(site_packages)  # the wheel's copy, not the checkout
    code = "import importlib.util as u; print([m for m in ('timm', 'pytorch_grad_cam', 'ray') if u.find_spec(m)])"
    assert run([venv / "bin" / "python", "-c", code], cwd="/", env=env).stdout.strip() == "[]"


def test_every_subcommand_helps_without_torch_and_prepare_runs(prepared):
    from scsa_yolo.cli import SUBCOMMANDS

    _, report = prepared
    assert report["entry"] == "scsa-yolo"
    for name in SUBCOMMANDS:
        assert name in report["help"]["--help"] and f"usage: scsa-yolo {name}" in report["help"][f"{name} --help"]
    assert report["heavy_after_help"] == []
    assert report["online"] is False  # YOLO_OFFLINE came from the command, not from this test's environment
    assert report["prepare_exit"] == 0 and "data=data/URPC/data.yaml" in report["prepare"]


@pytest.mark.parametrize(
    ("args", "extra"),
    [(["cam", "--model", "yolov8n-scsa.yaml", "--source", "download/image"], "compare"),
     (["benchmark", "--engine", "ray", "--models", "yolov8n-scsa.yaml", "--data", "data/URPC/data.yaml",
       "--epochs", "1", "--out", "bench-ray"], "cluster")],
)  # fmt: skip
def test_a_missing_extra_is_one_line_naming_it(wheel_env, prepared, args, extra):
    venv, _, env = wheel_env
    work, _ = prepared
    result = run([venv / "bin" / "scsa-yolo", *args], cwd=work, env=env)
    assert result.returncode == 2, (result.stdout + result.stderr)[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "error:" in line]
    assert f"pip install 'scsa-yolo[{extra}]'" in line


def test_doctor_reports_the_missing_extras(wheel_env, prepared):
    venv, _, env = wheel_env
    work, _ = prepared
    healthy = run([venv / "bin" / "scsa-yolo", "doctor", "--no-build"], cwd=work, env=env)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert "INFO  extra 'compare': not installed" in healthy.stdout
    needed = run([venv / "bin" / "scsa-yolo", "doctor", "--no-build", "--need", "cluster"], cwd=work, env=env)
    assert needed.returncode == 1 and "-> fix: pip install 'scsa-yolo[cluster]'" in needed.stdout


def test_console_script_benchmarks_from_a_foreign_folder(wheel_env, prepared):
    venv, _, env = wheel_env
    work, _ = prepared
    benchmark = ["benchmark", "--models", "yolov8n-scsa.yaml", "--data", "data/URPC/data.yaml", "--epochs", "1",
                 "--imgsz", "64", "--batch", "2", "--device", "cpu", "--out", "bench"]  # fmt: skip
    result = run([venv / "bin" / "scsa-yolo", *benchmark], cwd=work, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    with open(work / "bench" / "results.csv", newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert row["model_file"] == "yolov8n-scsa.yaml" and int(row["params"]) > 3_000_000
    assert (work / "bench" / "runs" / "yolov8n-scsa-seed0" / "weights" / "last.pt").is_file()
