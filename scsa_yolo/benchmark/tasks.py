"""The tasks the benchmark compares: each one's metrics record, its table, and its per-image statistics.

Every Ultralytics task the benchmark can train is one :class:`TaskSpec`: the typed record of its validation metrics
(the ``results.csv`` columns of that task are its fields), the headline metric of the verdict and the plots, the
metrics the paired bootstrap compares, and how its per-image statistics are evaluated on resampled image sets
(:class:`~scsa_yolo.benchmark.comparisons.TaskStatistics`):

- ``detect``: box mAP50-95, mAP50 and COCO AP of small objects, recomputed from the validator's per-image matches
  (:class:`~scsa_yolo.benchmark.stats.DetectionStatistics`);
- ``segment`` / ``pose``: the same engine on the box matches and on the mask (``tp_m``) / keypoint (``tp_p``)
  matches; ``obb``: the same engine on the rotated-box matches;
- ``classify``: top-1 and top-5 accuracy from per-image (top-1 right, top-5 right) flags, plus an exact paired test
  of the images the two models got right and wrong (:mod:`scsa_yolo.benchmark.paired_tests`);
- ``semantic``: mIoU from per-image confusion matrices summed over the image set;
- ``depth``: abs-rel and delta<1.25 from per-image values (Ultralytics averages them over images).

This module imports nothing heavy (the plan and the records read it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np


@dataclass
class DetectMetrics:
    """Box metrics of one detection run on the val split (final weights).

    Attributes:
        map50: Box mAP50.
        map50_95: Box mAP50-95.
        ap_small: COCO AP of small objects (NaN: no such labels).
        ap_medium: COCO AP of medium objects.
        ap_large: COCO AP of large objects.
        precision: Mean precision.
        recall: Mean recall.
    """

    map50: float = math.nan
    map50_95: float = math.nan
    ap_small: float = math.nan
    ap_medium: float = math.nan
    ap_large: float = math.nan
    precision: float = math.nan
    recall: float = math.nan


@dataclass
class SegmentMetrics:
    """Box and mask metrics of one instance-segmentation run.

    Attributes:
        map50: Box mAP50.
        map50_95: Box mAP50-95.
        mask_map50: Mask mAP50.
        mask_map50_95: Mask mAP50-95.
    """

    map50: float = math.nan
    map50_95: float = math.nan
    mask_map50: float = math.nan
    mask_map50_95: float = math.nan


@dataclass
class PoseMetrics:
    """Box and keypoint metrics of one pose run.

    Attributes:
        map50: Box mAP50.
        map50_95: Box mAP50-95.
        pose_map50: Keypoint (OKS) mAP50.
        pose_map50_95: Keypoint (OKS) mAP50-95.
    """

    map50: float = math.nan
    map50_95: float = math.nan
    pose_map50: float = math.nan
    pose_map50_95: float = math.nan


@dataclass
class OBBMetrics:
    """Oriented-box metrics of one OBB run (matches by probabilistic IoU of rotated boxes).

    Attributes:
        map50: Rotated-box mAP50.
        map50_95: Rotated-box mAP50-95.
    """

    map50: float = math.nan
    map50_95: float = math.nan


@dataclass
class ClassifyMetrics:
    """Accuracy of one classification run.

    Attributes:
        top1: Top-1 accuracy.
        top5: Top-5 accuracy (top-n with n = min(5, classes), as Ultralytics).
    """

    top1: float = math.nan
    top5: float = math.nan


@dataclass
class SemanticMetrics:
    """Semantic-segmentation metrics of one run (Ultralytics' ``SemanticMetrics``).

    Attributes:
        miou: Mean IoU over the classes present in the labels (the foreground IoU for one class).
        pixel_accuracy: Correct pixels / labelled pixels.
    """

    miou: float = math.nan
    pixel_accuracy: float = math.nan


@dataclass
class DepthMetrics:
    """Monocular-depth metrics of one run (Ultralytics' ``DepthMetrics``: per image, then averaged over images).

    Attributes:
        abs_rel: Mean absolute relative error |d - d*| / d* (lower is better).
        delta1: Fraction of pixels with max(d/d*, d*/d) < 1.25 (higher is better).
    """

    abs_rel: float = math.nan
    delta1: float = math.nan


def _per_image_mean(column: int):
    """Summed column / summed last column (the images counted): accuracy, or a per-image mean over images."""
    return lambda sums: sums[:, column] / sums[:, -1]


def miou_from_confusion(sums: np.ndarray) -> np.ndarray:
    """Mean IoU of summed, flattened confusion matrices (S, n*n + 1), rows = labels, as Ultralytics computes it.

    Mean over the classes with labelled pixels in the set; with two classes from a one-class dataset (background
    added) the foreground IoU. NaN for a set without labelled pixels.
    """
    n = int(round(math.sqrt(sums.shape[1] - 1)))  # the last column is the one-class flag
    binary = sums[:, -1] > 0
    matrix = sums[:, :-1].reshape(-1, n, n)
    intersection = np.diagonal(matrix, axis1=1, axis2=2)
    labelled = matrix.sum(2)
    union = labelled + matrix.sum(1) - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, intersection / union, 0.0)
        present = labelled > 0
        mean = np.where(present.any(1), (iou * present).sum(1) / present.sum(1), math.nan)
    if n == 2:
        mean = np.where(binary, iou[:, 1], mean)
    return mean


@dataclass(frozen=True)
class TaskSpec:
    """What the benchmark needs to know about one Ultralytics task.

    Attributes:
        name: Ultralytics' task name.
        metrics_type: The typed record of a run's metrics (its fields are the task's ``results.csv`` columns).
        headline: The metric of the verdict lines, the Δ column and the accuracy-vs-latency plot.
        compared: The metrics the paired bootstrap compares (``comparisons.csv``'s ``metric`` column).
        labels: Display names of the metrics.
        dataset_kind: ``"folder"`` (a classification folder) or ``"yaml"`` (a dataset YAML).
        hidden: Metric columns of ``results.csv`` left out of the Markdown table.
        curves: Four (column, title) of the ``results.csv`` Ultralytics' trainer of the task writes per epoch, one
            panel each of ``training_curves.png``.
    """

    name: str
    metrics_type: type
    headline: str
    compared: tuple[str, ...]
    labels: dict[str, str]
    dataset_kind: str = "yaml"
    hidden: tuple[str, ...] = ()
    curves: tuple[tuple[str, str], ...] = (
        ("train/box_loss", "train box loss"),
        ("val/box_loss", "val box loss"),
        ("metrics/mAP50(B)", "val mAP50"),
        ("metrics/mAP50-95(B)", "val mAP50-95"),
    )

    @property
    def table(self) -> tuple[str, ...]:
        """The metric columns of the Markdown table."""
        return tuple(column for column in self.columns if column not in self.hidden)

    @property
    def columns(self) -> tuple[str, ...]:
        """The metrics' field names, in ``results.csv`` order."""
        return tuple(f.name for f in fields(self.metrics_type))

    def statistics(self) -> Any:
        """The task's :class:`~scsa_yolo.benchmark.comparisons.TaskStatistics` for the paired bootstrap."""
        from scsa_yolo.benchmark.comparisons import SummedStatistics
        from scsa_yolo.benchmark.stats import DetectionStatistics

        if self.name in ("detect", "segment", "pose", "obb"):
            return DetectionStatistics(self.compared)
        if self.name == "classify":
            return SummedStatistics({"top1": _per_image_mean(0), "top5": _per_image_mean(1)})
        if self.name == "depth":  # per image (delta1, abs_rel, scored): Ultralytics averages over scored images
            return SummedStatistics({"abs_rel": _per_image_mean(1), "delta1": _per_image_mean(0)})
        return SummedStatistics({"miou": miou_from_confusion})


TASKS: dict[str, TaskSpec] = {
    "detect": TaskSpec(
        "detect",
        DetectMetrics,
        "map50_95",
        ("map50_95", "map50", "ap_small"),
        {
            "map50_95": "mAP50-95",
            "map50": "mAP50",
            "ap_small": "AP small",
            "ap_medium": "AP medium",
            "ap_large": "AP large",
            "precision": "precision",
            "recall": "recall",
        },
        hidden=("precision", "recall"),
    ),
    "segment": TaskSpec(
        "segment",
        SegmentMetrics,
        "mask_map50_95",
        ("mask_map50_95", "map50_95"),
        {
            "map50_95": "box mAP50-95",
            "map50": "box mAP50",
            "mask_map50_95": "mask mAP50-95",
            "mask_map50": "mask mAP50",
        },
        curves=(
            ("train/seg_loss", "train seg loss"),
            ("val/seg_loss", "val seg loss"),
            ("metrics/mAP50-95(B)", "val box mAP50-95"),
            ("metrics/mAP50-95(M)", "val mask mAP50-95"),
        ),
    ),
    "pose": TaskSpec(
        "pose",
        PoseMetrics,
        "pose_map50_95",
        ("pose_map50_95", "map50_95"),
        {
            "map50_95": "box mAP50-95",
            "map50": "box mAP50",
            "pose_map50_95": "pose mAP50-95",
            "pose_map50": "pose mAP50",
        },
        curves=(
            ("train/pose_loss", "train pose loss"),
            ("val/pose_loss", "val pose loss"),
            ("metrics/mAP50-95(B)", "val box mAP50-95"),
            ("metrics/mAP50-95(P)", "val pose mAP50-95"),
        ),
    ),
    "obb": TaskSpec(
        "obb",
        OBBMetrics,
        "map50_95",
        ("map50_95", "map50"),
        {"map50_95": "mAP50-95", "map50": "mAP50"},
    ),
    "classify": TaskSpec(
        "classify",
        ClassifyMetrics,
        "top1",
        ("top1", "top5"),
        {"top1": "top-1", "top5": "top-5"},
        dataset_kind="folder",
        curves=(
            ("train/loss", "train loss"),
            ("val/loss", "val loss"),
            ("metrics/accuracy_top1", "val top-1"),
            ("metrics/accuracy_top5", "val top-5"),
        ),
    ),
    "semantic": TaskSpec(
        "semantic",
        SemanticMetrics,
        "miou",
        ("miou",),
        {"miou": "mIoU", "pixel_accuracy": "pixel acc"},
        curves=(
            ("train/ce_loss", "train CE loss"),
            ("val/ce_loss", "val CE loss"),
            ("metrics/mIoU", "val mIoU"),
            ("metrics/pixel_acc", "val pixel accuracy"),
        ),
    ),
    "depth": TaskSpec(
        "depth",
        DepthMetrics,
        "abs_rel",
        ("abs_rel", "delta1"),
        {"abs_rel": "abs-rel", "delta1": "δ<1.25"},
        curves=(
            ("train/loss", "train loss"),
            ("val/loss", "val loss"),
            ("metrics/abs_rel", "val abs-rel"),
            ("metrics/delta1", "val δ<1.25"),
        ),
    ),
}


def task_spec(task: str) -> TaskSpec:
    """The benchmark's description of ``task``; refuses a task it cannot compare, naming the ones it can."""
    from scsa_yolo.errors import UsageError

    if task not in TASKS:
        raise UsageError(f"the benchmark cannot compare {task} models yet; it compares {', '.join(TASKS)} models")
    return TASKS[task]


def metric_label(metric: str) -> str:
    """Display name of a metric of any task (the field name when unknown)."""
    for spec in TASKS.values():
        if metric in spec.labels:
            return spec.labels[metric]
    return metric
