"""Summary plots of a benchmark, drawn with matplotlib's object API (no pyplot state, no display needed)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

# Columns of the results.csv that Ultralytics' detection trainer writes, one panel each.
CURVE_COLUMNS = (
    ("train/box_loss", "train box loss"),
    ("val/box_loss", "val box loss"),
    ("metrics/mAP50(B)", "val mAP50"),
    ("metrics/mAP50-95(B)", "val mAP50-95"),
)
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


def plot_accuracy_vs_latency(rows: Sequence[dict], path: Path) -> None:
    """Scatter mAP50-95 against CPU latency: one small dot per run, one large marker per model mean.

    Args:
        rows: Run results with ``model``, ``latency_ms``, ``map50_95``.
        path: Output image.
    """
    figure = Figure(figsize=(6, 4.5), layout="constrained")
    axes = figure.add_subplot()
    models = list(dict.fromkeys(row["model"] for row in rows))
    for index, model in enumerate(models):
        runs = [row for row in rows if row["model"] == model]
        latencies = [float(row["latency_ms"]) for row in runs]
        maps = [float(row["map50_95"]) for row in runs]
        color = f"C{index}"
        axes.scatter(latencies, maps, color=color, alpha=0.4, s=20)
        axes.scatter([sum(latencies) / len(runs)], [sum(maps) / len(runs)], color=color, s=90, marker="D", label=model)
    axes.set_xlabel("CPU latency, batch 1 (ms, median)")
    axes.set_ylabel("val mAP50-95")
    axes.set_title("Accuracy vs latency (dots: seeds, diamonds: mean)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.savefig(path, dpi=120)


def plot_training_curves(curves: dict[tuple[str, int], Path], path: Path) -> None:
    """Overlay every run's training curves: colour per model, line style per seed.

    Args:
        curves: ``(model, seed)`` to the run's Ultralytics ``results.csv``.
        path: Output image.
    """
    figure = Figure(figsize=(10, 7), layout="constrained")
    panels = figure.subplots(2, 2).ravel()
    models = list(dict.fromkeys(model for model, _ in curves))
    seeds = sorted({seed for _, seed in curves})
    for (model, seed), results_csv in curves.items():
        columns = read_training_curves(results_csv)
        style = {"color": f"C{models.index(model)}", "linestyle": LINE_STYLES[seeds.index(seed) % len(LINE_STYLES)]}
        for axes, (column, _) in zip(panels, CURVE_COLUMNS):
            if column in columns:
                axes.plot(columns["epoch"], columns[column], label=f"{model} seed {seed}", **style)
    for axes, (_, title) in zip(panels, CURVE_COLUMNS):
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.grid(alpha=0.3)
    panels[0].legend(fontsize="small")
    figure.savefig(path, dpi=120)
