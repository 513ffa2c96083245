"""Per-image statistics for the tasks without boxes, so one task-agnostic bootstrap can compare two models.

Each task gives, per validation image, a row of statistics whose column sums determine the task's metric exactly as
Ultralytics computes it over the whole set. A paired bootstrap resamples images, sums their rows and recomputes the
metric; nothing task-specific is needed beyond ``statistics`` and ``metric``:

* classify: ``[top-1 correct, top-5 correct]`` per image; the metric is the mean (Ultralytics' ``ClassifyMetrics``).
  Top-1 of two models on the same images also gets an exact paired test (McNemar's, on the discordant images).
* semantic: the image's confusion matrix, flattened; the metric is mIoU over classes present in the summed
  ground truth and pixel accuracy (Ultralytics' ``SemanticMetrics`` on the summed matrix).
* depth: ``[counted, delta1, abs_rel]`` per image (Ultralytics' ``DepthMetrics`` scores each image after its own
  median alignment and averages over images; images with fewer than 10 valid pixels are not counted).

Standalone: the benchmark runner does not call this module yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "PairedTest",
    "classify_metric",
    "classify_statistics",
    "depth_metric",
    "depth_statistics",
    "mcnemar_exact",
    "semantic_metric",
    "semantic_statistics",
]


def classify_statistics(top5: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Per-image top-1 / top-5 correctness.

    Args:
        top5 (torch.Tensor): Predicted classes sorted by confidence, shape (N, k) with k <= 5 (as the classification
            validator keeps them).
        targets (torch.Tensor): True classes, shape (N,).

    Returns:
        (np.ndarray): Shape (N, 2), float: 1 where the image is right at top-1 / top-5.
    """
    correct = targets[:, None] == top5
    return torch.stack((correct[:, 0], correct.any(1)), dim=1).double().cpu().numpy()


def classify_metric(sums: np.ndarray, count: int) -> dict[str, float]:
    """Top-1 and top-5 accuracy from summed per-image statistics of ``count`` images."""
    return {"top1": float(sums[0] / count), "top5": float(sums[1] / count)}


@dataclass(frozen=True)
class PairedTest:
    """An exact paired test of two models' per-image correctness.

    Attributes:
        only_a (int): Images model A got right and model B wrong.
        only_b (int): Images model B got right and model A wrong.
        p_value (float): Two-sided exact McNemar p-value (binomial test of ``only_a`` among the discordant images at
            probability 1/2); 1.0 when no image is discordant.
    """

    only_a: int
    only_b: int
    p_value: float


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> PairedTest:
    """Exact McNemar test on paired per-image correctness (e.g. top-1 of two models on the same images).

    Args:
        correct_a (np.ndarray): Shape (N,), truthy where model A is right.
        correct_b (np.ndarray): Shape (N,), the same images for model B.

    Returns:
        (PairedTest): Discordant counts and the p-value.
    """
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs the same images for both models, got {a.shape} and {b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    p = 1.0 if only_a + only_b == 0 else float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return PairedTest(only_a, only_b, p)


def semantic_statistics(preds: torch.Tensor, targets: torch.Tensor, names: dict[int, str]) -> np.ndarray:
    """Per-image confusion matrices, counted by Ultralytics' ``SemanticMetrics`` (255 and out-of-range ignored).

    Args:
        preds (torch.Tensor): Predicted class ids, shape (N, H, W).
        targets (torch.Tensor): True class ids, shape (N, H, W).
        names (dict[int, str]): The dataset's class names.

    Returns:
        (np.ndarray): Shape (N, K*K), K the confusion matrix side (2 for a one-class dataset, else the class count).
    """
    from ultralytics.utils.metrics import SemanticMetrics

    rows = []
    for pred, target in zip(preds, targets):
        metrics = SemanticMetrics(names)
        metrics.update_stats(pred[None], target[None])
        rows.append(metrics.matrix.double().cpu().numpy().ravel())
    return np.stack(rows)


def semantic_metric(sums: np.ndarray, names: dict[int, str]) -> dict[str, float]:
    """The mIoU and pixel accuracy of a summed (flattened) confusion matrix, by Ultralytics' ``SemanticMetrics``."""
    from ultralytics.utils.metrics import SemanticMetrics

    metrics = SemanticMetrics(names)
    side = int(round(len(sums) ** 0.5))
    metrics.matrix = torch.as_tensor(sums, dtype=torch.float32).view(side, side)
    metrics.process()
    return {"miou": metrics.miou, "pixel_accuracy": metrics.pixel_accuracy}


def depth_statistics(preds: torch.Tensor, targets: torch.Tensor, **depth_options) -> np.ndarray:
    """Per-image depth scores, each image scored by Ultralytics' ``DepthMetrics`` on its own.

    Args:
        preds (torch.Tensor): Predicted depth, shape (N, H, W) or (N, 1, H, W).
        targets (torch.Tensor): True depth, same shape.
        **depth_options: ``DepthMetrics`` options (min_depth, max_depth, align).

    Returns:
        (np.ndarray): Shape (N, 3): counted (1, or 0 for an image with too few valid pixels), delta1, abs_rel (0 when
            not counted).
    """
    from ultralytics.utils.metrics import DepthMetrics

    rows = []
    for pred, target in zip(preds, targets):
        metrics = DepthMetrics(**depth_options)
        metrics.update_stats(pred[None], target[None])
        metrics.process()
        result = metrics.results_dict
        delta1, abs_rel = result["metrics/delta1"], result["metrics/abs_rel"]
        counted = delta1 > 0 or abs_rel > 0  # an uncounted image scores all zeros; a counted one never does
        rows.append([float(counted), delta1, abs_rel])
    return np.asarray(rows, dtype=np.float64)


def depth_metric(sums: np.ndarray) -> dict[str, float]:
    """delta1 and abs_rel from summed per-image rows: the means over counted images, as ``DepthMetrics`` gives."""
    counted = sums[0]
    if counted == 0:
        return {"delta1": 0.0, "abs_rel": 0.0}
    return {"delta1": float(sums[1] / counted), "abs_rel": float(sums[2] / counted)}
