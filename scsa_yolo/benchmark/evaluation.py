"""Validation of a finished run: Ultralytics' metrics, its COCO area APs, and per-image matching records.

One pass of Ultralytics' own detection validator gives everything the benchmark reports for a run:

- mAP50 / mAP50-95 / precision / recall (``metrics.box``);
- AP by object size, ``ap_small`` / ``ap_medium`` / ``ap_large``: with ``save_json=True`` on a custom dataset the
  validator builds COCO ground truth from the labels (areas in original-image pixels) and evaluates it with
  faster-coco-eval (``DetectionValidator.coco_evaluate``). A size bin without ground truth is NaN (COCO's -1);
- per image, the validator's own matching of predictions to labels at the 10 IoU thresholds (``_process_batch`` /
  ``match_predictions``) with confidences and classes, for the whole image and restricted to COCO's "small" bin,
  which :mod:`scsa_yolo.benchmark.stats` resamples for the paired bootstrap.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.models.yolo.obb import OBBValidator
from ultralytics.models.yolo.pose import PoseValidator
from ultralytics.models.yolo.segment import SegmentationValidator
from ultralytics.utils import ops
from ultralytics.utils.metrics import box_iou

from scsa_yolo.benchmark.image_stats import AREA_RANGES, ImageStats, save_image_stats
from scsa_yolo.benchmark.settings import TrainSettings
from scsa_yolo.benchmark.tasks import DetectMetrics, OBBMetrics, PoseMetrics, SegmentMetrics

IMAGE_STATS_FILE = "image_stats.npz"
SIZE_BINS = ("small",)  # bins kept per image for the bootstrap (comparisons.csv compares ap_small)


class ImageStatsValidator(DetectionValidator):
    """Ultralytics' detection validator that also keeps each image's matching results.

    The matching itself is the parent's ``_process_batch``; this class only records its output per image together
    with the image's confidences, classes and box areas, and repeats the same matching against the labels of each
    size bin. Subclasses for the other box tasks name their extra matches (``extra_bins``: bin -> key of the
    parent's result, e.g. ``"mask": "tp_m"``) and drop the size bins where boxes are not axis-aligned.
    """

    size_bins: tuple[str, ...] = SIZE_BINS
    extra_bins: dict[str, str] = {}

    def init_metrics(self, model: torch.nn.Module) -> None:
        """Start the per-image records along with the parent's metrics."""
        super().init_metrics(model)
        self.image_names: list[str] = []
        self.labels_per_area = dict.fromkeys(AREA_RANGES, 0)
        bins = ("all", *self.size_bins, *self.extra_bins)
        self.image_records: dict[str, list[dict]] = {name: [] for name in bins}

    def _process_batch(self, preds: dict[str, torch.Tensor], batch: dict) -> dict[str, np.ndarray]:
        """Match one image's predictions (the parent's result is returned unchanged) and record them."""
        result = super()._process_batch(preds, batch)
        conf = preds["conf"].cpu().numpy().astype(np.float32)
        pred_cls = preds["cls"].cpu().numpy()
        target_cls = batch["cls"].cpu().numpy()
        self.image_names.append(Path(batch["im_file"]).name)
        record = {
            "tp": result["tp"],
            "counted": np.ones_like(result["tp"]),
            "conf": conf,
            "pred_cls": pred_cls,
            "target_cls": target_cls,
        }
        self.image_records["all"].append(record)
        for name, key in self.extra_bins.items():
            self.image_records[name].append({**record, "tp": result[key]})
        if not self.size_bins:
            return result
        target_area = _areas(batch["bboxes"], batch)
        for name, (low, high) in AREA_RANGES.items():
            self.labels_per_area[name] += int(((target_area >= low) & (target_area <= high)).sum())
        for name in self.size_bins:
            self.image_records[name].append({**self._size_bin(preds, batch, AREA_RANGES[name]), "conf": conf})
        return result

    def _size_bin(self, preds: dict[str, torch.Tensor], batch: dict, area_range: tuple[float, float]) -> dict:
        """Match against the labels inside one COCO area range, with COCO's ignore rule for everything else.

        Areas are in original-image pixels, as in the COCO ground truth the parent builds. A prediction is counted at
        a threshold when it matches a label of the bin there, or when it matches nothing of the image there and its
        own box lies in the bin (then it is a false positive); otherwise it is ignored, as COCOeval ignores
        detections matched to out-of-range labels and unmatched detections outside the range.
        """
        n_pred, n_iou = preds["cls"].shape[0], self.niou
        target_area = _areas(batch["bboxes"], batch)
        inside = (target_area >= area_range[0]) & (target_area <= area_range[1])
        pred_area = _areas(preds["bboxes"], batch)
        pred_inside = (pred_area >= area_range[0]) & (pred_area <= area_range[1])
        tp = np.zeros((n_pred, n_iou), bool)
        matches_outside = np.zeros((n_pred, n_iou), bool)
        if n_pred and inside.any():
            mask = torch.from_numpy(inside).to(batch["cls"].device)
            iou = box_iou(batch["bboxes"][mask], preds["bboxes"])
            tp = self.match_predictions(preds["cls"], batch["cls"][mask], iou).cpu().numpy()
        if n_pred and (~inside).any():
            mask = torch.from_numpy(~inside).to(batch["cls"].device)
            iou = box_iou(batch["bboxes"][mask], preds["bboxes"])
            matches_outside = self.match_predictions(preds["cls"], batch["cls"][mask], iou).cpu().numpy()
        counted = tp | (~matches_outside & pred_inside[:, None])
        return {
            "tp": tp,
            "counted": counted,
            "pred_cls": preds["cls"].cpu().numpy(),
            "target_cls": batch["cls"].cpu().numpy()[inside],
        }

    def image_stats(self) -> dict[str, ImageStats]:
        """The records of the last validation, per size bin (``"all"`` = every label)."""
        return {name: ImageStats.from_images(self.image_names, records) for name, records in self.image_records.items()}


class SegmentStatsValidator(ImageStatsValidator, SegmentationValidator):
    """Ultralytics' segmentation validator that also keeps each image's box matches and mask matches (``tp_m``)."""

    size_bins = ()
    extra_bins = {"mask": "tp_m"}


class PoseStatsValidator(ImageStatsValidator, PoseValidator):
    """Ultralytics' pose validator that also keeps each image's box matches and keypoint (OKS) matches (``tp_p``)."""

    size_bins = ()
    extra_bins = {"pose": "tp_p"}


class OBBStatsValidator(ImageStatsValidator, OBBValidator):
    """Ultralytics' oriented-box validator that also keeps each image's rotated-box matches (probabilistic IoU)."""

    size_bins = ()


def _areas(boxes: torch.Tensor, batch: dict) -> np.ndarray:
    """Areas of xyxy boxes given in the letterboxed image, measured in the original image's pixels."""
    if not boxes.shape[0]:
        return np.zeros(0)
    native = ops.scale_boxes(batch["imgsz"], boxes.clone(), batch["ori_shape"], ratio_pad=batch["ratio_pad"])
    return ((native[:, 2] - native[:, 0]) * (native[:, 3] - native[:, 1])).cpu().numpy()


def validator_args(checkpoint: dict, settings: TrainSettings, run_dir: Path) -> dict:
    """The validation arguments of a run: its data and settings, no plots, results in ``run_dir/final_val``."""
    saved = checkpoint.get("train_args", {})
    return {
        **{key: saved[key] for key in ("task", "single_cls") if key in saved},
        "rect": True,  # what YOLO.val uses by default
        "data": settings.data,
        "imgsz": settings.imgsz,
        "batch": settings.batch,
        "device": settings.device,
        "workers": settings.workers,
        "plots": False,
        "project": str(run_dir),
        "name": "final_val",
        "exist_ok": True,
        "mode": "val",
    }


def validate_run(weights: Path, settings: TrainSettings, run_dir: Path, task: str) -> tuple[object, int, str, str]:
    """Validate ``weights`` on the val split once with the task's validator and write its per-image statistics.

    The checkpoint is loaded with Ultralytics' restricted loader (its caller checked it is the benchmark's own).

    Args:
        weights: Checkpoint to validate.
        settings: The run's settings (dataset, size, batch, device, workers).
        run_dir: Run folder; the validator writes into ``run_dir/final_val``.
        task: The model's task.

    Returns:
        The task's metrics record, the number of val images, the statistics file's path relative to ``run_dir``
        and its SHA-256.
    """
    from scsa_yolo.benchmark.run import load_restricted
    from scsa_yolo.data.images import file_digest

    checkpoint = load_restricted(weights, "run checkpoint")
    model = (checkpoint.get("ema") or checkpoint["model"]).float()
    args = validator_args(checkpoint, settings, run_dir)
    if task == "detect":
        metrics, images, path = _validate_detection(model, args, weights)
    elif task in MATCH_VALIDATORS:
        metrics, images, path = validate_matches(model, args, task)
    else:
        from scsa_yolo.benchmark.evaluation_tasks import validate_summed

        metrics, images, path = validate_summed(model, args, task)
    return metrics, images, path.relative_to(run_dir).as_posix(), file_digest(path)


MATCH_VALIDATORS = {"segment": SegmentStatsValidator, "pose": PoseStatsValidator, "obb": OBBStatsValidator}


def validate_matches(model: torch.nn.Module, args: dict, task: str) -> tuple[object, int, Path]:
    """Validate a segment/pose/OBB model with its task's recording validator; save the per-image matches.

    Returns:
        The task's metrics record (box mAP, and mask/keypoint mAP), the number of val images, and the statistics file.
    """
    validator = MATCH_VALIDATORS[task](args={**args, "task": task, "save_json": False})
    validator(model=model)
    box = validator.metrics.box
    values = {"map50": round(float(box.map50), 4), "map50_95": round(float(box.map), 4)}
    second = {"segment": ("mask", "seg"), "pose": ("pose", "pose")}.get(task)
    if second:
        name, attribute = second
        other = getattr(validator.metrics, attribute)
        values |= {f"{name}_map50": round(float(other.map50), 4), f"{name}_map50_95": round(float(other.map), 4)}
    metrics = {"segment": SegmentMetrics, "pose": PoseMetrics, "obb": OBBMetrics}[task](**values)
    path = Path(validator.save_dir) / IMAGE_STATS_FILE
    bins = validator.image_stats()
    save_image_stats(path, bins)
    return metrics, len(bins["all"].images), path


def _validate_detection(model: torch.nn.Module, args: dict, weights: Path) -> tuple[DetectMetrics, int, Path]:
    validator = ImageStatsValidator(args={**args, "save_json": True})  # Ultralytics' COCO evaluation: area APs
    results = validator(model=model)
    box = validator.metrics.box
    stats_path = Path(validator.save_dir) / IMAGE_STATS_FILE
    bins = validator.image_stats()
    save_image_stats(stats_path, bins)
    metrics = DetectMetrics(
        map50=round(float(box.map50), 4),
        map50_95=round(float(box.map), 4),
        precision=round(float(box.mp), 4),
        recall=round(float(box.mr), 4),
    )
    for name in AREA_RANGES:
        value = results.get(f"metrics/mAP_{name}(B)")
        if value is None:
            raise RuntimeError(f"Ultralytics' COCO evaluation gave no mAP_{name}(B) for {weights}")
        empty = value < 0 or not validator.labels_per_area[name]  # COCO's -1; or no COCO run: no predictions at all
        setattr(metrics, f"ap_{name}", math.nan if empty else round(float(value), 4))
    return metrics, len(bins["all"].images), stats_path
