"""The benchmark runner: well-formed outputs, finished runs not retrained, interrupted runs resumed.

Training here is tiny (64 px, 1-2 epochs, a few 128-px deepforest tiles) and only checks the mechanics.
"""

import csv
import json

import pytest
from ultralytics import YOLO
from ultralytics.utils.callbacks import base as callbacks_base

from scsa_yolo.benchmark import TrainSettings, resolve_models, run_benchmark
from scsa_yolo.benchmark.report import RESULT_COLUMNS, markdown_table
from scsa_yolo.benchmark.runner import PRESETS, RUN_RECORD, SettingsMismatchError, _training_seconds
from scsa_yolo.data import deepforest

REQUIRED_COLUMNS = {
    "model",
    "seed",
    "params",
    "gflops",
    "latency_ms",
    "map50",
    "map50_95",
    "precision",
    "recall",
    "train_s",
    "device",
}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    try:
        wheel = deepforest.find_wheel()
    except deepforest.MissingWheelError as error:
        pytest.skip(str(error))
    out = tmp_path_factory.mktemp("tiny") / "data"
    return deepforest.build_deepforest_dataset(out, wheel=wheel, tile_size=128, images=("OSBS_029.png",)).yaml_path


def _settings(data, epochs=1):
    return TrainSettings(data=data, epochs=epochs, imgsz=64, batch=8, workers=0, device="cpu")


class TrainSpy:
    """Records YOLO.train calls, and optionally forbids them."""

    def __init__(self, monkeypatch, forbid=False):
        self.calls = []
        original = YOLO.train

        def train(model, *args, **kwargs):
            self.calls.append(kwargs)
            if forbid:
                raise AssertionError(f"training was started again: {kwargs}")
            return original(model, *args, **kwargs)

        monkeypatch.setattr(YOLO, "train", train)


def test_outputs_are_well_formed_and_finished_runs_are_not_retrained(tiny_data, tmp_path, monkeypatch):
    models = ["yolov8n.yaml", "yolov8n-scsa.yaml"]
    rows = run_benchmark(models, _settings(tiny_data), seeds=(0,), out=tmp_path, latency_repeats=3)

    with open(tmp_path / "results.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        written = list(reader)
    assert REQUIRED_COLUMNS <= set(reader.fieldnames) and tuple(reader.fieldnames) == RESULT_COLUMNS
    assert [row["model"] for row in written] == models
    for row in written:
        assert int(row["params"]) > 1_000_000 and float(row["gflops"]) > 0 and float(row["latency_ms"]) > 0
        assert all(0.0 <= float(row[key]) <= 1.0 for key in ("map50", "map50_95", "precision", "recall"))
        assert float(row["train_s"]) > 0 and row["device"].startswith("cpu")
    assert int(written[1]["params"]) > int(written[0]["params"])  # SCSA adds parameters

    table = (tmp_path / "results.md").read_text()
    assert "| model | seeds | params (M) |" in table and "yolov8n-scsa.yaml" in table
    assert "single seed" in table  # the table says one seed cannot separate a difference from noise
    for plot in ("accuracy_vs_latency.png", "training_curves.png"):
        assert (tmp_path / plot).read_bytes()[:4] == b"\x89PNG"

    stamps = {path: path.stat().st_mtime_ns for path in tmp_path.glob("runs/*/weights/last.pt")}
    spy = TrainSpy(monkeypatch, forbid=True)
    again = run_benchmark(models, _settings(tiny_data), seeds=(0,), out=tmp_path, latency_repeats=3)
    assert spy.calls == []
    assert [row["map50_95"] for row in again] == [row["map50_95"] for row in rows]
    assert stamps == {path: path.stat().st_mtime_ns for path in tmp_path.glob("runs/*/weights/last.pt")}

    with pytest.raises(SettingsMismatchError):  # same folder, other settings: refuse instead of mixing results
        run_benchmark(models[:1], _settings(tiny_data, epochs=2), seeds=(0,), out=tmp_path, latency_repeats=3)


class SimulatedCrash(Exception):
    """Stands for a killed process after the first epoch's checkpoint was written."""


def test_interrupted_run_resumes_from_last_checkpoint(tiny_data, tmp_path, monkeypatch):
    def crash_after_first_epoch(trainer):
        if trainer.epoch == 0:
            raise SimulatedCrash

    with monkeypatch.context() as patch:
        patch.setitem(callbacks_base.default_callbacks, "on_fit_epoch_end", [crash_after_first_epoch])
        with pytest.raises(SimulatedCrash):
            run_benchmark(["yolov8n.yaml"], _settings(tiny_data, epochs=2), out=tmp_path, latency_repeats=3)
    run_dir = tmp_path / "runs" / "yolov8n-seed0"
    assert (run_dir / "weights" / "last.pt").is_file() and not (run_dir / RUN_RECORD).exists()

    spy = TrainSpy(monkeypatch)
    run_benchmark(["yolov8n.yaml"], _settings(tiny_data, epochs=2), out=tmp_path, latency_repeats=3)
    assert len(spy.calls) == 1 and spy.calls[0]["resume"] is True
    with open(run_dir / "results.csv", newline="") as handle:
        epochs = [int(float(row["epoch"])) for row in csv.DictReader(handle)]
    assert epochs == [1, 2]  # epoch 1 from the first process, epoch 2 from the resumed one
    assert json.loads((run_dir / RUN_RECORD).read_text())["settings"]["epochs"] == 2


def test_table_reports_spread_over_seeds_and_difference_to_first_model():
    def row(model, seed, map50_95):
        return {
            "model": model,
            "seed": seed,
            "params": 3_000_000 if model == "a" else 3_300_000,
            "gflops": 2.0,
            "latency_ms": 10.0,
            "map50": 0.5,
            "map50_95": map50_95,
            "train_s": 60.0,
        }

    rows = [row("a", 0, 0.30), row("b", 0, 0.34), row("a", 1, 0.32), row("b", 1, 0.36)]
    table = markdown_table(rows)
    a_line = next(line for line in table.splitlines() if line.startswith("| a |"))
    b_line = next(line for line in table.splitlines() if line.startswith("| b |"))
    assert "0.310 ± 0.014 (0.300–0.320)" in a_line and "| 0,1 |" in a_line
    assert "+10.0%" in b_line and "+0.040" in b_line
    assert "not larger than twice" not in table  # 0.04 > 2 * 0.014: the note calls it larger


def test_training_time_adds_up_resumed_segments(tmp_path):
    results = tmp_path / "results.csv"
    results.write_text("epoch,time\n1,10\n2,20\n3,5\n4,12\n")  # resumed after epoch 2: the clock restarted
    assert _training_seconds(results) == 32


def test_models_come_from_list_or_preset():
    assert resolve_models("yolov8n.yaml, yolov8s.yaml") == ["yolov8n.yaml", "yolov8s.yaml"]
    assert resolve_models(None, "scsa") == list(PRESETS["scsa"])
    assert resolve_models() == list(PRESETS["scsa"])
    with pytest.raises(ValueError):
        resolve_models("a/yolov8n.yaml,b/yolov8n.yaml")  # same run folder name
    with pytest.raises(ValueError):
        resolve_models(None, "no-such-preset")
