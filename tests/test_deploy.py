"""``scsa-yolo deploy``: argument checks, target selection, offline guards and the report (fast, no heavy runtime).

The exports themselves (every runtime, and the whole command end to end) are in ``test_deploy_runtimes.py``, marked
``deploy``.
"""

import math
import os

import numpy as np
import pytest

from scsa_yolo.cli import main as cli_main
from scsa_yolo.deploy import offline, report, targets
from scsa_yolo.deploy.runner import DeployConfig, check_config, model_names
from scsa_yolo.errors import UsageError


def test_every_ultralytics_format_is_a_target_or_named_unrunnable():
    runnable = {target.format for target in targets.TARGETS}
    for fmt in targets.ultralytics_formats():
        assert fmt in runnable or "cannot run here" in targets.unrunnable_reason(fmt)
    assert {"onnx", "openvino", "ncnn", "mnn", "litert", "saved_model", "pb", "executorch", "paddle"} <= runnable


def test_select_targets_expands_precisions_and_skips_unrunnable_with_one_line():
    selection = targets.select_targets(["onnx:all", "openvino", "coreml", "engine"])
    names = [target.name for target in selection.targets if not target.missing_modules()]
    assert {"onnx", "onnx:fp16", "onnx:int8"} <= set(names)
    assert any(line.startswith("coreml: cannot run here") and "macOS" in line for line in selection.skipped)
    assert any(line.startswith("engine: cannot run here") and "GPU" in line for line in selection.skipped)


def test_select_targets_names_the_pip_command_of_a_missing_runtime(monkeypatch):
    monkeypatch.setattr(targets, "_importable", lambda module: module != "ncnn")
    selection = targets.select_targets(["ncnn", "onnx"])
    assert [target.name for target in selection.targets] == ["onnx"]
    (line,) = selection.skipped
    assert line.startswith("ncnn: needs ncnn") and "pip install ncnn pnnx==" in line


@pytest.mark.parametrize(
    ("spec", "message"),
    [("onnxx", "unknown format 'onnxx'"), ("torchscript:int8", "torchscript runs here at fp32"), ("ncnn:int8", "fp32")],
)
def test_select_targets_rejects_bad_names(spec, message):
    with pytest.raises(UsageError, match=message):
        targets.select_targets([spec])


def test_check_config_rejects_bad_arguments_before_any_export(tmp_path, tiny_dataset):
    good = {"models": [tmp_path / "a.yaml"], "data": str(tiny_dataset), "formats": ["onnx"], "out": tmp_path / "o"}
    check_config(DeployConfig(**good))  # the reference case passes
    cases = [
        ({"imgsz": 100}, "--imgsz 100"),
        ({"models": [tmp_path / "missing.pt"]}, "does not exist"),
        ({"models": [tmp_path / "m.onnx"]}, "neither a .pt"),
        ({"data": str(tmp_path / "nope.yaml")}, "--data"),
        ({"formats": ["bogus"]}, "unknown format"),
        ({"rounds": 1}, "--rounds 1"),
    ]
    for change, message in cases:
        with pytest.raises(UsageError, match=message):
            check_config(DeployConfig(**{**good, **change}))
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "x").write_text("user file")
    with pytest.raises(UsageError, match="not an empty folder"):
        check_config(DeployConfig(**good))


def test_int8_without_calibration_images_is_one_line_and_the_rest_goes_on(tmp_path, tiny_dataset):
    config = DeployConfig([tmp_path / "a.yaml"], str(tiny_dataset), ["onnx", "onnx:int8"], tmp_path / "o")
    config.calib_split = "test"  # the tiny dataset has no test split
    plan = check_config(config)
    assert [target.name for target in plan.selection.targets] == ["onnx"]
    assert any(line.startswith("onnx:int8: quantization needs calibration images") for line in plan.selection.skipped)


def test_cli_bad_argument_is_one_line_exit_2(tmp_path, tiny_dataset, capsys):
    status = cli_main(["deploy", "--models", "yolov8n.yaml", "--data", str(tiny_dataset), "--formats", "onnx:int4"])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("scsa-yolo deploy: error: --formats: 'onnx:int4'")


def test_model_names_are_unique():
    from pathlib import Path

    assert model_names([Path("a/best.pt"), Path("b/best.pt"), Path("c.yaml")]) == ["best-0", "best-1", "c"]


def test_no_autoinstall_switches_ultralytics_installs_off_and_restores():
    from ultralytics.utils import checks

    before, env = checks.AUTOINSTALL, os.environ.get("YOLO_AUTOINSTALL")
    with offline.no_autoinstall():
        assert checks.AUTOINSTALL is False and os.environ["YOLO_AUTOINSTALL"] == "False"
        # a missing requirement is reported, not installed
        assert checks.check_requirements("surely-not-a-package-scsa-yolo==1.0") is False
    assert checks.AUTOINSTALL == before and os.environ.get("YOLO_AUTOINSTALL") == env


def test_tf_calibration_sample_is_made_from_the_users_images(tmp_path, tiny_dataset):
    images = sorted((tiny_dataset.parent / "images").glob("*.jpg"))
    path = offline.tf_calibration_sample(images, tmp_path)
    sample = np.load(path)
    assert path.name == offline.TF_CALIBRATION_SAMPLE and sample.shape == offline.TF_CALIBRATION_SHAPE
    assert sample.dtype == np.float32 and 0.0 <= sample.min() and sample.max() <= 1.0 and sample.std() > 0.05


def test_openvino_f32_pins_the_cpu_precision():
    ov = pytest.importorskip("openvino")
    from openvino import opset13 as ops

    parameter = ops.parameter([1, 4], np.float32)
    model = ov.Model([ops.relu(parameter)], [parameter])
    core = ov.Core()
    core.set_property("CPU", {"INFERENCE_PRECISION_HINT": "bf16"})  # what AVX512-BF16/AMX CPUs default to
    with offline.openvino_f32():
        pinned = core.compile_model(model, "CPU").get_property("INFERENCE_PRECISION_HINT")
    assert str(pinned).endswith("'float32'>") or "f32" in str(pinned)
    assert "bfloat16" in str(core.compile_model(model, "CPU").get_property("INFERENCE_PRECISION_HINT"))


def test_report_csv_columns_are_the_row_fields_and_round_trip(tmp_path):
    rows = [
        report.DeployRow("pytorch", "pytorch", "fp32", "plain", parity=0.0, map50_95=0.5, latency_ms=10.0, ratio=1.0),
        report.DeployRow("onnx:int8", "onnx", "int8", "scsa", map50_95=0.48, int8_drop=-0.02, drop_vs_reference=0.01),
        report.DeployRow("ncnn", "ncnn", "fp32", "scsa", status="load failed", error="IndexError: list index"),
    ]
    report.write_csv(rows, tmp_path / "d.csv")
    header = (tmp_path / "d.csv").read_text().splitlines()[0].split(",")
    assert tuple(header) == report.COLUMNS
    back = report.read_csv(tmp_path / "d.csv")
    assert back[1].int8_drop == -0.02 and math.isnan(back[1].parity) and back[2].status == "load failed"
    text = report.markdown(rows, "header")
    assert "| onnx:int8 | scsa | yes |" in text and "-0.0200" in text
    assert "- ncnn / scsa: load failed: IndexError: list index" in text
