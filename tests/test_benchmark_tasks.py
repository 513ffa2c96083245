"""The benchmark on tasks other than detection: classifiers (top-1/top-5, exact paired test), with one task per plan.

Every dataset is written by the test (a few 32-px images); training is 1 epoch. The A/A comparison trains the same
architecture twice with the same seed under two file names: it must claim nothing.
"""

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import ultralytics

from scsa_yolo.benchmark import BenchmarkRequest, TrainSettings, run_benchmark
from scsa_yolo.benchmark.image_stats import load_image_sums
from scsa_yolo.benchmark.paired_tests import exact_paired_tests, mcnemar_exact
from scsa_yolo.benchmark.plan import plan_benchmark
from scsa_yolo.benchmark.records import RUN_RECORD, RunRecord, result_columns
from scsa_yolo.benchmark.report import COMPARISON_COLUMNS
from scsa_yolo.benchmark.stats import PerImageSums, paired_comparisons
from scsa_yolo.benchmark.tasks import TASKS, task_spec
from scsa_yolo.errors import UsageError

CFG = Path(ultralytics.__file__).parent / "cfg" / "models"


def write_classification_folder(root: Path, per_class: int = 4, size: int = 32, seed: int = 0) -> Path:
    """Two classes (dark and bright noise) in train/ and val/ folders, ``per_class`` images each; returns root."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for name, (low, high) in (("dark", (0, 90)), ("bright", (160, 256))):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(per_class):
                image = rng.integers(low, high, (size, size, 3), dtype=np.uint8)
                cv2.imwrite(str(folder / f"{name}{index}.png"), image)
    return root


def twin(source: Path, name: str, folder: Path) -> str:
    """A stock model YAML under another file name (scale from the name): the same architecture, another stem."""
    path = folder / name
    shutil.copyfile(source, path)
    return str(path)


def settings(data, imgsz=32):
    return TrainSettings(data=str(data), epochs=1, imgsz=imgsz, batch=4, workers=0, device="cpu")


def request(models, data, out, **options):
    return BenchmarkRequest(
        models=tuple(models), settings=settings(data), seeds=(0,), out=out, latency_repeats=2, resamples=300, **options
    )


@pytest.fixture(scope="module")
def classified(tmp_path_factory):
    """yolov8n-cls, its twin (A/A) and yolov8s-cls, seed 0, on a 16-image folder: one benchmark for the module."""
    root = tmp_path_factory.mktemp("cls")
    data = write_classification_folder(root / "shapes")
    models = [
        "yolov8n-cls.yaml",
        twin(CFG / "v8" / "yolov8-cls.yaml", "twin-yolov8n-cls.yaml", root),
        "yolov8s-cls.yaml",
    ]
    out = root / "out"
    rows = run_benchmark(request(models, data, out))
    return {"out": out, "rows": rows, "models": models, "data": data}


def test_classifiers_get_accuracy_columns_and_intervals_that_hold_their_estimates(classified):
    out = classified["out"]
    with open(out / "results.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        written = list(reader)
    assert tuple(reader.fieldnames) == result_columns("classify")
    assert {"top1", "top5", "params", "gflops", "latency_ms"} <= set(reader.fieldnames)
    assert not {"map50_95", "ap_small"} & set(reader.fieldnames)  # the columns follow the task
    assert [row["model"] for row in written] == ["yolov8n-cls", "twin-yolov8n-cls", "yolov8s-cls"]
    for row in written:
        assert 0.0 <= float(row["top1"]) <= float(row["top5"]) == 1.0  # two classes: top-5 is always right
        assert int(row["val_images"]) == 8 and int(row["params"]) > 100_000 and float(row["latency_ms"]) > 0
    assert int(written[2]["params"]) > 2 * int(written[0]["params"])  # s is wider than n
    with open(out / "runs" / "yolov8n-cls-seed0" / "results.csv", newline="") as handle:
        logged = {name.strip() for name in next(csv.reader(handle))}
    assert {column for column, _ in TASKS["classify"].curves} <= logged  # training_curves.png plots real columns

    with open(out / "comparisons.csv", newline="") as handle:
        comparisons = list(csv.DictReader(handle))
    assert tuple(comparisons[0]) == COMPARISON_COLUMNS
    assert [(c["model"], c["metric"]) for c in comparisons] == [
        (model, metric) for model in ("twin-yolov8n-cls", "yolov8s-cls") for metric in ("top1", "top5")
    ]
    by_model = {row["model"]: float(row["top1"]) for row in written}
    for c in comparisons:
        low, delta, high = float(c["ci_low"]), float(c["delta"]), float(c["ci_high"])
        assert low <= delta <= high and c["images"] == "8"
        if c["metric"] == "top1":  # the estimate is the difference of Ultralytics' own top-1 accuracies
            assert delta == pytest.approx(by_model[c["model"]] - by_model["yolov8n-cls"], abs=1e-4)


def test_the_a_a_comparison_of_classifiers_claims_nothing(classified):
    out = classified["out"]
    with open(out / "comparisons.csv", newline="") as handle:
        same = [c for c in csv.DictReader(handle) if c["model"] == "twin-yolov8n-cls"]
    for c in same:
        assert float(c["ci_low"]) <= 0.0 <= float(c["ci_high"])
    report = (out / "results.md").read_text()
    assert "twin-yolov8n-cls vs yolov8n-cls: Δtop-1" in report and "not distinguishable from noise" in report
    assert "## Exact paired test (top-1, per seed)" in report
    line = next(line for line in report.splitlines() if line.startswith("- twin-yolov8n-cls vs yolov8n-cls, seed 0"))
    assert "no difference shown" in line


def test_exact_paired_test_counts_the_images_each_model_got_right(classified, tmp_path):
    out = classified["out"]
    runs = {}
    for model in ("yolov8n-cls", "yolov8s-cls"):
        run_dir = out / "runs" / f"{model}-seed0"
        record = RunRecord.read(run_dir / RUN_RECORD)
        assert record.task == "classify" and record.metrics.top1 == pytest.approx(
            load_image_sums(run_dir / record.image_stats).values[:, 0].mean(), abs=1e-4
        )  # the per-image flags sum to Ultralytics' own top-1
        runs[model] = [load_image_sums(run_dir / record.image_stats)]
    (test,) = exact_paired_tests(runs, [0])
    a, b = runs["yolov8n-cls"][0].values[:, 0], runs["yolov8s-cls"][0].values[:, 0]
    assert (test.both_right, test.only_reference, test.only_model, test.both_wrong) == (
        int(((a == 1) & (b == 1)).sum()),
        int(((a == 1) & (b == 0)).sum()),
        int(((a == 0) & (b == 1)).sum()),
        int(((a == 0) & (b == 0)).sum()),
    )


def test_mcnemar_exact_matches_the_binomial_by_hand():
    # 0 vs 6 discordant images: p = 2 * 0.5**6; 1 vs 6: 2 * (1 + 7) / 2**7; none: nothing to test
    assert mcnemar_exact(0, 6) == pytest.approx(2 * 0.5**6)
    assert mcnemar_exact(6, 1) == pytest.approx(2 * 8 / 2**7)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(3, 3) == 1.0
    images = [f"i{k}" for k in range(10)]
    reference = PerImageSums(images, np.array([[1, 1, 1]] * 2 + [[0, 1, 1]] * 8, float))
    better = PerImageSums(images, np.ones((10, 3)))
    (test,) = exact_paired_tests({"r": [reference], "m": [better]}, [7])
    assert (test.seed, test.only_model, test.only_reference, test.both_right) == (7, 8, 0, 2)
    assert test.p_value == pytest.approx(2 * 0.5**8) and test.significant
    # the bootstrap on the same statistics: top-1 0.2 -> 1.0, an interval above zero
    (top1, top5) = paired_comparisons(
        {"r": [reference], "m": [better]}, resamples=500, task=TASKS["classify"].statistics()
    )
    assert top1.delta == pytest.approx(0.8) and top1.ci_low > 0 and top5.delta == 0.0


def test_mixed_tasks_and_datasets_of_another_task_are_refused_before_training(tmp_path, tiny_dataset):
    data = write_classification_folder(tmp_path / "c", per_class=1)
    out = tmp_path / "out"
    with pytest.raises(UsageError, match=r"mixes tasks: yolov8n.yaml \(detect\), yolov8n-cls.yaml \(classify\)"):
        plan_benchmark(request(["yolov8n.yaml", "yolov8n-cls.yaml"], data, out))
    with pytest.raises(UsageError, match=f"--data {tiny_dataset} is a dataset YAML, but the models are classifiers"):
        plan_benchmark(request(["yolov8n-cls.yaml", "yolov8s-cls.yaml"], tiny_dataset, out))
    with pytest.raises(UsageError, match="not a dataset YAML .* but the models are detect models"):
        plan_benchmark(request(["yolov8n.yaml", "yolov8s.yaml"], data, out))
    with pytest.raises(UsageError, match="no such classification folder"):
        plan_benchmark(request(["yolov8n-cls.yaml"], tmp_path / "missing", out))
    with pytest.raises(UsageError, match="--data is required for classify models"):
        plan_benchmark(BenchmarkRequest(models=("yolov8n-cls.yaml",), out=out))
    with pytest.raises(UsageError, match="cannot compare unknown models yet; it compares detect, segment"):
        task_spec("unknown")  # what the plan raises for a task without statistics
    with pytest.raises(UsageError, match="has no kpt_shape, but the models are pose models"):
        plan_benchmark(request(["yolov8n-pose.yaml"], tiny_dataset, out))
    assert not out.exists()  # nothing written, nothing trained


def test_run_records_carry_their_task_and_typed_metrics_and_old_records_are_refused():
    from scsa_yolo.benchmark.records import ResultsFolderError
    from scsa_yolo.benchmark.tasks import ClassifyMetrics

    record = RunRecord(
        model="m.yaml",
        seed=0,
        settings=settings("d"),
        task="classify",
        metrics=ClassifyMetrics(top1=0.5, top5=float("nan")),
        val_images=8,
        image_stats="final_val/image_stats.npz",
        image_stats_sha256="0" * 64,
        weights_sha256="1" * 64,
    )
    value = record.to_json()
    assert value["metrics"] == {"top1": 0.5, "top5": None} and value["task"] == "classify"
    again = RunRecord.from_json(value)
    assert isinstance(again.metrics, ClassifyMetrics) and again.metrics.top1 == 0.5
    old = {**value, "format": 2}
    with pytest.raises(ResultsFolderError, match="run record format 2: detection metrics only"):
        RunRecord.from_json(old, "x/benchmark_run.json")
