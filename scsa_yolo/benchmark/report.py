"""The benchmark's outputs as files: ``results.csv``, ``comparisons.csv`` and ``results.md``.

``results.csv`` has one row per run, ``comparisons.csv`` the paired differences with intervals, ``results.md`` the
per-model summary, the verdicts and how to read them.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path

from scsa_yolo.benchmark.paired_tests import ExactPairedTest, paired_test_lines
from scsa_yolo.benchmark.records import ROW_TYPES, ResultRow, result_columns
from scsa_yolo.benchmark.stats import (
    CONFIDENCE,
    MAX_DROPPED_FRACTION,
    Comparison,
    metric_size_bin,
    smallest_sign_flip_p_value,
)
from scsa_yolo.benchmark.tasks import TASKS, metric_label

COMPARISON_COLUMNS = ("model", "reference", "metric", "seeds", "images", "delta", "ci_low", "ci_high", "p_value")


def model_label(name: str) -> str:
    """A model's display name: its file stem (``cfg/yolov8n-scsa.yaml`` -> ``yolov8n-scsa``)."""
    return Path(str(name)).stem


def as_dicts(rows: Sequence[ResultRow | dict]) -> list[dict]:
    """Result rows as dicts keyed by their columns (dicts pass through)."""
    return [asdict(row) if is_dataclass(row) else dict(row) for row in rows]


def rows_task(rows: Sequence) -> str:
    """The task of result rows, from their row type (:data:`~scsa_yolo.benchmark.records.ROW_TYPES`).

    Dicts and no rows are detection's.
    """
    for task, row_type in ROW_TYPES.items():
        if rows and isinstance(rows[0], row_type):
            return task
    return "detect"


def write_results_csv(rows: Sequence[ResultRow], path: Path) -> None:
    """Write one line per run; the columns are the fields of the task's row type.

    Args:
        rows: Run results, in run order.
        path: Output file.
    """
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=result_columns(rows_task(rows)))
        writer.writeheader()
        writer.writerows(as_dicts(rows))


def read_results_csv(path: Path) -> list[dict]:
    """Read a ``results.csv`` written by :func:`write_results_csv` back as strings."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_comparisons_csv(comparisons: Sequence[tuple[str, Comparison]], path: Path, with_dataset: bool) -> None:
    """Write one line per (model, metric) with :data:`COMPARISON_COLUMNS`.

    A leading ``dataset`` column is added only when the benchmark ran on several datasets. ``p_value`` is empty
    where undefined (one seed).
    """
    columns = (("dataset",) if with_dataset else ()) + COMPARISON_COLUMNS
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for dataset, comparison in comparisons:
            row = [
                comparison.model,
                comparison.reference,
                comparison.metric,
                comparison.seeds,
                comparison.images,
                f"{comparison.delta:.6f}",
                f"{comparison.ci_low:.6f}",
                f"{comparison.ci_high:.6f}",
                "" if comparison.p_value is None else f"{comparison.p_value:.4f}",
            ]
            writer.writerow(([dataset] if with_dataset else []) + row)


def verdict(comparison: Comparison) -> str:
    """One sentence a person can read about one comparison.

    For example ``yolov8n-scsa vs yolov8n: ΔmAP50-95 +0.008 [-0.004, +0.019] (95 % CI, 3 seeds x 548 images,
    sign-flip p = 0.25): not distinguishable from noise``.
    """
    c = comparison
    details = f"{CONFIDENCE:.0%} CI, {c.seeds} seed{'s' if c.seeds > 1 else ''} x {c.images} images".replace("%", " %")
    if c.p_value is not None:
        details += f", sign-flip p = {c.p_value:.2f}"
    text = (
        f"{c.model} vs {c.reference}: Δ{metric_label(c.metric)} {_signed(c.delta)} "
        f"[{_signed(c.ci_low)}, {_signed(c.ci_high)}] ({details}): "
    )
    if not math.isfinite(c.delta):
        return text + "undefined (no labels of that size in the val split)"
    if c.excludes_zero:
        text += f"{'higher' if c.delta > 0 else 'lower'} than {c.reference} beyond the interval"
        if c.p_value is not None and c.p_value > 1 - CONFIDENCE:
            # a bootstrap over a few seeds underestimates their spread; the exact test over the seeds is the check
            smallest = smallest_sign_flip_p_value(c.seeds)
            text += ", but not confirmed across seeds " + (
                f"({c.seeds} seeds cannot give p below {smallest:.2f}; use more seeds)"
                if smallest > 1 - CONFIDENCE
                else f"(p > {1 - CONFIDENCE:.2f})"
            )
    else:
        text += "not distinguishable from noise"
    if c.seeds == 1:
        text += " (one seed: the interval covers image sampling only, not training-seed variation)"
    if math.isfinite(c.ci_low) and not c.ci_low <= c.delta <= c.ci_high:
        # a percentile interval need not hold its estimate: AP recomputed on resampled images is biased
        text += "; the estimate lies outside its bootstrap interval, so the interval is unreliable here"
    if not c.interval_reliable:
        text += f"; {_dropped_sentence(c)}"
    return text


def _dropped_sentence(c: Comparison) -> str:
    """How many resamples had no labels of the metric's size bin, and whether that makes the interval unreliable."""
    size_bin = metric_size_bin(c.metric)
    text = f"{c.dropped} of {c.resamples} resamples had no {'labels' if size_bin == 'all' else size_bin + ' objects'}"
    text += " and were left out"
    if not c.interval_reliable:
        text += f" (more than {MAX_DROPPED_FRACTION:.0%}, so the interval is unreliable)".replace("%", " %")
    return text


def dropped_resample_notes(comparisons: Sequence[tuple[str, Comparison]], multiple_datasets: bool) -> list[str]:
    """One line per comparison whose interval left out resamples without labels of its size bin (none: no lines).

    A comparison undefined on the full split (no labels of that size at all) is left to its ``nan`` delta.
    """
    lines = []
    for dataset, c in comparisons:
        if c.dropped and math.isfinite(c.delta):
            prefix = (f"[{dataset}] " if multiple_datasets else "") + f"{c.model} vs {c.reference}, {c.metric}: "
            lines.append(prefix + _dropped_sentence(c))
    return lines


def comparison_verdicts(
    comparisons: Sequence[tuple[str, Comparison]], multiple_datasets: bool, headline: str = "map50_95"
) -> list[str]:
    """The verdict lines for the comparisons of the task's headline metric (one per model and dataset)."""
    lines = []
    for dataset, comparison in comparisons:
        if comparison.metric == headline:
            lines.append((f"[{dataset}] " if multiple_datasets else "") + verdict(comparison))
    return lines


def _signed(value: float, digits: int = 3) -> str:
    return "nan" if not math.isfinite(value) else f"{value:+.{digits}f}"


def _mean_spread(values: Sequence[float], digits: int) -> str:
    """Format ``mean ± std (min–max)`` over seeds, the single value with one seed, ``—`` for NaN (no labels)."""
    values = [value for value in values if math.isfinite(value)]
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    mean, std = statistics.mean(values), statistics.stdev(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def _relative(value: float, reference: float) -> str:
    """Signed percentage change of ``value`` against ``reference``."""
    if not reference:
        return "n/a"
    return f"{(value - reference) / reference * 100:+.1f}%"


def _number(value) -> float:
    """A results value as float, NaN for empty cells."""
    return math.nan if value in (None, "") else float(value)


def summarize(rows: Sequence[dict], metrics: Sequence[str] = TASKS["detect"].table) -> list[dict]:
    """Group runs by (dataset, model) in first-seen order and collect the numbers the table shows.

    Args:
        rows: Run results.
        metrics: The metric columns to collect per seed.

    Returns:
        One dict per (dataset, model) with the per-seed value lists and the per-architecture costs.
    """
    groups: dict[tuple, dict] = {}
    for row in as_dicts(rows):
        key = (row.get("dataset", ""), model_label(row["model"]))
        group = groups.setdefault(
            key,
            {
                "dataset": key[0],
                "model": key[1],
                "seeds": [],
                "params": _number(row["params"]),
                "gflops": _number(row["gflops"]),
                "latency_ms": _number(row["latency_ms"]),
                "latency_ratio": [
                    _number(row.get(k)) for k in ("latency_ratio", "latency_ratio_low", "latency_ratio_high")
                ],
                "latency_gpu_ms": row.get("latency_gpu_ms"),
                "resumed": [],
                **{key: [] for key in (*metrics, "train_s")},
            },
        )
        group["seeds"].append(row["seed"])
        for metric in (*metrics, "train_s"):
            group[metric].append(_number(row.get(metric)))
        if row.get("resumed_at_epochs"):
            group["resumed"].append(row["seed"])
    return list(groups.values())


def markdown_table(rows: Sequence[dict], task: str | None = None) -> str:
    """Render the per-model summary as a Markdown table (one block of rows per dataset).

    The metric columns are the task's (:mod:`scsa_yolo.benchmark.tasks`; the rows' task when None). The first model
    of each dataset is the reference: Δ columns compare the others' costs (relative) and the mean of the task's
    headline metric (absolute points) with it. Spread is over seeds: mean ± sample std (min–max). Latency ratios
    carry a 95 % interval over the paired timing rounds.
    """
    spec = TASKS[task or rows_task(rows)]
    groups = summarize(rows, spec.table)
    if not groups:
        return "No finished runs.\n"
    references = {}
    for group in groups:
        references.setdefault(group["dataset"], group)
    has_gpu = any(g["latency_gpu_ms"] not in (None, "") for g in groups)
    header = ["dataset", "model", "seeds", "params (M)", "Δparams", "GFLOPs", "CPU ms", "ΔCPU ms [95 % CI]"]
    header += ["GPU ms"] if has_gpu else []
    for metric in spec.table:
        header += [spec.labels[metric]] + ([f"Δ{spec.labels[metric]}"] if metric == spec.headline else [])
    header += ["train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for group in groups:
        reference = references[group["dataset"]]
        is_reference = group is reference
        ratio, low, high = group["latency_ratio"]
        latency_delta = (
            "—"
            if is_reference or not math.isfinite(ratio)
            else f"{(ratio - 1) * 100:+.1f}% [{(low - 1) * 100:+.1f}, {(high - 1) * 100:+.1f}]"
        )
        cells = [
            group["dataset"],
            group["model"],
            ",".join(str(seed) for seed in group["seeds"])
            + (" (resumed: " + ",".join(map(str, group["resumed"])) + ")" if group["resumed"] else ""),
            f"{group['params'] / 1e6:.3f}",
            "—" if is_reference else _relative(group["params"], reference["params"]),
            f"{group['gflops']:.2f}",
            f"{group['latency_ms']:.1f}",
            latency_delta,
        ]
        if has_gpu:
            gpu_ms = group["latency_gpu_ms"]
            cells.append(f"{float(gpu_ms):.2f}" if gpu_ms not in (None, "") else "")
        for metric in spec.table:
            cells.append(_mean_spread(group[metric], 3))
            if metric == spec.headline:
                delta = statistics.mean(group[metric]) - statistics.mean(reference[metric])
                cells.append("—" if is_reference else f"{delta:+.3f}")
        cells.append(f"{statistics.mean(group['train_s']):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


TABLE_NOTES = {
    "detect": "; AP small/medium/large are Ultralytics' COCO evaluation (faster-coco-eval) by box area in "
    "original-image pixels (< 32², 32²–96², > 96²), — where the val split has no labels of that size",
    "segment": "; box and mask mAP are Ultralytics' segmentation validator's",
    "pose": "; box and keypoint (OKS) mAP are Ultralytics' pose validator's",
    "obb": "; mAP of the rotated boxes (probabilistic IoU) is Ultralytics' OBB validator's",
    "classify": "; top-1/top-5 accuracy as Ultralytics' classification validator (top-n with n = min(5, classes))",
    "depth": "; abs-rel (lower is better) and δ<1.25 are Ultralytics' depth validator's, per image averaged over "
    "images",
    "semantic": "; mIoU is the mean IoU over the classes with labelled pixels (Ultralytics' semantic validator)",
}
EXACT_TEST_NOTE = (
    "McNemar's exact test on the images the two classifiers got right and wrong (top-1): only the images where "
    "exactly one of them was right count; under equal accuracy each is equally likely to favour either model. It "
    "covers the validation images of one training seed, not seed-to-seed variation."
)
READING_NOTE = (
    "How to read the comparisons: each interval is a {confidence} paired bootstrap interval of the difference to the "
    "reference, from {resamples} resamples of the validation images (the same resampled images for both models) and, "
    "with several seeds, of the seeds first; the metrics are recomputed from each run's saved per-image statistics, "
    "not re-validated. An interval that contains 0 means this benchmark cannot tell the models apart; the sign-flip "
    "p-value tests the per-seed differences (with 3 seeds it cannot go below 0.25)."
)


def markdown_report(
    rows: Sequence[dict],
    comparisons: Sequence[tuple[str, Comparison]],
    plan,
    comparison_seconds: float,
    resamples: int,
    exact_tests: Sequence[tuple[str, ExactPairedTest]] = (),
) -> str:
    """The whole ``results.md``: settings, table, notes, verdicts and the comparisons table.

    Args:
        rows: Run results with costs.
        comparisons: ``(dataset, Comparison)`` pairs.
        plan: The :class:`scsa_yolo.benchmark.runner.BenchmarkPlan` that ran.
        comparison_seconds: Time the comparisons took.
        resamples: Bootstrap replicates used.
        exact_tests: ``(dataset, ExactPairedTest)`` pairs (classifiers: McNemar's exact test per seed).

    Returns:
        Markdown text.
    """
    settings = plan.settings[0]
    multiple = len(plan.datasets) > 1
    spec = TASKS[getattr(plan, "task", "detect")]
    lines = [
        f"# Benchmark: {', '.join(model_label(m) for m in plan.models)}",
        "",
        "data " + ", ".join(f"`{d}`" for d in plan.datasets) + f"; {settings.epochs} epochs, imgsz {settings.imgsz}, "
        f"batch {settings.batch}, seeds {', '.join(map(str, plan.seeds))}",
        "",
        markdown_table(rows, spec.name),
        f"Δ columns compare with the first model of each dataset (costs relative, {spec.labels[spec.headline]} in "
        "absolute points). Metrics are on the val split with the final (last-epoch) weights"
        + TABLE_NOTES[spec.name]
        + ". Latency is the median batch-1 forward pass, measured per architecture in one process with the models "
        "interleaved; its interval comes from the paired timing rounds.",
        "",
    ]
    resumed = [row for row in as_dicts(rows) if row.get("resumed_at_epochs")]
    if resumed:
        lines += [
            "Resumed runs (interrupted, then continued from last.pt; not bit-identical to an unbroken run): "
            + ", ".join(
                f"{model_label(r['model'])} seed {r['seed']} at epoch(s) {r['resumed_at_epochs']}" for r in resumed
            ),
            "",
        ]
    if comparisons:
        lines += ["## Verdict", ""]
        lines += [f"- {line}" for line in comparison_verdicts(comparisons, multiple, spec.headline)]
        lines += [
            "",
            READING_NOTE.format(confidence=f"{CONFIDENCE:.0%}".replace("%", " %"), resamples=resamples),
            "",
            "| " + " | ".join((("dataset",) if multiple else ()) + COMPARISON_COLUMNS) + " |",
            "|" + "---|" * (len(COMPARISON_COLUMNS) + multiple),
        ]
        for dataset, c in comparisons:
            metric = c.metric if c.interval_reliable or not math.isfinite(c.delta) else f"{c.metric} (CI unreliable)"
            cells = [c.model, c.reference, metric, str(c.seeds), str(c.images), _signed(c.delta, 4)]
            cells += [_signed(c.ci_low, 4), _signed(c.ci_high, 4), "" if c.p_value is None else f"{c.p_value:.2f}"]
            lines.append("| " + " | ".join(([dataset] if multiple else []) + cells) + " |")
        lines += [""] + [f"- {note}" for note in dropped_resample_notes(comparisons, multiple)]
        lines += ["", f"The comparisons took {comparison_seconds:.1f} s ({resamples} resamples)."]
    if exact_tests:
        lines += ["", "## Exact paired test (top-1, per seed)", "", EXACT_TEST_NOTE, ""]
        lines += [
            f"- {'[' + dataset + '] ' if multiple else ''}{line}"
            for (dataset, _), line in zip(exact_tests, paired_test_lines([t for _, t in exact_tests]))
        ]
    return "\n".join(lines) + "\n"
