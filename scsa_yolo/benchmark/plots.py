"""Summary plots of a benchmark, drawn with matplotlib's object API (no pyplot state, no display needed)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from scsa_yolo.benchmark.report import as_dicts, model_label
from scsa_yolo.benchmark.tasks import TASKS, metric_label

# Columns of the results.csv that Ultralytics' detection trainer writes, one panel each (other tasks: TaskSpec.curves).
CURVE_COLUMNS = TASKS["detect"].curves
LINE_STYLES = ("-", "--", ":", "-.")


def read_training_curves(results_csv: Path) -> dict[str, list[float]]:
    """Read an Ultralytics ``results.csv`` into columns, one value per epoch.

    A resumed run can repeat an epoch (the row was written, then training stopped before the checkpoint); the
    last row written for an epoch wins.

    Args:
        results_csv: The file Ultralytics writes into each run folder.

    Returns:
        Column name to values ordered by epoch (``epoch`` included).
    """
    with open(results_csv, newline="") as handle:
        rows = [{key.strip(): value for key, value in row.items()} for row in csv.DictReader(handle)]
    by_epoch = {int(float(row["epoch"])): row for row in rows}
    ordered = [by_epoch[epoch] for epoch in sorted(by_epoch)]
    columns = ordered[0].keys() if ordered else []
    return {column: [float(row[column]) for row in ordered] for column in columns}


def plot_accuracy_vs_latency(rows: Sequence[dict], path: Path, metric: str = "map50_95") -> None:
    """The task's headline metric (detection: mAP50-95) against CPU latency, one marker per model, panel per dataset.

    Each marker has seed and timing error bars.

    Both axes start at 0, so a difference is drawn in proportion to the values themselves: a 0.003 mAP gap between
    two models at 0.07 looks as small as it is. Vertical bars span the seeds' min–max (dots: single seeds);
    horizontal bars the 95 % interval of the latency ratio to the reference, drawn around that model's median.

    Args:
        rows: Run results with ``dataset``, ``model``, ``latency_ms``, ``latency_ratio*`` and ``metric``.
        path: Output image.
        metric: The results column on the vertical axis.
    """
    rows = as_dicts(rows)
    datasets = list(dict.fromkeys(row.get("dataset", "") for row in rows))
    figure = Figure(figsize=(6 * len(datasets), 4.5), layout="constrained")
    panels = figure.subplots(1, len(datasets), squeeze=False)[0]
    for axes, dataset in zip(panels, datasets):
        subset = [row for row in rows if row.get("dataset", "") == dataset]
        models = list(dict.fromkeys(model_label(row["model"]) for row in subset))
        top, right = 0.0, 0.0
        for index, model in enumerate(models):
            runs = [row for row in subset if model_label(row["model"]) == model]
            maps = [_float(row[metric]) for row in runs]
            latency = float(runs[0]["latency_ms"])
            ratio, low, high = (
                _float(runs[0].get(key)) for key in ("latency_ratio", "latency_ratio_low", "latency_ratio_high")
            )
            mean = sum(maps) / len(maps)
            x_error = (
                [[latency * (1 - low / ratio)], [latency * (high / ratio - 1)]] if ratio == ratio and ratio else None
            )
            color = f"C{index}"
            axes.scatter([latency] * len(maps), maps, color=color, alpha=0.4, s=16)
            axes.errorbar(
                [latency],
                [mean],
                yerr=[[mean - min(maps)], [max(maps) - mean]],
                xerr=x_error,
                fmt="D",
                color=color,
                markersize=8,
                capsize=4,
                label=f"{model} ({len(maps)} seed{'s' if len(maps) > 1 else ''})",
            )
            top, right = max(top, max(maps)), max(right, latency * (high / ratio if ratio == ratio and ratio else 1))
        axes.set_ylim(0, max(top * 1.25, 1e-3))
        axes.set_xlim(0, right * 1.25)
        axes.set_xlabel("CPU latency, batch 1 (ms, median)")
        axes.set_ylabel(f"val {metric_label(metric)}")
        axes.set_title(f"{dataset}: accuracy vs latency" if dataset else "Accuracy vs latency")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small", loc="lower right")
    figure.savefig(path, dpi=120)


def plot_comparisons(comparisons: Sequence[tuple[str, object]], path: Path) -> None:
    """Forest plot: each model's difference to the reference with its 95 % interval, one panel per metric.

    Args:
        comparisons: ``(dataset, Comparison)`` pairs as the runner makes them.
        path: Output image.
    """
    metrics = list(dict.fromkeys(c.metric for _, c in comparisons)) or ["map50_95"]
    labels = list(dict.fromkeys(_forest_label(dataset, c, comparisons) for dataset, c in comparisons))
    figure = Figure(figsize=(4.2 * len(metrics), 1.2 + 0.5 * max(len(labels), 1)), layout="constrained")
    panels = figure.subplots(1, len(metrics), squeeze=False, sharey=True)[0]
    for axes, metric in zip(panels, metrics):
        axes.axvline(0, color="black", linewidth=1)
        for dataset, c in comparisons:
            if c.metric != metric:
                continue
            y = len(labels) - 1 - labels.index(_forest_label(dataset, c, comparisons))
            color = "C3" if c.excludes_zero else "C0"
            axes.errorbar(
                [c.delta], [y], xerr=[[c.delta - c.ci_low], [c.ci_high - c.delta]], fmt="o", color=color, capsize=4
            )
        axes.set_yticks(range(len(labels)), labels[::-1])
        axes.set_xlabel(f"{metric}: difference to reference")
        axes.set_title(f"{metric} (95 % CI)")
        axes.grid(axis="x", alpha=0.3)
    if comparisons:
        _, first = comparisons[0]
        figure.suptitle(f"Paired bootstrap: {first.seeds} seed(s) x {first.images} images; red: interval excludes 0")
    figure.savefig(path, dpi=120)


def _forest_label(dataset: str, comparison, comparisons) -> str:
    """Row label of the forest plot: the model vs its reference, prefixed by the dataset when there are several."""
    several = len({d for d, _ in comparisons}) > 1
    return (f"{dataset}: " if several else "") + f"{comparison.model} vs {comparison.reference}"


def _float(value) -> float:
    return float("nan") if value in (None, "") else float(value)


def plot_training_curves(curves: dict[tuple[str, str, int], Path], path: Path, task: str = "detect") -> None:
    """Overlay every run's training curves: colour per (dataset, model), line style per seed.

    Args:
        curves: ``(dataset, model, seed)`` to the run's Ultralytics ``results.csv``.
        path: Output image.
        task: The runs' task (its trainer's ``results.csv`` columns are plotted).
    """
    panel_columns = TASKS[task].curves
    figure = Figure(figsize=(10, 7), layout="constrained")
    panels = figure.subplots(2, 2).ravel()
    several = len({dataset for dataset, _, _ in curves}) > 1
    groups = list(dict.fromkeys((dataset, model) for dataset, model, _ in curves))
    seeds = sorted({seed for _, _, seed in curves})
    for (dataset, model, seed), results_csv in curves.items():
        if not results_csv.is_file():
            continue
        columns = read_training_curves(results_csv)
        color = f"C{groups.index((dataset, model)) % 10}"
        style = {"color": color, "linestyle": LINE_STYLES[seeds.index(seed) % len(LINE_STYLES)]}
        label = (f"{dataset}: " if several else "") + f"{model_label(model)} seed {seed}"
        for axes, (column, _) in zip(panels, panel_columns):
            if column in columns:
                axes.plot(columns["epoch"], columns[column], label=label, **style)
    for axes, (_, title) in zip(panels, panel_columns):
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
    panels[0].legend(fontsize="small")
    figure.savefig(path, dpi=120)
