"""Pose and oriented-box models: their validators' per-image matches (keypoint OKS matches, rotated-box matches)
give Ultralytics' own mAP through the detection AP engine, so the paired bootstrap compares them as it does boxes.

No training: an untrained model from the stock YAML is validated (with a near-zero confidence threshold, so there are
predictions to match) on a few 64-px images the test writes.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest
from ultralytics import YOLO

from scsa_yolo.benchmark.evaluation import OBBStatsValidator, PoseStatsValidator
from scsa_yolo.benchmark.stats import DetectionStatistics, PerImageSums, average_precision, paired_comparisons
from scsa_yolo.benchmark.tasks import TASKS


def write_images(root: Path, images: int = 3, size: int = 64, seed: int = 0) -> list[list[tuple]]:
    """Noise images with two bright rectangles each; returns per image the rectangles' (x0, y0, x1, y1) in pixels."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    found = []
    for index in range(images):
        image = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        boxes = []
        for _ in range(2):
            w, h = rng.integers(size // 5, size // 2, 2)
            x0, y0 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            image[y0 : y0 + h, x0 : x0 + w] = 255
            boxes.append((x0, y0, x0 + int(w), y0 + int(h)))
        cv2.imwrite(str(root / "images" / f"p{index}.png"), image)
        found.append(boxes)
    return found


def validate(validator_type, model_yaml: str, data: Path, tmp_path: Path, task: str):
    args = dict(
        data=str(data),
        imgsz=64,
        batch=4,
        workers=0,
        device="cpu",
        conf=1e-4,
        plots=False,
        save_json=False,
        project=str(tmp_path),
        name="val",
        exist_ok=True,
        mode="val",
        task=task,
        rect=True,
    )
    validator = validator_type(args=args)
    validator(model=YOLO(model_yaml).model)
    return validator


def test_pose_keypoint_matches_give_ultralytics_pose_and_box_map(tmp_path):
    root = tmp_path / "kpt"
    size = 64
    for index, boxes in enumerate(write_images(root)):
        rows = []
        for x0, y0, x1, y1 in boxes:  # 17 keypoints spread over the rectangle, all visible
            points = [(x0 + (x1 - x0) * (k % 5) / 4, y0 + (y1 - y0) * (k // 5) / 3) for k in range(17)]
            keypoints = " ".join(f"{x / size:.4f} {y / size:.4f} 2" for x, y in points)
            box = f"{(x0 + x1) / 2 / size:.4f} {(y0 + y1) / 2 / size:.4f} {(x1 - x0) / size:.4f} {(y1 - y0) / size:.4f}"
            rows.append(f"0 {box} {keypoints}")
        (root / "labels" / f"p{index}.txt").write_text("\n".join(rows) + "\n")
    data = root / "kpt.yaml"
    data.write_text(f"path: {root}\ntrain: images\nval: images\nkpt_shape: [17, 3]\nnames:\n  0: thing\n")
    validator = validate(PoseStatsValidator, "yolov8n-pose.yaml", data, tmp_path, "pose")
    bins = validator.image_stats()
    assert set(bins) == {"all", "pose"} and len(bins["pose"].images) == 3 and len(bins["pose"].conf) > 0
    assert average_precision(bins["pose"])["map50_95"] == pytest.approx(validator.metrics.pose.map, abs=1e-6)
    assert average_precision(bins["all"])["map50_95"] == pytest.approx(validator.metrics.box.map, abs=1e-6)
    # the pose task's statistics compare a run with itself as nothing: zero difference, zero-width interval
    task = TASKS["pose"].statistics()
    assert isinstance(task, DetectionStatistics) and task.metrics == ("pose_map50_95", "map50_95")
    for c in paired_comparisons({"a": [bins], "b": [bins]}, resamples=50, task=task):
        assert c.delta == c.ci_low == c.ci_high == 0.0


def test_obb_rotated_matches_give_ultralytics_map(tmp_path):
    root = tmp_path / "obb"
    size = 64
    for index, boxes in enumerate(write_images(root)):
        rows = []
        for x0, y0, x1, y1 in boxes:
            corners = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
            rows.append("0 " + " ".join(f"{x / size:.4f} {y / size:.4f}" for x, y in corners))
        (root / "labels" / f"p{index}.txt").write_text("\n".join(rows) + "\n")
    data = root / "obb.yaml"
    data.write_text(f"path: {root}\ntrain: images\nval: images\nnames:\n  0: thing\n")
    validator = validate(OBBStatsValidator, "yolov8n-obb.yaml", data, tmp_path, "obb")
    bins = validator.image_stats()
    assert set(bins) == {"all"} and len(bins["all"].images) == 3 and len(bins["all"].conf) > 0
    assert average_precision(bins["all"])["map50_95"] == pytest.approx(validator.metrics.box.map, abs=1e-6)
    assert average_precision(bins["all"])["map50"] == pytest.approx(validator.metrics.box.map50, abs=1e-6)


def test_depth_per_image_values_give_ultralytics_abs_rel_and_delta1(tmp_path):
    from scsa_yolo.benchmark.evaluation_tasks import DepthStatsValidator

    root = tmp_path / "depth"
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "depth" / split).mkdir(parents=True)
        for index in range(3):
            cv2.imwrite(str(root / "images" / split / f"d{index}.png"), rng.integers(0, 255, (64, 64, 3), np.uint8))
            depth = np.linspace(1.0, 5.0, 64 * 64, dtype=np.float32).reshape(64, 64) * (1 + index)
            depth[:8] = 0.0  # invalid pixels
            np.save(root / "depth" / split / f"d{index}.npy", depth)
    data = root / "depth.yaml"
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnc: 1\nnames:\n  0: depth\n")
    validator = validate(DepthStatsValidator, "yolo26n-depth.yaml", data, tmp_path, "depth")
    rows = np.stack(validator.image_rows)
    assert (
        rows.shape == (3, 3)
        and (rows[:, 2] == 1).all()
        and sorted(validator.image_files)
        == [
            "d0.png",
            "d1.png",
            "d2.png",
        ]
    )
    values = TASKS["depth"].statistics().evaluate(PerImageSums(validator.image_files, rows), np.ones((1, 3)))
    results = validator.metrics.results_dict
    assert values["abs_rel"][0] == pytest.approx(results["metrics/abs_rel"], rel=1e-6)
    assert values["delta1"][0] == pytest.approx(results["metrics/delta1"], rel=1e-6)
    assert 0 < results["metrics/abs_rel"] and 0 <= results["metrics/delta1"] <= 1
