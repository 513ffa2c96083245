"""The benchmark in the experiment tracker enabled in Ultralytics' settings: a real MLflow with a local sqlite store.

Ultralytics' MLflow callback stays silent under pytest unless the test's name holds ``test_mlflow``; the names below
do. Needs the optional 'track' extra (mlflow); skipped without it.
"""

import csv

import pytest
from conftest import write_tiny_detection_dataset
from ultralytics.utils import SETTINGS

from scsa_yolo.benchmark import BenchmarkRequest, TrainSettings, run_benchmark
from scsa_yolo.benchmark.tracking import comparison_metrics, enabled_trackers

mlflow = pytest.importorskip("mlflow", reason="the tracker test needs the 'track' extra (mlflow)")


@pytest.fixture
def mlflow_enabled(tmp_path, monkeypatch):
    """MLflow switched on in Ultralytics' (test) settings, tracking into a sqlite file; restored afterwards."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)  # a sqlite store keeps its artifacts in ./mlruns
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    before = SETTINGS["mlflow"]
    SETTINGS.update({"mlflow": True})
    yield uri
    SETTINGS.update({"mlflow": before})


def test_mlflow_logs_every_run_and_the_comparison(mlflow_enabled, tmp_path):
    assert "mlflow" in enabled_trackers()
    data = write_tiny_detection_dataset(tmp_path / "boxes", images=4, size=64)
    out = tmp_path / "out"
    settings = TrainSettings(data=str(data), epochs=1, imgsz=64, batch=4, workers=0, device="cpu")
    models = ("yolov8n.yaml", "yolov8n-scsa.yaml")
    run_benchmark(BenchmarkRequest(models=models, settings=settings, out=out, latency_repeats=2, resamples=200))

    client = mlflow.MlflowClient(mlflow_enabled)
    experiment = client.get_experiment_by_name(str(out / "runs"))  # Ultralytics names it after the runs' folder
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["comparison", "yolov8n-scsa-seed0", "yolov8n-seed0"]
    for name in ("yolov8n-seed0", "yolov8n-scsa-seed0"):  # Ultralytics' own callbacks logged each training run
        run = runs[name]
        assert run.info.status == "FINISHED" and run.data.params["epochs"] == "1"
        assert "metrics/mAP50-95B" in run.data.metrics and "train/box_loss" in run.data.metrics

    comparison = runs["comparison"]
    with open(out / "comparisons.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["delta"] != "nan":
            logged = comparison.data.metrics[f"yolov8n-scsa/{row['metric']}/delta"]
            assert logged == pytest.approx(float(row["delta"]), abs=1e-6)
            assert comparison.data.metrics[f"yolov8n-scsa/{row['metric']}/ci_low"] == pytest.approx(
                float(row["ci_low"]), abs=1e-6
            )
    assert comparison.data.params["models"] == ",".join(models) and comparison.data.params["resamples"] == "200"
    assert comparison.data.tags["verdict"].startswith("yolov8n-scsa vs yolov8n: ΔmAP50-95")
    artifacts = {item.path for item in client.list_artifacts(comparison.info.run_id)}
    assert {"comparisons.png", "results.md", "comparisons.csv", "verdict.txt"} <= artifacts


def test_outside_mlflow_tests_nothing_is_logged_like_ultralytics(monkeypatch):
    monkeypatch.setitem(SETTINGS, "mlflow", True)
    assert "mlflow" not in enabled_trackers()  # this test's name lacks the marker Ultralytics' callback looks for


def test_comparison_metrics_leave_out_undefined_values():
    from scsa_yolo.benchmark.stats import Comparison

    c = Comparison("m", "r", "ap_small", 1, 4, float("nan"), float("nan"), float("nan"), None)
    d = Comparison("m", "r", "map50", 2, 4, 0.1, -0.1, 0.2, 0.5)
    assert comparison_metrics([c, d]) == {
        "m/map50/delta": 0.1,
        "m/map50/ci_low": -0.1,
        "m/map50/ci_high": 0.2,
        "m/map50/p_value": 0.5,
    }
