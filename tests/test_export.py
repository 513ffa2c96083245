"""Export of SCSA models: ONNX (static and dynamic) and TorchScript outputs match PyTorch.

Tolerance: ``atol = rtol = 1e-3`` on the raw Detect output (boxes in pixels, class scores in 0..1); the runs here
see differences of about 1e-4 or less (graph optimisations reorder float32 sums).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ultralytics import YOLO

ort = pytest.importorskip("onnxruntime")
TOLERANCE = {"atol": 1e-3, "rtol": 1e-3}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = YOLO("yolov8n-scsa.yaml")
    with torch.no_grad():  # non-trivial SCSA parameters, so a wrong attention path cannot go unnoticed
        for name, parameter in model.model.named_parameters():
            if any(part in name for part in ("dwc", "norm", ".q.", ".k.", ".v.")):
                parameter.add_(torch.randn_like(parameter) * 0.3)
    path = tmp_path_factory.mktemp("export") / "scsa.pt"
    model.save(path)
    return path


def pytorch_output(checkpoint: Path, image: torch.Tensor) -> np.ndarray:
    model = YOLO(checkpoint).model.float().fuse().eval()
    with torch.no_grad():
        return model(image)[0].numpy()


def onnx_output(path: str, image: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: image.numpy()})[0]


def test_onnx_static_matches_pytorch_on_small_maps(checkpoint):
    path = YOLO(checkpoint).export(format="onnx", imgsz=128, simplify=True)  # P5 is 4x4: below the 7x7 window
    image = torch.rand(1, 3, 128, 128)
    ours, reference = onnx_output(path, image), pytorch_output(checkpoint, image)
    print(f"ONNX static 128x128 max abs diff {np.abs(ours - reference).max():.2e}")
    np.testing.assert_allclose(ours, reference, **TOLERANCE)


def test_yolo_cli_dynamic_onnx_runs_other_sizes(checkpoint):
    yolo = Path(sys.executable).parent / "yolo"
    result = subprocess.run(
        [str(yolo), "export", f"model={checkpoint}", "format=onnx", "dynamic=True", "imgsz=256"],
        capture_output=True, text=True, env=dict(os.environ), cwd=checkpoint.parent, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "pip install" not in result.stdout + result.stderr  # nothing was missing at run time
    path = str(checkpoint.with_suffix(".onnx"))
    for height, width in [(256, 256), (320, 224), (2 * 256, 256)]:
        batch = 2 if height == 320 else 1
        image = torch.rand(batch, 3, height, width)
        ours, reference = onnx_output(path, image), pytorch_output(checkpoint, image)
        print(f"ONNX dynamic {batch}x{height}x{width} max abs diff {np.abs(ours - reference).max():.2e}")
        np.testing.assert_allclose(ours, reference, **TOLERANCE)


def test_torchscript_matches_pytorch(checkpoint):
    path = YOLO(checkpoint).export(format="torchscript", imgsz=160)
    image = torch.rand(1, 3, 160, 160)
    with torch.no_grad():
        scripted = torch.jit.load(path)(image)
    scripted = (scripted[0] if isinstance(scripted, (list, tuple)) else scripted).numpy()
    np.testing.assert_allclose(scripted, pytorch_output(checkpoint, image), **TOLERANCE)
