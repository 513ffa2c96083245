"""The benchmark runner: well-formed outputs, area APs, paired comparisons of real runs, finished runs not
retrained, interrupted runs resumed and recorded as such, bad arguments refused before training.

Training here is tiny (64 px, 1-2 epochs, a few 128-px deepforest tiles and a 4-image box dataset) and only checks
the mechanics; the statistics themselves are tested on synthetic records in test_benchmark_stats.py.
"""

import csv
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import ultralytics
from conftest import write_tiny_detection_dataset
from ultralytics import YOLO
from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.utils.callbacks import base as callbacks_base

from scsa_yolo.benchmark import BenchmarkRequest, TrainSettings, resolve_models, run_benchmark
from scsa_yolo.benchmark.image_stats import load_image_stats
from scsa_yolo.benchmark.plan import PRESETS
from scsa_yolo.benchmark.records import RESULT_COLUMNS, RUN_RECORD, RunRecord, SettingsMismatchError
from scsa_yolo.benchmark.report import COMPARISON_COLUMNS, markdown_table
from scsa_yolo.benchmark.run import training_seconds
from scsa_yolo.benchmark.stats import average_precision
from scsa_yolo.data import deepforest
from scsa_yolo.errors import UsageError

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


def bench(models, settings, seeds=(0,), out="runs/benchmark", datasets=(), **options):
    """Plan and run a benchmark the way the command does (one plan, handed to the runner)."""
    request = BenchmarkRequest(
        models=tuple(models), settings=settings, seeds=tuple(seeds), out=out, datasets=tuple(datasets), **options
    )
    return run_benchmark(request)


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


@pytest.fixture(scope="module")
def twin_yaml(tmp_path_factory):
    """yolov8n under another file name: byte for byte Ultralytics' yolov8.yaml, scale n from the name."""
    source = Path(ultralytics.__file__).parent / "cfg" / "models" / "v8" / "yolov8.yaml"
    twin = tmp_path_factory.mktemp("twin") / "twin-yolov8n.yaml"
    shutil.copyfile(source, twin)
    return str(twin)


@pytest.fixture(scope="module")
def second_data(tmp_path_factory):
    return str(write_tiny_detection_dataset(tmp_path_factory.mktemp("second") / "boxes", images=4, size=64))


@pytest.fixture(scope="module")
def finished(tiny_data, second_data, twin_yaml, tmp_path_factory):
    """One benchmark on two datasets: yolov8n and its twin, seed 0, trained once for the whole module."""
    out = tmp_path_factory.mktemp("bench")
    models = ["yolov8n.yaml", twin_yaml]
    rows = bench(
        models, _settings(tiny_data), seeds=(0,), out=out, latency_repeats=3, datasets=[tiny_data, second_data]
    )
    return {"out": out, "models": models, "rows": rows, "datasets": [tiny_data, second_data]}


def test_outputs_are_well_formed(finished):
    out = finished["out"]
    with open(out / "results.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        written = list(reader)
    assert REQUIRED_COLUMNS <= set(reader.fieldnames) and tuple(reader.fieldnames) == RESULT_COLUMNS
    assert [(row["dataset"], row["model"]) for row in written] == [
        ("deepforest", "yolov8n"),
        ("deepforest", "twin-yolov8n"),
        ("data", "yolov8n"),
        ("data", "twin-yolov8n"),
    ]
    for row in written:
        assert int(row["params"]) > 1_000_000 and float(row["gflops"]) > 0 and float(row["latency_ms"]) > 0
        assert all(0.0 <= float(row[key]) <= 1.0 for key in ("map50", "map50_95", "precision", "recall"))
        assert float(row["train_s"]) > 0 and row["device"].startswith("cpu") and row["resumed_at_epochs"] == ""
        low, ratio, high = (float(row[key]) for key in ("latency_ratio_low", "latency_ratio", "latency_ratio_high"))
        assert low <= ratio <= high
    # 1 class on the tiles, 2 on the boxes: the head (and the parameter count) follows each dataset
    assert int(written[0]["params"]) != int(written[2]["params"])
    # no tree crown is larger than 96² px in the 128-px tiles: that size bin is NaN, not 0
    assert all(math.isnan(float(row["ap_large"])) for row in written[:2])

    with open(out / "comparisons.csv", newline="") as handle:
        comparisons = list(csv.DictReader(handle))
    assert tuple(comparisons[0]) == ("dataset", *COMPARISON_COLUMNS)  # several datasets: a dataset column first
    assert {(row["dataset"], row["metric"]) for row in comparisons} == {
        (dataset, metric) for dataset in ("deepforest", "data") for metric in ("map50_95", "map50", "ap_small")
    }
    report = (out / "results.md").read_text()
    assert "| dataset | model | seeds | params (M) |" in report and "twin-yolov8n" in report
    assert "[data] twin-yolov8n vs yolov8n: ΔmAP50-95" in report
    for plot in ("accuracy_vs_latency.png", "training_curves.png", "comparisons.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"


def test_same_architecture_under_two_names_gives_zero_difference(finished):
    with open(finished["out"] / "comparisons.csv", newline="") as handle:
        comparisons = list(csv.DictReader(handle))
    for row in comparisons:
        assert row["model"] == "twin-yolov8n" and row["reference"] == "yolov8n" and row["seeds"] == "1"
        if row["metric"] == "ap_small" and row["delta"] == "nan":
            continue  # no small labels in that dataset
        assert float(row["delta"]) == 0 and float(row["ci_low"]) <= 0 <= float(row["ci_high"]), row
        assert row["p_value"] == ""  # one seed: no test over seeds
    report = (finished["out"] / "results.md").read_text()
    assert "not distinguishable from noise (one seed: the interval covers image sampling only" in report
    assert "beyond the interval" not in report


def test_area_aps_are_ultralytics_own_coco_evaluation(finished, tiny_data):
    row = next(r for r in finished["rows"] if r.dataset == "deepforest" and r.model_file == "yolov8n.yaml")
    run_dir = finished["out"] / "runs" / "deepforest" / "yolov8n-seed0"
    weights = run_dir / "weights" / "last.pt"
    model = YOLO(str(weights))
    args = {**model.overrides, "rect": True, "data": tiny_data, "imgsz": 64, "batch": 8, "device": "cpu"}
    args |= {"workers": 0, "plots": False, "save_json": True, "mode": "val"}
    args |= {"project": str(finished["out"] / "check"), "name": "val"}
    stats = DetectionValidator(args=args)(model=model.model)
    for size in ("small", "medium", "large"):
        theirs = stats[f"metrics/mAP_{size}(B)"]
        ours = getattr(row, f"ap_{size}")
        assert (math.isnan(ours) and theirs == -1) or ours == pytest.approx(theirs, abs=5e-5), size
    record = RunRecord.read(run_dir / RUN_RECORD)
    recomputed = average_precision(load_image_stats(run_dir / record.image_stats)["all"])
    assert recomputed["map50_95"] == pytest.approx(row.map50_95, abs=5e-5)


def test_rerun_recomputes_comparisons_without_training(finished, monkeypatch):
    out = finished["out"]
    before = (out / "comparisons.csv").read_text()
    stamps = {path: path.stat().st_mtime_ns for path in out.glob("runs/*/*/weights/last.pt")}
    assert len(stamps) == 4
    run_dir = out / "runs" / "data" / "twin-yolov8n-seed0"
    stats = run_dir / RunRecord.read(run_dir / RUN_RECORD).image_stats
    stats.unlink()  # a lost statistics file is rebuilt by validating, not by training
    spy = TrainSpy(monkeypatch, forbid=True)
    again = bench(
        finished["models"],
        _settings(finished["datasets"][0]),
        out=out,
        latency_repeats=3,
        datasets=finished["datasets"],
    )
    assert spy.calls == [] and stats.is_file()
    assert [row.map50_95 for row in again] == [row.map50_95 for row in finished["rows"]]
    assert (out / "comparisons.csv").read_text() == before  # same statistics, same bootstrap seed
    assert stamps == {path: path.stat().st_mtime_ns for path in out.glob("runs/*/*/weights/last.pt")}

    # same folder, other settings: refuse instead of mixing results, naming the setting
    with pytest.raises(SettingsMismatchError, match="--epochs saved 1, requested 2"):
        bench(
            finished["models"][:1], _settings(finished["datasets"][0], epochs=2), out=out, datasets=finished["datasets"]
        )


def test_bad_model_dataset_or_option_fails_before_any_training(tiny_data, tmp_path, monkeypatch):
    spy = TrainSpy(monkeypatch, forbid=True)
    with pytest.raises(UsageError, match="--models: 'yolov8n-scsaa.yaml'"):
        bench(["yolov8n.yaml", "yolov8n-scsaa.yaml"], _settings(tiny_data), out=tmp_path)
    with pytest.raises(UsageError, match="--data 'no-such-data.yaml'"):
        bench(["yolov8n.yaml"], _settings(tiny_data), out=tmp_path, datasets=[tiny_data, "no-such-data.yaml"])
    with pytest.raises(UsageError, match="missing.pt"):
        bench(["yolov8n.yaml", str(tmp_path / "missing.pt")], _settings(tiny_data), out=tmp_path)
    with pytest.raises(UsageError, match="--epochs"):
        bench(["yolov8n.yaml"], _settings(tiny_data, epochs=0), out=tmp_path)
    with pytest.raises(UsageError, match="--seeds must be distinct"):
        bench(["yolov8n.yaml"], _settings(tiny_data), seeds=(0, 0), out=tmp_path)
    with pytest.raises(UsageError, match="--device"):
        bench(["yolov8n.yaml"], replace(_settings(tiny_data), device="cuda:7"), out=tmp_path)
    assert spy.calls == [] and not (tmp_path / "runs").exists()


class SimulatedCrash(Exception):
    """Stands for a killed process after the first epoch's checkpoint was written."""


def test_interrupted_run_resumes_from_last_checkpoint(tiny_data, tmp_path, monkeypatch):
    def crash_after_first_epoch(trainer):
        if trainer.epoch == 0:
            raise SimulatedCrash

    with monkeypatch.context() as patch:
        patch.setitem(callbacks_base.default_callbacks, "on_fit_epoch_end", [crash_after_first_epoch])
        with pytest.raises(SimulatedCrash):
            bench(["yolov8n.yaml"], _settings(tiny_data, epochs=2), out=tmp_path, latency_repeats=3)
    run_dir = tmp_path / "runs" / "yolov8n-seed0"
    assert (run_dir / "weights" / "last.pt").is_file() and not (run_dir / RUN_RECORD).exists()

    spy = TrainSpy(monkeypatch)
    bench(["yolov8n.yaml"], _settings(tiny_data, epochs=2), out=tmp_path, latency_repeats=3)
    assert len(spy.calls) == 1 and spy.calls[0]["resume"] is True
    with open(run_dir / "results.csv", newline="") as handle:
        epochs = [int(float(row["epoch"])) for row in csv.DictReader(handle)]
    assert epochs == [1, 2]  # epoch 1 from the first process, epoch 2 from the resumed one
    record = RunRecord.read(run_dir / RUN_RECORD)
    assert record.settings.epochs == 2 and record.resumed_at_epochs == [2]
    assert "Resumed runs" in (tmp_path / "results.md").read_text()  # resumed runs are not bit-identical: say so


def test_table_reports_spread_over_seeds_intervals_and_empty_size_bins():
    def row(model, seed, map50_95):
        return {
            "dataset": "d",
            "model": f"cfg/{model}.yaml",
            "seed": seed,
            "params": 3_000_000 if model == "a" else 3_300_000,
            "gflops": 2.0,
            "latency_ms": 10.0,
            "latency_ratio": 1.0 if model == "a" else 1.1,
            "latency_ratio_low": 1.0 if model == "a" else 1.05,
            "latency_ratio_high": 1.0 if model == "a" else 1.2,
            "map50": 0.5,
            "map50_95": map50_95,
            "ap_small": 0.1,
            "ap_medium": 0.2,
            "ap_large": math.nan,
            "train_s": 60.0,
        }

    rows = [row("a", 0, 0.30), row("b", 0, 0.34), row("a", 1, 0.32), row("b", 1, 0.36)]
    table = markdown_table(rows)
    a_line = next(line for line in table.splitlines() if line.startswith("| d | a |"))  # file stems, not paths
    b_line = next(line for line in table.splitlines() if line.startswith("| d | b |"))
    assert "0.310 ± 0.014 (0.300–0.320)" in a_line and "| 0,1 |" in a_line
    assert "+10.0%" in b_line and "+0.040" in b_line and "+10.0% [+5.0, +20.0]" in b_line
    assert b_line.rstrip(" |").split(" | ")[-2] == "—"  # AP large: no labels of that size, not 0


def test_training_time_adds_up_resumed_segments(tmp_path):
    results = tmp_path / "results.csv"
    results.write_text("epoch,time\n1,10\n2,20\n3,5\n4,12\n")  # resumed after epoch 2: the clock restarted
    assert training_seconds(results) == 32


def test_models_come_from_list_or_preset():
    assert resolve_models("yolov8n.yaml, yolov8s.yaml") == ["yolov8n.yaml", "yolov8s.yaml"]
    assert resolve_models(None, "scsa") == list(PRESETS["scsa"])
    assert resolve_models() == list(PRESETS["scsa"])
    with pytest.raises(UsageError, match="distinct file stems"):
        resolve_models("a/yolov8n.yaml,b/yolov8n.yaml")  # same run folder name
    with pytest.raises(UsageError, match="--preset 'no-such-preset'"):
        resolve_models(None, "no-such-preset")


def test_datasets_path_falls_back_to_the_shipped_yaml(tmp_path, monkeypatch):
    from scsa_yolo.benchmark.plan import shipped_dataset
    from scsa_yolo.resources import resource_dir

    monkeypatch.chdir(tmp_path)  # no datasets/ folder here: the packaged copy is used
    assert Path(shipped_dataset("datasets/VisDrone.yaml")) == resource_dir("datasets") / "VisDrone.yaml"
    assert shipped_dataset("VisDrone.yaml") == "VisDrone.yaml"  # a bare name stays Ultralytics' to resolve
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "VisDrone.yaml").write_text("names: {0: a}\n")
    assert shipped_dataset("datasets/VisDrone.yaml") == "datasets/VisDrone.yaml"  # the user's own file wins
