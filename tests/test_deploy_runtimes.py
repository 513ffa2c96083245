"""An SCSA model on every runtime Ultralytics exports to that runs on a Linux CPU, and the deploy command end to end.

Marked ``deploy`` (``pytest -m deploy``): each target exports a tiny YOLOv8n-SCSA (imgsz 64, SCSA parameters moved off
their defaults so a wrong attention path shows), opens the result with Ultralytics' ``AutoBackend``, compares the
raw head output with PyTorch on the same images and runs Ultralytics' validator on it. A target whose runtime package
is missing is skipped with the pip command. Tolerances on the raw outputs (boxes in pixels at imgsz 64, scores 0..1):
fp32 1e-3 of the output's scale; fp16 3e-2; INT8 only finite and validated (its accuracy is what the command
measures, not a unit-test property).
"""

import csv
import importlib.metadata
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from packaging.requirements import Requirement
from ultralytics import YOLO

from scsa_yolo.deploy import bootstrap, measure, targets
from scsa_yolo.deploy.runner import REPORT_CSV, REPORT_MD, REPORT_PNG, calibrate_batchnorm

pytestmark = [pytest.mark.deploy, pytest.mark.usefixtures("torch_single_thread")]
IMGSZ = 64
RELATIVE_TOLERANCE = {"fp32": 1e-3, "fp16": 3e-2}


DEPLOY_ENV_VARIABLE = "SCSA_YOLO_DEPLOY_ENV"
"""Set by .ci/compat in its environment with the ``deploy`` extra: a runtime that extra installs must not be missing."""


def deploy_extra_modules() -> set[str]:
    """Import names of what the installed scsa-yolo's ``deploy`` extra requires (names as pip spells them)."""
    requirements = [Requirement(text) for text in importlib.metadata.requires("scsa-yolo") or []]
    extra = [r for r in requirements if r.marker is not None and r.marker.evaluate({"extra": "deploy"})]
    return {r.name.replace("-", "_").lower() for r in extra}


@pytest.fixture(scope="module")
def scsa_checkpoint(tmp_path_factory, dataset) -> Path:
    torch.manual_seed(0)
    model = YOLO("yolov8n-scsa.yaml")
    with torch.no_grad():
        for name, parameter in model.model.named_parameters():
            if any(part in name for part in ("dwc", "norm", ".q.", ".k.", ".v.")):
                parameter.add_(torch.randn_like(parameter) * 0.3)
    # BatchNorm statistics from the images: else an untrained model's head output hardly depends on its input
    calibrate_batchnorm(model.model, measure.letterboxed(sorted((dataset.parent / "images").glob("*.jpg")), IMGSZ))
    path = tmp_path_factory.mktemp("deploy-model") / "scsa.pt"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from conftest import write_tiny_detection_dataset

    return write_tiny_detection_dataset(tmp_path_factory.mktemp("deploy-data"), images=4, size=96)


@pytest.mark.parametrize("target", targets.TARGETS, ids=lambda target: target.name)
def test_scsa_model_runs_on_target(target, scsa_checkpoint, dataset, tmp_path):
    missing = target.missing_modules()
    if missing and os.environ.get(DEPLOY_ENV_VARIABLE) and {m.lower() for m in missing} <= deploy_extra_modules():
        pytest.fail(f"{target.name}: {', '.join(missing)} missing where the deploy extra is installed")
    if missing:
        pytest.skip(f"{target.name} needs {', '.join(missing)}: {target.runtime.pip}")
    images = sorted((dataset.parent / "images").glob("*.jpg"))
    exported = measure.export(scsa_checkpoint, target, tmp_path / "export", IMGSZ, str(dataset), "train", images)
    assert exported.path is not None, exported.error
    assert exported.size_mb > 0
    batch = measure.letterboxed(images[:2], IMGSZ)
    reference = measure.raw_outputs(measure.load_backend(scsa_checkpoint), batch)
    ours = measure.raw_outputs(measure.load_backend(exported.path), batch)
    diff = measure.max_abs_diff(ours, reference)
    scale = max(float(np.abs(output).max()) for output in reference)
    signal = float(np.abs(reference[0] - reference[1]).max())  # the outputs depend on the image
    print(f"{target.name}: max abs diff {diff:.2e} (output scale {scale:.1f}, between images {signal:.1f})")
    assert signal > 0.02 * scale
    assert math.isfinite(diff)
    if target.precision in RELATIVE_TOLERANCE:
        assert diff <= RELATIVE_TOLERANCE[target.precision] * scale
    validation = bootstrap.validate(str(exported.path), str(dataset), IMGSZ, tmp_path / "val")
    assert validation.images == len(images) and math.isfinite(validation.map50_95)


def test_deploy_command_end_to_end(tmp_path, dataset):
    """Two tiny models, three targets and one that cannot run here: the table, the markdown and the plot."""
    from scsa_yolo.cli import main as cli_main

    out = tmp_path / "deploy"
    status = cli_main(
        [
            "deploy", "--models", "yolov8n.yaml", "yolov8n-scsa.yaml", "--data", str(dataset), "--imgsz", str(IMGSZ),
            "--formats", "torchscript", "onnx", "onnx:int8", "coreml", "--rounds", "3", "--parity-images", "2",
            "--resamples", "100", "--out", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    with open(out / REPORT_CSV) as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["target"], row["model"]) for row in rows] == [
        (target, model)
        for target in ("pytorch", "torchscript", "onnx", "onnx:int8")
        for model in ("yolov8n", "yolov8n-scsa")
    ]
    assert all(row["status"] == "ok" for row in rows), [row["error"] for row in rows]
    for row in rows:
        assert float(row["latency_ms"]) > 0 and float(row["ratio"]) > 0
        if row["target"] in {"torchscript", "onnx"}:  # boxes in pixels up to ~500: 1e-2 is ~2e-5 relative
            assert float(row["parity"]) < 1e-2
    scsa_int8 = next(row for row in rows if row["target"] == "onnx:int8" and row["model"] == "yolov8n-scsa")
    assert scsa_int8["int8_drop"] != "" and scsa_int8["drop_vs_reference"] != ""
    assert float(scsa_int8["drop_vs_reference_low"]) <= float(scsa_int8["drop_vs_reference_high"])
    text = (out / REPORT_MD).read_text()
    assert "coreml: cannot run here" in text and "logical CPUs" in text
    assert (out / REPORT_PNG).stat().st_size > 0
    assert (out / "models" / "yolov8n-scsa.pt").is_file()
    assert (out / "exports" / "onnx-int8" / "yolov8n-scsa").is_dir()
