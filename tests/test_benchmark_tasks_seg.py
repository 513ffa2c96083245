"""The benchmark on segmentation tasks: instance segmentation (box and mask mAP from the validator's per-image
matches) and semantic segmentation (mIoU from per-image confusion matrices), each with an A/A comparison.

Every dataset is written by the test (a few 64-px images); training is 1 epoch.
"""

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import ultralytics
from ultralytics.utils.metrics import SemanticMetrics as UltralyticsSemanticMetrics

from scsa_yolo.benchmark import BenchmarkRequest, TrainSettings, run_benchmark
from scsa_yolo.benchmark.image_stats import load_image_stats, load_image_sums
from scsa_yolo.benchmark.plan import plan_benchmark
from scsa_yolo.benchmark.records import RUN_RECORD, RunRecord, result_columns
from scsa_yolo.benchmark.stats import average_precision
from scsa_yolo.benchmark.tasks import TASKS, miou_from_confusion
from scsa_yolo.errors import UsageError

CFG = Path(ultralytics.__file__).parent / "cfg" / "models"


def write_shapes(root: Path, images: int = 4, size: int = 64, seed: int = 0) -> list[tuple[np.ndarray, list]]:
    """Bright rectangles (class 1) and orange ones (class 0) on dark noise; returns (image, [(cls, x0, y0, x1, y1)])."""
    rng = np.random.default_rng(seed)
    made = []
    for _ in range(images):
        image = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        boxes = []
        for _ in range(2):
            w, h = rng.integers(size // 5, size // 2, 2)
            x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            cls = int(rng.integers(0, 2))
            image[y0 : y0 + h, x0 : x0 + w] = (255, 255, 255) if cls else (0, 200, 255)
            boxes.append((cls, x0, y0, x0 + int(w), y0 + int(h)))
        made.append((image, boxes))
    return made


def write_instance_dataset(root: Path) -> Path:
    """A YOLO segmentation dataset (polygon labels, train = val); returns its YAML."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for index, (image, boxes) in enumerate(write_shapes(root)):
        size = image.shape[0]
        cv2.imwrite(str(root / "images" / f"s{index}.png"), image)
        rows = [
            f"{c} " + " ".join(f"{x / size:.4f} {y / size:.4f}" for x, y in ((a, b), (d, b), (d, e), (a, e)))
            for c, a, b, d, e in boxes
        ]
        (root / "labels" / f"s{index}.txt").write_text("\n".join(rows) + "\n")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images\nval: images\nnames:\n  0: orange\n  1: white\n")
    return data


def write_semantic_dataset(root: Path) -> Path:
    """A semantic dataset (PNG masks of class ids under masks/, mirroring images/); returns its YAML."""
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for index, (image, boxes) in enumerate(write_shapes(root, seed=len(split))):
            mask = np.zeros(image.shape[:2], np.uint8)  # 0: ground
            for cls, x0, y0, x1, y1 in boxes:
                mask[y0:y1, x0:x1] = 1 + cls
            cv2.imwrite(str(root / "images" / split / f"m{index}.png"), image)
            cv2.imwrite(str(root / "masks" / split / f"m{index}.png"), mask)
    data = root / "sem.yaml"
    data.write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\nmasks_dir: masks\n"
        "names:\n  0: ground\n  1: orange\n  2: white\n"
    )
    return data


def twin(source: Path, name: str, folder: Path) -> str:
    path = folder / name
    shutil.copyfile(source, path)
    return str(path)


def request(models, data, out):
    settings = TrainSettings(data=str(data), epochs=1, imgsz=64, batch=4, workers=0, device="cpu")
    return BenchmarkRequest(
        models=tuple(models), settings=settings, seeds=(0,), out=out, latency_repeats=2, resamples=300
    )


def comparisons_of(out: Path) -> list[dict]:
    with open(out / "comparisons.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def assert_curves_are_logged(run_dir: Path, task: str) -> None:
    """The columns training_curves.png plots for the task are in the run's Ultralytics results.csv."""
    with open(run_dir / "results.csv", newline="") as handle:
        logged = {name.strip() for name in next(csv.reader(handle))}
    assert {column for column, _ in TASKS[task].curves} <= logged


def results_of(out: Path) -> tuple[list[str], list[dict]]:
    with open(out / "results.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def test_segmenters_compare_box_and_mask_map_and_an_a_a_pair_claims_nothing(tmp_path):
    data = write_instance_dataset(tmp_path / "inst")
    models = ["yolov8n-seg.yaml", twin(CFG / "v8" / "yolov8-seg.yaml", "twin-yolov8n-seg.yaml", tmp_path)]
    out = tmp_path / "out"
    run_benchmark(request(models, data, out))
    columns, rows = results_of(out)
    assert tuple(columns) == result_columns("segment") and {"mask_map50_95", "map50_95"} <= set(columns)
    assert [row["model"] for row in rows] == ["yolov8n-seg", "twin-yolov8n-seg"]
    found = comparisons_of(out)
    assert [c["metric"] for c in found] == ["mask_map50_95", "map50_95"]
    for c in found:  # the same architecture and seed twice: no difference claimed
        assert float(c["ci_low"]) <= float(c["delta"]) <= float(c["ci_high"])
        assert float(c["ci_low"]) <= 0.0 <= float(c["ci_high"])
    report = (out / "results.md").read_text()
    assert "twin-yolov8n-seg vs yolov8n-seg: Δmask mAP50-95" in report and "not distinguishable" in report
    # the AP engine on the saved mask matches gives Ultralytics' own mask and box mAP
    run_dir = out / "runs" / "yolov8n-seg-seed0"
    record = RunRecord.read(run_dir / RUN_RECORD)
    stats = load_image_stats(run_dir / record.image_stats)
    assert set(stats) == {"all", "mask"} and record.val_images == 4
    assert_curves_are_logged(run_dir, "segment")
    assert average_precision(stats["mask"])["map50_95"] == pytest.approx(record.metrics.mask_map50_95, abs=1e-4)
    assert average_precision(stats["all"])["map50_95"] == pytest.approx(record.metrics.map50_95, abs=1e-4)


def test_semantic_models_compare_miou_from_per_image_confusion_matrices(tmp_path):
    data = write_semantic_dataset(tmp_path / "sem")
    models = ["yolo26n-sem.yaml", twin(CFG / "26" / "yolo26-sem.yaml", "twin-yolo26n-sem.yaml", tmp_path)]
    out = tmp_path / "out"
    run_benchmark(request(models, data, out))
    columns, rows = results_of(out)
    assert tuple(columns) == result_columns("semantic") and "miou" in columns and "map50_95" not in columns
    for row in rows:
        assert 0.0 <= float(row["miou"]) <= 1.0 and int(row["val_images"]) == 4
    (c,) = comparisons_of(out)
    assert c["metric"] == "miou" and float(c["ci_low"]) <= float(c["delta"]) <= float(c["ci_high"])
    assert float(c["ci_low"]) <= 0.0 <= float(c["ci_high"])  # A/A: nothing claimed
    run_dir = out / "runs" / "yolo26n-sem-seed0"
    record = RunRecord.read(run_dir / RUN_RECORD)
    sums = load_image_sums(run_dir / record.image_stats)
    assert_curves_are_logged(run_dir, "semantic")
    assert sums.values.shape == (4, 3 * 3 + 1)  # one 3x3 confusion matrix per image, plus the one-class flag
    # summing the per-image matrices gives Ultralytics' own mIoU of the run
    assert miou_from_confusion(sums.values.sum(0, keepdims=True))[0] == pytest.approx(record.metrics.miou, abs=1e-4)


@pytest.mark.parametrize("nc", [1, 3])
def test_miou_formula_matches_ultralytics_semantic_metrics(nc):
    rng = np.random.default_rng(nc)
    metrics = UltralyticsSemanticMetrics(names={i: str(i) for i in range(nc)})
    side = metrics.cm_nc
    preds = torch.from_numpy(rng.integers(0, side, (3, 8, 8))).int()
    targets = torch.from_numpy(rng.integers(0, side, (3, 8, 8))).int()
    targets[0, :2] = 255  # ignored pixels
    metrics.update_stats(preds, targets)
    metrics.process()
    rows = []
    for pred, target in zip(preds, targets):
        valid = target != 255
        matrix = np.bincount((side * target[valid] + pred[valid]).numpy(), minlength=side * side)
        rows.append(np.append(matrix, float(nc == 1)))
    assert miou_from_confusion(np.sum(rows, 0, keepdims=True))[0] == pytest.approx(metrics.miou, abs=1e-6)


def test_a_semantic_dataset_is_refused_for_instance_segmenters(tmp_path):
    data = write_semantic_dataset(tmp_path / "sem")
    with pytest.raises(UsageError, match="is a semantic-segmentation dataset .* but the models are segment models"):
        plan_benchmark(request(["yolov8n-seg.yaml"], data, tmp_path / "out"))
    with pytest.raises(UsageError, match=r"mixes tasks: yolov8n-seg.yaml \(segment\), yolo26n-sem.yaml \(semantic\)"):
        plan_benchmark(request(["yolov8n-seg.yaml", "yolo26n-sem.yaml"], data, tmp_path / "out"))
