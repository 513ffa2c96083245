"""The stock ``yolo`` console script trains, validates and predicts with SCSA models, nothing imported by hand."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

YOLO_SCRIPT = Path(sys.executable).parent / "yolo"


def yolo(*args: str, cwd: Path) -> str:
    """Run the installed ``yolo`` command in a fresh process and return its combined output."""
    result = subprocess.run(
        [str(YOLO_SCRIPT), *args], cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=600
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


@pytest.mark.slow
@pytest.mark.skipif(not YOLO_SCRIPT.exists(), reason="the ultralytics console script is not installed")
def test_yolo_cli_train_val_predict(tiny_dataset, tmp_path):
    workdir = tmp_path / "elsewhere"  # outside the repository: names must resolve through the package
    workdir.mkdir()
    common = ["imgsz=64", "device=cpu", "workers=0", "plots=False"]
    yolo(
        "train", "model=yolov8n-scsa.yaml", f"data={tiny_dataset}", "epochs=1", "batch=2", "seed=0",
        f"project={workdir / 'runs'}", "name=scsa", "exist_ok=True", "amp=False", *common, cwd=workdir,
    )  # fmt: skip
    best = workdir / "runs" / "scsa" / "weights" / "best.pt"
    assert best.is_file()
    checkpoint = torch.load(best, map_location="cpu", weights_only=False)
    blocks = [m for m in checkpoint["model"].modules() if type(m).__name__ == "SCSA"]
    assert [type(m).__module__ for m in blocks] == ["scsa_yolo.nn.scsa"] * 3
    assert [m.dim for m in blocks] == [64, 128, 256]

    val_output = yolo(
        "val", f"model={best}", f"data={tiny_dataset}", *common, f"project={workdir / 'val'}", cwd=workdir
    )
    assert "all" in val_output  # the metrics table row over all classes

    image = next((tiny_dataset.parent / "images").glob("*.jpg"))
    yolo("predict", f"model={best}", f"source={image}", "save_txt=True", "conf=0.0", f"project={workdir / 'pred'}",
         "name=p", *common, cwd=workdir)  # fmt: skip
    assert (workdir / "pred" / "p" / image.name).is_file()


def test_checkpoint_loads_under_ultralytics_restricted_loading(tmp_path):
    """ULTRALYTICS_SAFE_LOAD=1 makes Ultralytics unpickle with weights_only=True and an allow-list of classes."""
    from ultralytics import YOLO

    YOLO("yolov8n-scsa.yaml").save(tmp_path / "scsa.pt")
    code = "from ultralytics import YOLO; m = YOLO('scsa.pt'); print(type(m.model.model[16]).__module__)"
    env = {**os.environ, "ULTRALYTICS_SAFE_LOAD": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == "scsa_yolo.nn.scsa"


def test_python_m_scsa_yolo_works_with_the_startup_hook_off(tiny_dataset, tmp_path):
    image = next((tiny_dataset.parent / "images").glob("*.jpg"))
    command = [sys.executable, "-m", "scsa_yolo", "predict", "model=yolov8n-scsa.yaml", f"source={image}", "imgsz=64",
               "device=cpu", "save=True", f"project={tmp_path}", "name=p"]  # fmt: skip
    env = {**os.environ, "SCSA_YOLO_AUTOLOAD": "0"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert (tmp_path / "p" / image.name).is_file()
