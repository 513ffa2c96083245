"""The one seam between ``scsa-yolo deploy`` and the benchmark's statistics.

Validation keeps, per image, Ultralytics' own matching of predictions to labels (the benchmark's validator), so the
INT8 drops can be compared with the benchmark's paired bootstrap: the same resampled image sets for the PyTorch and
the INT8 model of both the plain and the SCSA detector, so image difficulty cancels out of the drops and of their
difference. Latency is timed in the benchmark's interleaved rounds, and the ratios get its interval over them.

Only public names of :mod:`scsa_yolo.benchmark` are used, and only here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scsa_yolo.benchmark.comparisons import image_resamples, percentile_interval, resampled_metrics
from scsa_yolo.benchmark.evaluation import ImageStatsValidator
from scsa_yolo.benchmark.measure import interleaved_samples, ratio_interval
from scsa_yolo.benchmark.settings import DEFAULT_BOOTSTRAP_SEED, DEFAULT_RESAMPLES

METRIC = "map50_95"


@dataclass(frozen=True)
class Validation:
    """Ultralytics' validation of one model file through its backend, with the per-image records.

    Attributes:
        map50_95: mAP50-95 on the val split.
        map50: mAP50.
        ap_small: COCO AP of small objects (NaN where the split has none).
        images: Number of val images.
        stats: Per-image matching records by size bin, for the bootstrap.
    """

    map50_95: float
    map50: float
    ap_small: float
    images: int
    stats: dict


@dataclass(frozen=True)
class Interval:
    """A point estimate with its 95 % bootstrap interval."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Int8Drops:
    """INT8 minus PyTorch mAP50-95 of the plain and of the SCSA model, and SCSA's drop minus the plain one."""

    plain: Interval
    scsa: Interval
    difference: Interval


def validate(model: str, data: str, imgsz: int, save_dir: Path) -> Validation:
    """Validate ``model`` (a .pt or an exported model) with Ultralytics' detection validator, batch 1, no rect.

    Every format is validated alike: batch 1 and square letterboxing (what a fixed-shape export runs), so PyTorch and
    the runtimes see the same pixels.
    """
    args = {
        "model": model,
        "task": "detect",
        "data": data,
        "imgsz": imgsz,
        "batch": 1,
        "rect": False,
        "device": "cpu",
        "workers": 0,
        "plots": False,
        "save_json": True,
        "verbose": False,
        "project": str(save_dir.parent),
        "name": save_dir.name,
        "exist_ok": True,
        "mode": "val",
    }
    validator = ImageStatsValidator(args=args)
    results = validator(model=model)
    box = validator.metrics.box
    small = results.get("metrics/mAP_small(B)", -1.0)
    stats = validator.image_stats()
    return Validation(
        map50_95=float(box.map),
        map50=float(box.map50),
        ap_small=float(small) if small is not None and small >= 0 else math.nan,
        images=len(stats["all"].images),
        stats=stats,
    )


def int8_drops(
    plain: tuple[Validation, Validation],
    scsa: tuple[Validation, Validation],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
) -> Int8Drops:
    """Paired bootstrap of the INT8 drops: ``(pytorch, int8)`` validations of each model on the same images.

    Raises:
        ValueError: When the four validations did not see the same images.
    """
    runs = {
        "plain/pt": [plain[0].stats],
        "plain/q": [plain[1].stats],
        "scsa/pt": [scsa[0].stats],
        "scsa/q": [scsa[1].stats],
    }
    images = plain[0].stats["all"].images
    if any(run[0]["all"].images != images for run in runs.values()):
        raise ValueError("the INT8 drops need validations on the same images")
    weights = image_resamples(len(images), resamples, seed)
    values = resampled_metrics(runs, weights)  # detection's metrics, METRIC among them
    plain_drop = values[f"plain/q/{METRIC}"][0] - values[f"plain/pt/{METRIC}"][0]  # (1 + B,): full set, resamples
    scsa_drop = values[f"scsa/q/{METRIC}"][0] - values[f"scsa/pt/{METRIC}"][0]
    return Int8Drops(_interval(plain_drop), _interval(scsa_drop), _interval(scsa_drop - plain_drop))


def _interval(values: np.ndarray) -> Interval:
    """Column 0 the full set, the rest the resamples (non-finite ones left out)."""
    return Interval(float(values[0]), *percentile_interval(values[1:]))


def interleaved_rounds(
    candidates: dict[str, Callable[[], object]], rounds: int, warmup: int = 3
) -> dict[str, list[float]]:
    """Per-round wall time (ms) of each candidate, called in turn every round, the order reversed every other round."""
    return interleaved_samples(candidates, rounds, warmup, alternate=True)


def latency_ratio(samples: list[float], reference: list[float]) -> Interval:
    """Median-latency ratio ``samples / reference`` over paired interleaved rounds, with its interval."""
    ratio, low, high = ratio_interval(samples, reference)
    return Interval(ratio, low, high)
