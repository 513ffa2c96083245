"""Detection AP recomputed on resampled image sets: the detection task's statistics for the paired bootstrap.

The validation of each run keeps, per image, Ultralytics' own matching of its predictions to the ground truth at the
10 IoU thresholds (see :mod:`scsa_yolo.benchmark.evaluation`). Resampling the validation *images* with replacement
then only needs the AP to be recomputed from those records, never a new validation. The same resampled image sets are
used for every model (paired), so image difficulty cancels out of the differences. With several training seeds the
seeds are resampled first, then the images (Bouthillier et al., MLSys 2021, "Accounting for variance in machine
learning benchmarks"); a sign-flip test over the per-seed differences gives a p-value.

AP on a resampled set follows Ultralytics' ``ap_per_class`` / ``compute_ap`` exactly (101-point interpolation of the
precision envelope, mean over classes that have labels in the set); a duplicated image contributes its predictions
and labels twice, as if it were in the validation set twice. :func:`average_precision` with every weight 1 equals
Ultralytics' ``metrics.box.map`` / ``map50`` (the tests check this). The comparison machinery shared by every task
is in :mod:`scsa_yolo.benchmark.comparisons` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import sparse

from scsa_yolo.benchmark.image_stats import AREA_RANGES, ImageStats, load_image_stats, save_image_stats

# Metric names of comparisons.csv, and which per-image statistics each one is recomputed from.
COMPARED_METRICS = ("map50_95", "map50", "ap_small")
_METRIC_SOURCE = {
    "map50_95": ("all", "map50_95"),
    "map50": ("all", "map50"),
    "ap_small": ("small", "map50_95"),
    "mask_map50_95": ("mask", "map50_95"),  # instance segmentation: the same engine on the mask matches
    "mask_map50": ("mask", "map50"),
    "pose_map50_95": ("pose", "map50_95"),  # pose: on the keypoint (OKS) matches
    "pose_map50": ("pose", "map50"),
}
_AP_X = np.linspace(0, 1, 101)  # Ultralytics' 101-point interpolation grid
RESAMPLES_PER_CHUNK = 100  # image sets evaluated in one vectorised pass (memory ~ chunk x predictions)


class _Curves:
    """One run's predictions of one size bin, arranged once for repeated AP evaluation on resampled image sets.

    Only what the AP can depend on is evaluated per resample. In Ultralytics' ``compute_ap`` a wrong prediction never
    raises the precision envelope of an earlier point, and between two correct predictions only whether any wrong
    one came between them (and the last such one) changes the interpolated curve; predictions after a class's last
    correct one change nothing; along a run of correct ones with no wrong one between them the envelope is flat, so
    the run's first and last points define it. So each resample builds, per (class, IoU threshold), those two points
    per run of correct predictions plus one point per run of wrong ones, with the counts a concatenation of the drawn
    images would give, and evaluates ``compute_ap``'s envelope, ``np.interp`` and trapezoid rule on all of them at once.
    """

    def __init__(self, stats: ImageStats):
        order = np.argsort(-stats.conf)  # the very call ap_per_class makes, so ties break alike
        self.n_images = len(stats.images)
        self.n_iou = stats.tp.shape[1]
        classes = np.unique(stats.target_cls)
        self.n_classes = len(classes)
        # labels per (class, image): a resample's label count per class is weights @ this
        self.label_counts = np.zeros((len(classes), self.n_images), np.int64)
        for index, c in enumerate(classes):
            self.label_counts[index] = np.bincount(stats.target_image[stats.target_cls == c], minlength=self.n_images)
        rows = [order[stats.pred_cls[order] == c] for c in classes]  # class-major, descending confidence
        self.class_start = np.cumsum([0] + [len(r) for r in rows])[:-1].astype(np.int64)
        rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        row_image = stats.pred_image[rows]
        counted = stats.counted[rows]
        hits = stats.tp[rows] & counted
        # distinct counted patterns over the thresholds (np.unique(axis=0) on P-long rows is slow: a dict of bytes)
        patterns: dict[bytes, int] = {}
        column_of_iou = np.array(
            [patterns.setdefault(counted[:, t].tobytes(), len(patterns)) for t in range(self.n_iou)], np.int64
        )
        columns = [counted[:, int(np.argmax(column_of_iou == k))] for k in range(len(patterns))]
        row_class = np.repeat(np.arange(len(classes)), np.diff(np.append(self.class_start, len(rows))))
        # correct predictions, IoU-major, then class, then confidence: segment = iou * n_classes + class
        per_iou = [np.flatnonzero(hits[:, t]) for t in range(self.n_iou)]
        self.hit_row = np.concatenate(per_iou).astype(np.int64)
        self.hit_iou = np.repeat(np.arange(self.n_iou), [len(h) for h in per_iou])
        self.hit_class = row_class[self.hit_row]
        self.hit_segment = self.hit_iou * self.n_classes + self.hit_class
        self.segments = self.n_iou * self.n_classes
        self.segment_class = np.tile(np.arange(self.n_classes), self.n_iou)
        first = np.r_[True, self.hit_segment[1:] != self.hit_segment[:-1]][: len(self.hit_row)]
        self.hit_segment_first = np.maximum.accumulate(np.where(first, np.arange(len(first)), 0))
        self.hit_image = row_image[self.hit_row]
        # Counted predictions ranked above each correct one, as per-image counts: every prediction is assigned to
        # the next correct one (any threshold) of its class, so a resample needs one sparse product, not a pass over
        # all predictions. anchors: rows correct at some threshold; interval k = rows in [anchor k-1, anchor k).
        anchors = np.unique(self.hit_row)
        self.hit_anchor = np.searchsorted(anchors, self.hit_row)
        interval = np.searchsorted(anchors, np.arange(len(rows)), side="right")
        inside = interval < len(anchors)
        inside[inside] &= row_class[inside] == row_class[anchors[interval[inside]]]
        self.anchor_class_first = np.searchsorted(anchors, self.class_start)  # first anchor index of each class
        self.anchor_class = row_class[anchors]
        self.before_counts = [
            sparse.csr_matrix(
                (column[inside].astype(np.int32), (interval[inside], row_image[inside])),
                shape=(len(anchors), self.n_images),
            )
            for column in columns
        ]
        self.hit_column = column_of_iou[self.hit_iou]

    def average_precision(self, image_weights: np.ndarray) -> np.ndarray:
        """AP per IoU threshold, averaged over the classes with labels in each set.

        Args:
            image_weights: (B, n_images) how many times each image is in each evaluated set.

        Returns:
            (B, n_iou) mean AP; NaN for a set without labels.
        """
        weights = np.asarray(image_weights, np.int64).reshape(-1, self.n_images)
        n_labels = weights @ self.label_counts.T  # (B, C)
        ap = self._segment_ap(weights, n_labels) if len(self.hit_row) else np.zeros((len(weights), self.segments))
        ap = ap.reshape(len(weights), self.n_iou, self.n_classes)
        present = n_labels > 0
        with np.errstate(invalid="ignore"):
            return (ap * present[:, None, :]).sum(2) / present.sum(1)[:, None]

    def _segment_ap(self, weights: np.ndarray, n_labels: np.ndarray) -> np.ndarray:
        """(B, n_iou * n_classes) AP of every (set, IoU threshold, class)."""
        n_sets = len(weights)
        weights = weights.astype(np.int32)  # counts of a few million at most; half the memory traffic of int64
        hit_weight = weights[:, self.hit_image]  # (B, M)
        # counted predictions ranked above each correct one within its class (per counted pattern of its threshold)
        before = np.zeros_like(hit_weight)
        for column_index, counts in enumerate(self.before_counts):
            per_anchor = np.cumsum(counts @ weights.T, 0, dtype=np.int32)  # (anchors, B), running over all classes
            start = np.r_[np.zeros((1, n_sets), np.int32), per_anchor][self.anchor_class_first]  # (C, B)
            at = self.hit_column == column_index
            anchor = self.hit_anchor[at]
            before[:, at] = (per_anchor[anchor] - start[self.anchor_class[anchor]]).T
        hits_before = np.cumsum(hit_weight, 1, dtype=np.int32) - hit_weight
        hits_before -= hits_before[:, self.hit_segment_first]
        wrong_before = before - hits_before

        # One point per run of drawn correct predictions with no wrong one between them, not one per drawn copy: in a
        # run the precision rises, so compute_ap's envelope is flat across it and its first and last points give the
        # same interpolated curve as all of them. Work is per drawn (set, correct prediction) pair, then per run.
        drawn = np.flatnonzero(hit_weight)
        if not len(drawn):
            return np.zeros((n_sets, self.segments))
        n_hits = hit_weight.shape[1]
        point_set = np.repeat(np.arange(n_sets), np.count_nonzero(hit_weight, 1))
        segment = point_set * self.segments + self.hit_segment[drawn - point_set * n_hits]
        count = hit_weight.ravel()[drawn]
        tp_before = hits_before.ravel()[drawn]
        wrong = wrong_before.ravel()[drawn]
        new_segment = np.r_[True, segment[1:] != segment[:-1]]
        rises = wrong > np.where(new_segment, 0, np.r_[0, wrong[:-1]])  # wrong predictions ranked just above
        run_first = np.flatnonzero(new_segment | rises)
        run_last = np.r_[run_first[1:], len(drawn)] - 1
        tp_first = tp_before[run_first] + 1
        tp_last = tp_before[run_last] + count[run_last]
        wrong = wrong[run_first]
        gap = rises[run_first]
        several = tp_last > tp_first
        segment = segment[run_first]
        new_segment = new_segment[run_first]
        segment_start = np.flatnonzero(new_segment)
        rank = np.cumsum(new_segment) - 1
        labels = (n_labels[:, self.segment_class] + 1e-16).ravel()[segment]  # labels of each run's class

        # compute_ap's arrays per segment: [0, (gap point, first, last point) per run, last recall, 1], [1, ..., 0, 0]
        n_segments = len(segment_start)
        slots = 1 + gap.astype(np.int64) + several
        last_slot = np.cumsum(slots) + 3 * rank
        first_slot = last_slot - several
        size = int(slots.sum()) + 3 * n_segments
        mrec, mpre = np.empty(size), np.empty(size)
        lead = first_slot[segment_start] - 1 - gap[segment_start]
        segment_last = np.r_[segment_start[1:], len(run_first)] - 1
        mrec[lead], mpre[lead] = 0.0, 1.0
        mrec[first_slot], mpre[first_slot] = tp_first / labels, tp_first / (tp_first + wrong)
        mrec[last_slot], mpre[last_slot] = tp_last / labels, tp_last / (tp_last + wrong)
        gap_slot = first_slot[gap] - 1
        mrec[gap_slot] = (tp_first[gap] - 1) / labels[gap]
        mpre[gap_slot] = (tp_first[gap] - 1) / (tp_first[gap] - 1 + wrong[gap])
        tail = last_slot[segment_last]
        mrec[tail + 1], mpre[tail + 1] = tp_last[segment_last] / labels[segment_last], 0.0
        mrec[tail + 2], mpre[tail + 2] = 1.0, 0.0
        entry_rank = np.repeat(np.arange(n_segments), np.diff(np.r_[lead, size]))
        # precision envelope per segment: running max from the right, segments kept apart by offsets
        lift = 2.0 * (n_segments - 1 - entry_rank)
        mpre = np.flip(np.maximum.accumulate(np.flip(mpre + lift))) - lift
        # np.interp(_AP_X, mrec, mpre) per segment, as numpy evaluates it (last xp <= x, exact hits taken as is)
        keys = mrec + 2.0 * entry_rank
        queries = _AP_X[None, :] + 2.0 * np.arange(n_segments)[:, None]
        j = np.searchsorted(keys, queries.ravel(), side="right").reshape(queries.shape) - 1
        j_next = np.minimum(j + 1, size - 1)
        x = np.broadcast_to(_AP_X, queries.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (mpre[j_next] - mpre[j]) / (mrec[j_next] - mrec[j])
            values = np.where(mrec[j] == x, mpre[j], slope * (x - mrec[j]) + mpre[j])
        area = (np.diff(_AP_X) * (values[:, 1:] + values[:, :-1]) / 2.0).sum(1)
        ap = np.zeros(n_sets * self.segments)
        ap[segment[segment_start]] = area
        return ap.reshape(n_sets, self.segments)


def metric_size_bin(metric: str) -> str:
    """The size bin (``"all"``, ``"small"``) whose per-image statistics a compared metric is recomputed from."""
    return _METRIC_SOURCE[metric][0]


def summary_metrics(ap: np.ndarray) -> dict[str, float]:
    """``map50`` and ``map50_95`` from per-threshold AP."""
    return {"map50": float(ap[0]), "map50_95": float(np.mean(ap))}


def average_precision(stats: ImageStats, image_weights: np.ndarray | None = None) -> dict[str, float]:
    """mAP50 and mAP50-95 of one run on its validation images (each weight = times the image is counted).

    Args:
        stats: The run's per-image statistics for one size bin.
        image_weights: (n_images,) integer counts; all ones (the validation set itself) when ``None``.

    Returns:
        ``{"map50": ..., "map50_95": ...}``; NaN when the set holds no labels.
    """
    curves = _Curves(stats)
    weights = np.ones(curves.n_images, np.int64) if image_weights is None else np.asarray(image_weights, np.int64)
    return summary_metrics(curves.average_precision(weights[None])[0])


class DetectionStatistics:
    """The detection task's statistics for the paired bootstrap: size bins of :class:`ImageStats` per run.

    A run is ``{"all": ImageStats, "small": ImageStats, ...}`` as ``image_stats.npz`` holds it; the metrics are
    :data:`COMPARED_METRICS`, recomputed exactly as Ultralytics' ``ap_per_class`` on any weighted image set.
    """

    def __init__(self, metrics: Sequence[str] = COMPARED_METRICS):
        unknown = [metric for metric in metrics if metric not in _METRIC_SOURCE]
        if unknown:
            raise ValueError(f"unknown detection metrics {unknown}; choose from {tuple(_METRIC_SOURCE)}")
        self.metrics = tuple(metrics)

    def images(self, run: dict[str, ImageStats]) -> list[str]:
        """The run's validation images, in order."""
        return run["all"].images

    def evaluate(self, run: dict[str, ImageStats], sets: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric on each weighted image set: (S, n_images) counts -> metric name to (S,) values."""
        chunks = np.array_split(sets, -(-len(sets) // RESAMPLES_PER_CHUNK))
        ap = {}
        for name in sorted({_METRIC_SOURCE[metric][0] for metric in self.metrics}):
            curves = _Curves(run[name])
            ap[name] = np.concatenate([curves.average_precision(chunk) for chunk in chunks])  # (S, n_iou)
        values = {}
        for metric in self.metrics:
            source_bin, key = _METRIC_SOURCE[metric]
            values[metric] = ap[source_bin][:, 0] if key == "map50" else ap[source_bin].mean(1)
        return values


# The comparison machinery shared by every task, re-exported (it builds on DetectionStatistics above).
from scsa_yolo.benchmark.comparisons import (  # noqa: E402
    CONFIDENCE,
    MAX_DROPPED_FRACTION,
    MAX_SIGN_FLIP_SEEDS,
    Comparison,
    PerImageSums,
    SummedStatistics,
    TaskStatistics,
    image_resamples,
    paired_comparisons,
    resampled_metrics,
    sign_flip_p_value,
    smallest_sign_flip_p_value,
)

__all__ = [
    "AREA_RANGES",
    "COMPARED_METRICS",
    "CONFIDENCE",
    "MAX_DROPPED_FRACTION",
    "MAX_SIGN_FLIP_SEEDS",
    "Comparison",
    "DetectionStatistics",
    "ImageStats",
    "PerImageSums",
    "SummedStatistics",
    "TaskStatistics",
    "average_precision",
    "image_resamples",
    "load_image_stats",
    "metric_size_bin",
    "paired_comparisons",
    "resampled_metrics",
    "save_image_stats",
    "sign_flip_p_value",
    "smallest_sign_flip_p_value",
    "summary_metrics",
]
