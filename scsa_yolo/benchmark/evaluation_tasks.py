"""Validation of classification and semantic-segmentation runs, with per-image statistics summed by the bootstrap.

Each validator is Ultralytics' own, with one hook that keeps the statistics of every image next to the parent's
running metrics:

- classification: per image (top-1 right, top-5 right, 1), from the parent's top-5 ranking in ``update_metrics``;
  the validation loader is not shuffled so that the images keep the dataset's order (their names);
- semantic segmentation: per image its confusion matrix (labels x predictions, flattened; Ultralytics' rule for
  ignored pixels, label 255) and a one-class flag, from the class maps the parent's ``postprocess`` produced.

Summing the rows over any image set and applying :mod:`scsa_yolo.benchmark.tasks`' formula gives Ultralytics' own
metric on that set (the tests check this on the full set).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from ultralytics.data import build_dataloader
from ultralytics.models.yolo.classify import ClassificationValidator
from ultralytics.models.yolo.depth import DepthValidator
from ultralytics.models.yolo.semantic import SemanticSegmentationValidator

from scsa_yolo.benchmark.image_stats import save_image_sums
from scsa_yolo.benchmark.tasks import ClassifyMetrics, DepthMetrics, SemanticMetrics

IMAGE_STATS_FILE = "image_stats.npz"


class ClassificationStatsValidator(ClassificationValidator):
    """Ultralytics' classification validator that also keeps, per image, whether top-1 and top-5 were right."""

    def get_dataloader(self, dataset_path: Path | str, batch_size: int) -> torch.utils.data.DataLoader:
        """The parent's loader without shuffling, so batch order is the dataset's sample order."""
        dataset = self.build_dataset(dataset_path)
        if not dataset.samples:
            raise FileNotFoundError(f"No images from the model's classes found in {dataset_path}")
        return build_dataloader(dataset, batch_size, self.args.workers, shuffle=False, rank=-1, device=self.device)

    def init_metrics(self, model: torch.nn.Module) -> None:
        """Start the per-image rows with the parent's metrics."""
        super().init_metrics(model)
        self.image_rows: list[np.ndarray] = []

    def update_metrics(self, preds: torch.Tensor, batch: dict) -> None:
        """The parent's update, then this batch's (top-1 right, top-5 right, 1) rows from its top-5 ranking."""
        super().update_metrics(preds, batch)
        top = self.pred[-1]  # (B, min(5, nc)) classes by descending score, as the parent stored them
        target = self.targets[-1][:, None]
        hits = (top == target).numpy()
        self.image_rows.append(np.stack([hits[:, 0], hits.any(1), np.ones(len(hits))], 1).astype(np.float64))

    def image_names(self) -> list[str]:
        """The validation images in loader order (relative to the split folder: ``class/name``)."""
        return [f"{Path(sample[0]).parent.name}/{Path(sample[0]).name}" for sample in self.dataloader.dataset.samples]


class SemanticStatsValidator(SemanticSegmentationValidator):
    """Ultralytics' semantic-segmentation validator that also keeps each image's confusion matrix."""

    def init_metrics(self, model: torch.nn.Module) -> None:
        """Start the per-image rows with the parent's metrics."""
        super().init_metrics(model)
        self.image_rows: list[np.ndarray] = []
        self.image_files: list[str] = []

    def update_metrics(self, preds: torch.Tensor, batch: dict) -> None:
        """The parent's update, then one confusion matrix per image with the parent's validity rule."""
        super().update_metrics(preds, batch)
        n = self.metrics.cm_nc
        targets = batch["semantic_mask"]
        binary = float(self.nc == 1)
        for pred, target, file in zip(preds, targets, batch["im_file"]):
            valid = (target != 255) & (pred >= 0) & (pred < n) & (target >= 0) & (target < n)
            index = (n * target[valid] + pred[valid]).long()
            matrix = torch.bincount(index, minlength=n * n).cpu().numpy().astype(np.float64)
            self.image_rows.append(np.append(matrix, binary))
            self.image_files.append(Path(file).name)


class DepthStatsValidator(DepthValidator):
    """Ultralytics' depth validator that also keeps each image's (delta1, abs_rel, scored) values.

    The parent's metrics are accumulated image by image; each image's contribution to Ultralytics' running totals
    (delta1..silog, and the count of scored images: an image with under 10 valid pixels is skipped) is its row, so
    the rows are Ultralytics' own per-image numbers.
    """

    def init_metrics(self, model: torch.nn.Module) -> None:
        """Start the per-image rows with the parent's metrics."""
        super().init_metrics(model)
        self.image_rows: list[np.ndarray] = []
        self.image_files: list[str] = []
        update = self.metrics.update_stats

        def per_image(preds: torch.Tensor, targets: torch.Tensor) -> None:
            for pred, target, file in zip(preds, targets, self._batch_files):
                before = None if self.metrics._totals is None else self.metrics._totals.clone()
                count = self.metrics._count
                update(pred[None], target[None])
                totals = self.metrics._totals
                delta = (totals if before is None else totals - before) if totals is not None else torch.zeros(6)
                self.image_rows.append(np.array([float(delta[0]), float(delta[3]), self.metrics._count - count]))
                self.image_files.append(Path(file).name)

        self.metrics.update_stats = per_image

    def update_metrics(self, preds: torch.Tensor, batch: dict) -> None:
        """The parent's update, with the batch's image names at hand for the per-image rows."""
        self._batch_files = batch["im_file"]
        super().update_metrics(preds, batch)


def validate_summed(model: torch.nn.Module, args: dict, task: str) -> tuple[object, int, Path]:
    """Validate a classification or semantic model and save its per-image rows.

    Returns:
        The task's metrics record, the number of val images, and the statistics file.
    """
    if task == "classify":
        validator = ClassificationStatsValidator(args={**args, "task": "classify"})
        validator(model=model)
        top1, top5 = float(validator.metrics.top1), float(validator.metrics.top5)
        metrics = ClassifyMetrics(top1=round(top1, 4), top5=round(top5, 4))
        images, rows = validator.image_names(), validator.image_rows
    elif task == "semantic":
        validator = SemanticStatsValidator(args={**args, "task": "semantic", "save_json": False})
        validator(model=model)
        metrics = SemanticMetrics(
            miou=round(float(validator.metrics.miou), 4),
            pixel_accuracy=round(float(validator.metrics.pixel_accuracy), 4),
        )
        images, rows = validator.image_files, validator.image_rows
    elif task == "depth":
        validator = DepthStatsValidator(args={**args, "task": "depth", "save_json": False})
        results = validator(model=model)
        metrics = DepthMetrics(
            abs_rel=round(float(results["metrics/abs_rel"]), 4), delta1=round(float(results["metrics/delta1"]), 4)
        )
        images, rows = validator.image_files, validator.image_rows
    else:
        raise ValueError(f"no summed statistics for task {task!r}")
    path = Path(validator.save_dir) / IMAGE_STATS_FILE
    save_image_sums(path, images, np.concatenate(rows) if task == "classify" else np.stack(rows))
    # (depth: an image Ultralytics skipped has a zero row, so it weighs nothing in any resampled set)
    return metrics, len(images), path
