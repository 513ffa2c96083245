"""Attention maps (scsa_yolo.cam, scripts/cam.py): the detection target, layer choice, model loading and the grid."""

import sys

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("pytorch_grad_cam", reason="grad-cam (extra 'compare') missing")

from scsa_yolo import cam, cli  # noqa: E402
from scsa_yolo.errors import MissingExtraError, UsageError  # noqa: E402
from scsa_yolo.nn import SCSA  # noqa: E402

IMGSZ = 64  # the smallest size with a 2x2 P5 map; keeps every CAM pass well under a second


pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    for name, (height, width), colour in (("a.png", (90, 120), (0, 200, 255)), ("b.jpg", (150, 60), (255, 60, 0))):
        image = np.full((height, width, 3), 90, np.uint8)
        cv2.circle(image, (width // 3, height // 2), min(height, width) // 4, colour, -1)
        cv2.imwrite(str(folder / name), image)
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def scsa_checkpoint(tmp_path_factory, image_dir):
    """An Ultralytics-style checkpoint of YOLOv8n-SCSA, stripped like a trained best.pt (no gradients)."""
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolov8n-scsa.yaml", verbose=False)
    cam.calibrate_batchnorm(model, cam.letterbox_images(cam.image_files(image_dir), IMGSZ))
    path = tmp_path_factory.mktemp("runs") / "scsa" / "weights" / "best.pt"
    path.parent.mkdir(parents=True)
    torch.save({"model": model.requires_grad_(False)}, path)
    return path


def test_target_sums_logits_of_confident_anchors_else_the_top_k():
    scores = torch.tensor(
        [  # 3 classes x 5 anchors, after the sigmoid
            [0.10, 0.90, 0.20, 0.05, 0.30],
            [0.60, 0.10, 0.20, 0.05, 0.10],
            [0.10, 0.10, 0.20, 0.05, 0.10],
        ]
    )
    output = torch.cat([torch.rand(4, 5) * 64, scores]).requires_grad_(True)
    value = cam.DetectionScoreTarget(num_classes=3, conf=0.5)(output)
    torch.testing.assert_close(value, torch.logit(torch.tensor(0.9)) + torch.logit(torch.tensor(0.6)))
    value.backward()
    assert output.grad[:4].abs().sum() == 0  # boxes are not explained
    assert set(map(tuple, output.grad.nonzero().tolist())) == {(4 + 0, 1), (4 + 1, 0)}  # best class of anchors 1, 0

    fallback = cam.DetectionScoreTarget(num_classes=3, conf=0.95, top_k=2)(output)  # nobody reaches 0.95
    torch.testing.assert_close(fallback, torch.logit(torch.tensor(0.9)) + torch.logit(torch.tensor(0.6)))
    assert torch.isfinite(cam.DetectionScoreTarget(num_classes=3, conf=0.0)(torch.cat([output[:4], torch.ones(3, 5)])))


def test_checkpoint_loads_with_gradients_and_defaults_to_the_detect_inputs(scsa_checkpoint):
    model = cam.load_detection_model(scsa_checkpoint)
    assert all(parameter.requires_grad for parameter in model.parameters())
    assert not model.training
    layers = cam.resolve_layers(model, None)
    assert layers == [model.model[i] for i in (16, 20, 24)] and all(isinstance(layer, SCSA) for layer in layers)
    assert cam.resolve_layers(model, [-2, 15]) == [model.model[15], model.model[24]]  # forward order
    for bad in ([25], [26], [-27]):  # the Detect head itself, past it, and before the first layer
        with pytest.raises(UsageError, match="--layer"):
            cam.resolve_layers(model, bad)
    with pytest.raises(UsageError, match=".pt checkpoint or a .yaml"):
        cam.load_detection_model(scsa_checkpoint.with_suffix(".onnx"))


def test_maps_are_scaled_per_image_and_depend_on_the_layer(scsa_checkpoint, image_dir):
    model = cam.load_detection_model(scsa_checkpoint)
    images = cam.letterbox_images(cam.image_files(image_dir), IMGSZ)
    default = cam.detection_cams(model, images)
    assert default.shape == (2, IMGSZ, IMGSZ) and default.dtype == np.float32
    assert np.allclose(default.max(axis=(1, 2)), 1.0, atol=1e-4) and default.min() >= 0  # not blank
    p3_only = cam.detection_cams(model, images, layers=[16])
    assert np.abs(p3_only - default).mean() > 0.01
    with pytest.raises(UsageError, match="stride"):
        cam.detection_cams(model, cam.letterbox_images(cam.image_files(image_dir), 48))


def test_script_writes_a_titled_grid_for_two_models_and_two_images(scsa_checkpoint, image_dir, tmp_path):
    output = cam.write_cam_grid(
        ["yolov8n.yaml", str(scsa_checkpoint)], image_dir, imgsz=IMGSZ, device="cpu", output=tmp_path / "grid.png"
    )
    grid = cv2.imread(str(output))
    assert grid.shape == (cam.TITLE_HEIGHT + 2 * IMGSZ, 2 * IMGSZ, 3)  # rows: images, columns: models

    assert grid[: cam.TITLE_HEIGHT, :IMGSZ].max() > 200 and grid[: cam.TITLE_HEIGHT, IMGSZ:].max() > 200  # titles
    images = cam.letterbox_images(cam.image_files(image_dir), IMGSZ)
    for row in range(2):
        top = cam.TITLE_HEIGHT + row * IMGSZ
        plain_cell, scsa_cell = grid[top + 20 : top + IMGSZ, :IMGSZ], grid[top + 20 : top + IMGSZ, IMGSZ:]
        original = cv2.cvtColor((images[row, 20:] * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
        assert np.abs(scsa_cell.astype(int) - original).mean() > 10  # a heat-map is overlaid
        assert np.abs(plain_cell.astype(int) - scsa_cell).mean() > 1  # the two models' maps differ
    assert cam.model_title(scsa_checkpoint) == "scsa/best" and cam.model_title("yolov8n.yaml") == "yolov8n"


def test_missing_grad_cam_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)
    with pytest.raises(MissingExtraError, match=r"scsa-yolo\[compare\]"):
        cam.cam_methods()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--source", "/nonexistent"], "--source /nonexistent: no such image or folder"),
        (["--imgsz", "50"], "--imgsz 50 must be a positive multiple of 32"),
        (["--output", "x.txt"], "--output x.txt: the grid is an image"),
        (["--model", "missing.pt"], "--model missing.pt: no such checkpoint"),
        (["--conf", "2"], "--conf 2.0 must lie in [0, 1]"),
        (["--method", "nocam"], "--method 'nocam' is unknown"),
    ],
)
def test_bad_arguments_are_one_line_errors(flags, message, image_dir, tmp_path, capsys):
    defaults = {"--model": "yolov8n.yaml", "--source": str(image_dir), "--imgsz": "64", "--device": "cpu"}
    defaults["--output"] = str(tmp_path / "grid.png")
    given = dict(zip(flags[::2], flags[1::2]))
    argv = ["cam"] + [item for flag, value in {**defaults, **given}.items() for item in (flag, value)]
    assert cli.main(argv) == 2
    error = capsys.readouterr().err
    assert error.strip().splitlines() == [f"scsa-yolo cam: error: {error.split('error: ', 1)[1].strip()}"]
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "grid.png").exists()
