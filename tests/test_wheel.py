"""The built wheel, installed in a fresh virtual environment without the checkout, provides a working ``scsa-yolo``.

Reinstalling torch and Ultralytics would take minutes, so the fresh venv sees the test venv's third-party packages
through one ``.pth`` line (only their folder: the ``.pth`` files there, such as the checkout's editable install, are
not processed). The package itself, its start-up hook and its command come from the wheel alone, the commands run
from a folder outside the checkout with no PYTHONPATH and no YOLO_OFFLINE set, and the test checks where
``scsa_yolo`` was imported from.
"""

import csv
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
HELP_PROBE = r"""
import contextlib, io, json, sys, tempfile, os
from importlib.metadata import distribution
(entry,) = [e for e in distribution("scsa-yolo").entry_points if e.group == "console_scripts"]
main = entry.load()
report = {"entry": entry.name}
for argv in (["--help"], *([name, "--help"] for name in sys.argv[2:])):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main(argv)
    report[" ".join(argv)] = out.getvalue()
os.chdir(tempfile.mkdtemp())  # no ./data_cache here: the demo benchmark must say how to get its wheel
err = io.StringIO()
with contextlib.redirect_stderr(err):
    report["demo_exit"] = main(["benchmark", "--epochs", "1"])
report["demo_error"] = err.getvalue()
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


def _run(command, cwd, env):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result.stdout


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    """A fresh venv with only the built wheel installed; returns (venv, environment for its commands)."""
    root = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w",
          str(root / "dist"), str(REPO)], cwd=root, env=os.environ)  # fmt: skip
    (wheel,) = (root / "dist").glob("scsa_yolo-*.whl")
    venv = root / "venv"
    _run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], cwd=root, env=os.environ)
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q", "--no-deps",
          "--no-index", str(wheel)], cwd=root, env=os.environ)  # fmt: skip
    site_packages = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (site_packages / "_test_venv_packages.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "YOLO_OFFLINE", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    # The fused CPU kernel's build cache is keyed by its source's content but rebuilt for a new source path: the
    # wheel's copy would cost a minute's compile here (and another for the next checkout process).
    env["SCSA_YOLO_FUSED"] = "0"
    return venv, env, site_packages


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


def test_wheel_command_helps_prepares_and_benchmarks_from_a_foreign_folder(wheel_env, tmp_path):
    """One process runs the entry point's subcommands (help, demo error, prepare); the console script benchmarks."""
    from scsa_yolo.cli import SUBCOMMANDS

    venv, env, site_packages = wheel_env
    work = tmp_path / "elsewhere"
    write_urpc_download(work / "download")
    probe = [venv / "bin" / "python", "-c", HELP_PROBE, str(work), *SUBCOMMANDS]
    report = json.loads(_run(probe, cwd=tmp_path, env=env).splitlines()[-1])
    assert report["entry"] == "scsa-yolo" and (venv / "bin" / "scsa-yolo").is_file()
    assert Path(report["package"]).is_relative_to(site_packages)  # the wheel's copy, not the checkout
    assert report["online"] is False  # YOLO_OFFLINE came from the command, not from this test's environment
    for name in SUBCOMMANDS:
        assert name in report["--help"] and f"usage: scsa-yolo {name}" in report[f"{name} --help"]
    assert report["demo_exit"] == 2 and "python -m pip download --no-deps deepforest==" in report["demo_error"]
    assert report["prepare_exit"] == 0 and "data=data/URPC/data.yaml" in report["prepare"]

    benchmark = ["benchmark", "--models", "yolov8n-scsa.yaml", "--data", "data/URPC/data.yaml", "--epochs", "1",
                 "--imgsz", "64", "--batch", "2", "--device", "cpu", "--out", "bench"]  # fmt: skip
    _run([venv / "bin" / "scsa-yolo", *benchmark], cwd=work, env=env)
    with open(work / "bench" / "results.csv", newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert row["model_file"] == "yolov8n-scsa.yaml" and int(row["params"]) > 3_000_000
    assert (work / "bench" / "runs" / "yolov8n-scsa-seed0" / "weights" / "last.pt").is_file()
