"""Paired bootstrap comparisons of models from per-image statistics, for any task that supplies them.

A task hands the bootstrap a :class:`TaskStatistics`: the images of a run (the same for every model and seed) and
its metrics evaluated on weighted image sets (each row of ``sets`` says how often each image is drawn). Detection
(:class:`~scsa_yolo.benchmark.stats.DetectionStatistics`) recomputes AP from its per-image matching; a task whose
metric is a function of per-image statistics summed over the set (accuracy, per-class intersection and union,
depth error sums) uses :class:`SummedStatistics` with one formula per metric. The comparison itself (seeds, then
images, paired; percentile intervals; the exact sign-flip test over seeds) is the same for every task.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from scsa_yolo.benchmark.settings import DEFAULT_BOOTSTRAP_SEED, DEFAULT_RESAMPLES

CONFIDENCE = 0.95
MAX_SIGN_FLIP_SEEDS = 16  # every sign pattern is enumerated
# Resamples without labels of a metric's size bin have no metric value and are left out of its interval; past this
# fraction the interval describes a different population of image sets and is unreliable.
MAX_DROPPED_FRACTION = 0.10


class TaskStatistics(Protocol):
    """What a task supplies to the paired bootstrap.

    Attributes:
        metrics: Names of the compared metrics (the ``metric`` column of comparisons.csv).
    """

    metrics: tuple[str, ...]

    def images(self, run: Any) -> list[str]:
        """The run's validation image names, in the order its statistics use."""
        ...

    def evaluate(self, run: Any, sets: np.ndarray) -> dict[str, np.ndarray]:
        """Each metric on each weighted image set: (S, n_images) counts -> name to (S,) values (NaN: undefined)."""
        ...


@dataclass(frozen=True)
class PerImageSums:
    """One run of a summed-statistics task: ``values[i]`` are image i's statistics (e.g. correct, total)."""

    images: list[str]
    values: np.ndarray  # (n_images, k)


@dataclass(frozen=True)
class SummedStatistics:
    """A task whose metrics are functions of per-image statistics summed over the image set.

    Attributes:
        formulas: Metric name -> function of the summed statistics, (S, k) -> (S,); e.g. accuracy
            ``lambda s: s[:, 0] / s[:, 1]`` with per-image (correct, total).
    """

    formulas: dict[str, Callable[[np.ndarray], np.ndarray]]

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric names, in the formulas' order."""
        return tuple(self.formulas)

    def images(self, run: PerImageSums) -> list[str]:
        """The run's images."""
        return run.images

    def evaluate(self, run: PerImageSums, sets: np.ndarray) -> dict[str, np.ndarray]:
        """Sum the per-image statistics of each set (one matrix product), then apply each formula."""
        sums = np.asarray(sets, np.float64) @ np.asarray(run.values, np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return {name: np.asarray(formula(sums), np.float64) for name, formula in self.formulas.items()}


def _detection(metrics: Sequence[str] | None = None) -> TaskStatistics:
    """The detection task's statistics (imported here: stats.py imports this module)."""
    from scsa_yolo.benchmark.stats import COMPARED_METRICS, DetectionStatistics

    return DetectionStatistics(metrics or COMPARED_METRICS)


@dataclass(frozen=True)
class Comparison:
    """One row of comparisons.csv, with how many resamples its interval rests on (reported, not a csv column).

    ``dropped`` counts the bootstrap replicates left out of the interval because a resampled image set held no labels
    of the metric's size bin (its AP is undefined there).
    """

    model: str
    reference: str
    metric: str
    seeds: int
    images: int
    delta: float
    ci_low: float
    ci_high: float
    p_value: float | None
    resamples: int = 0
    dropped: int = 0

    @property
    def excludes_zero(self) -> bool:
        """The interval lies entirely on one side of zero."""
        return self.ci_low > 0 or self.ci_high < 0

    @property
    def interval_reliable(self) -> bool:
        """At most :data:`MAX_DROPPED_FRACTION` of the resamples were left out of the interval."""
        return self.dropped <= MAX_DROPPED_FRACTION * self.resamples


def smallest_sign_flip_p_value(seeds: int) -> float:
    """The smallest two-sided p-value :func:`sign_flip_p_value` can give with ``seeds`` differences (2 / 2**seeds)."""
    return 2.0 / 2.0**seeds


def sign_flip_p_value(differences: Sequence[float]) -> float | None:
    """Two-sided exact sign-flip test of "mean difference = 0" over paired per-seed differences.

    Every one of the ``2**n`` sign patterns is enumerated (n <= 16), so with 3 seeds the smallest possible p-value is
    2/8 = 0.25: three seeds can never reach p < 0.05.

    Returns:
        The p-value, or ``None`` with fewer than two differences (undefined).
    """
    values = np.asarray(differences, float)
    if len(values) < 2 or len(values) > MAX_SIGN_FLIP_SEEDS:
        return None
    observed = abs(values.mean()) - 1e-12
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(values))))
    return float(np.mean(np.abs(signs @ values / len(values)) >= observed))


def percentile_interval(replicates: np.ndarray) -> tuple[float, float]:
    """The :data:`CONFIDENCE` percentile interval of bootstrap replicates, non-finite ones left out (NaNs if none)."""
    finite = replicates[np.isfinite(replicates)]
    if not len(finite):
        return math.nan, math.nan
    low, high = np.quantile(finite, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return float(low), float(high)


def image_resamples(n_images: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_images) counts: how often each image is drawn in each bootstrap set (multinomial, n draws)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_images, size=(resamples, n_images))
    return np.stack([np.bincount(row, minlength=n_images) for row in draws])


def resampled_metrics(
    runs: dict[str, Sequence[Any]], weights: np.ndarray, task: TaskStatistics | None = None
) -> dict[str, np.ndarray]:
    """Each metric of each run on the full set and on every resampled image set.

    Args:
        runs: Model name to its runs' statistics (one per seed, seeds in the same order for every model).
        weights: (B, n_images) image counts from :func:`image_resamples`.
        task: The task's statistics (detection when None).

    Returns:
        ``"<model>/<metric>"`` to an array of shape (seeds, 1 + B): column 0 the full set, then the resamples.
    """
    task = task or _detection()
    sets = np.concatenate([np.ones((1, weights.shape[1]), np.int64), weights])
    jobs = [(model, s) for model, seeds in runs.items() for s in range(len(seeds))]
    # numpy releases the GIL in its array loops, so the runs are evaluated on all cores; each is independent
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        found = dict(zip(jobs, pool.map(lambda job: task.evaluate(runs[job[0]][job[1]], sets), jobs)))
    return {
        f"{model}/{metric}": np.stack([found[(model, s)][metric] for s in range(len(seeds))])
        for model, seeds in runs.items()
        for metric in task.metrics
    }


def paired_comparisons(
    runs: dict[str, Sequence[Any]],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_BOOTSTRAP_SEED,
    metrics: Sequence[str] | None = None,
    task: TaskStatistics | None = None,
) -> list[Comparison]:
    """Compare every model with the first one on the same validation images, with 95 % percentile intervals.

    Each bootstrap replicate draws the seeds with replacement (when there are several), then the images with
    replacement, the same images for both models, and averages the per-seed differences of the metric recomputed on
    those images. The point estimate is the mean per-seed difference on the full set. Replicates whose image set holds
    no labels of the metric's size bin are left out of the interval and counted in ``Comparison.dropped``.

    Args:
        runs: Model name (reference first) to one run's statistics per seed (for detection, a dict of size-bin
            :class:`ImageStats`); every model has the same seeds in the same order and the same validation images.
        resamples: Bootstrap replicates (at least 1000 for a 95 % interval worth reading).
        seed: Seed of the resampling; the same seed gives the same interval.
        metrics: Detection metrics to compare (all of :data:`COMPARED_METRICS` when None; ignored with ``task``).
        task: The task's statistics; detection when None.

    Returns:
        One :class:`Comparison` per (model other than the reference, metric).

    Raises:
        ValueError: When the runs do not share seeds count and validation images.
    """
    task = task or _detection(metrics)
    names = list(runs)
    reference = names[0]
    images = task.images(runs[reference][0])
    n_seeds = len(runs[reference])
    for name in names:
        if len(runs[name]) != n_seeds or any(task.images(run) != images for run in runs[name]):
            raise ValueError(f"{name} was not validated on the same images with the same seeds as {reference}")
    weights = image_resamples(len(images), resamples, seed)
    values = resampled_metrics(runs, weights, task)
    seed_draws = np.random.default_rng(seed + 1).integers(0, n_seeds, size=(resamples, n_seeds))
    comparisons = []
    for name in names[1:]:
        for metric in task.metrics:
            diff = values[f"{name}/{metric}"] - values[f"{reference}/{metric}"]  # (seeds, 1 + B)
            per_seed = diff[:, 0]
            if n_seeds > 1:  # seeds, then images: replicate b averages the drawn seeds' differences on image set b
                replicates = np.take_along_axis(diff[:, 1:], seed_draws.T, axis=0).mean(0)
            else:
                replicates = diff[0, 1:]
            low, high = percentile_interval(replicates)
            comparisons.append(
                Comparison(
                    model=name,
                    reference=reference,
                    metric=metric,
                    seeds=n_seeds,
                    images=len(images),
                    delta=float(np.mean(per_seed)),
                    ci_low=low,
                    ci_high=high,
                    p_value=sign_flip_p_value(per_seed) if np.isfinite(per_seed).all() else None,
                    resamples=resamples,
                    dropped=resamples - int(np.isfinite(replicates).sum()),
                )
            )
    return comparisons
