"""The benchmark's outputs as files: ``results.csv`` (one row per run) and ``results.md`` (per-model summary)."""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from pathlib import Path

# One row per (model, seed). latency_* are per architecture (measured once, same process, interleaved), so all seeds
# of a model share them; device is where training ran.
RESULT_COLUMNS = (
    "model",
    "seed",
    "params",
    "gflops",
    "latency_ms",
    "map50",
    "map50_95",
    "precision",
    "recall",
    "train_s",
    "epochs",
    "imgsz",
    "device",
    "latency_device",
    "latency_gpu_ms",
    "latency_gpu_device",
)


def write_results_csv(rows: Sequence[dict], path: Path) -> None:
    """Write one line per run with :data:`RESULT_COLUMNS` (missing values left empty).

    Args:
        rows: Run results, in run order.
        path: Output file.
    """
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESULT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: row.get(column, "") for column in RESULT_COLUMNS})


def read_results_csv(path: Path) -> list[dict]:
    """Read a ``results.csv`` written by :func:`write_results_csv` back as strings."""
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _mean_spread(values: Sequence[float], digits: int) -> str:
    """Format ``mean ± std (min–max)`` over seeds, or the single value with its seed count."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    mean, std = statistics.mean(values), statistics.stdev(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def _relative(value: float, reference: float) -> str:
    """Signed percentage change of ``value`` against ``reference``."""
    if not reference:
        return "n/a"
    return f"{(value - reference) / reference * 100:+.1f}%"


def summarize(rows: Sequence[dict]) -> list[dict]:
    """Group runs by model (first-seen order) and compute the numbers the table shows.

    Args:
        rows: Run results with numeric values.

    Returns:
        One dict per model with ``model``, ``seeds``, the per-seed value lists and the per-architecture costs.
    """
    groups: dict[str, dict] = {}
    for row in rows:
        group = groups.setdefault(
            row["model"],
            {
                "model": row["model"],
                "seeds": [],
                "map50": [],
                "map50_95": [],
                "train_s": [],
                "params": row["params"],
                "gflops": row["gflops"],
                "latency_ms": row["latency_ms"],
                "latency_gpu_ms": row.get("latency_gpu_ms"),
            },
        )
        group["seeds"].append(row["seed"])
        for key in ("map50", "map50_95", "train_s"):
            group[key].append(float(row[key]))
    return list(groups.values())


def markdown_table(rows: Sequence[dict]) -> str:
    """Render the per-model summary as a Markdown table followed by notes on how to read it.

    The first model is the reference: the Δ columns compare every other model's cost (relative) and mean mAP50-95
    (absolute points) against it. Spread is over seeds: mean ± sample std (min–max).

    Args:
        rows: Run results (as from the runner or :func:`read_results_csv` after conversion to numbers).

    Returns:
        Markdown text.
    """
    groups = summarize(rows)
    if not groups:
        return "No finished runs.\n"
    reference = groups[0]
    has_gpu = any(g["latency_gpu_ms"] not in (None, "") for g in groups)
    header = ["model", "seeds", "params (M)", "Δparams", "GFLOPs", "ΔGFLOPs", "CPU ms", "ΔCPU ms"]
    header += ["GPU ms"] if has_gpu else []
    header += ["mAP50", "mAP50-95", "ΔmAP50-95", "train s"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    reference_map = statistics.mean(reference["map50_95"])
    for group in groups:
        delta_map = statistics.mean(group["map50_95"]) - reference_map
        cells = [
            group["model"],
            ",".join(str(seed) for seed in group["seeds"]),
            f"{group['params'] / 1e6:.3f}",
            "—" if group is reference else _relative(group["params"], reference["params"]),
            f"{group['gflops']:.2f}",
            "—" if group is reference else _relative(group["gflops"], reference["gflops"]),
            f"{group['latency_ms']:.1f}",
            "—" if group is reference else _relative(group["latency_ms"], reference["latency_ms"]),
        ]
        if has_gpu:
            gpu_ms = group["latency_gpu_ms"]
            cells.append(f"{float(gpu_ms):.2f}" if gpu_ms not in (None, "") else "")
        cells += [
            _mean_spread(group["map50"], 3),
            _mean_spread(group["map50_95"], 3),
            "—" if group is reference else f"{delta_map:+.3f}",
            f"{statistics.mean(group['train_s']):.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(_reading_note(groups))
    return "\n".join(lines) + "\n"


def _reading_note(groups: list[dict]) -> str:
    """Say, from the numbers themselves, whether the mAP differences can be told apart from seed noise."""
    notes = [
        "Δ columns compare with the first model (costs relative, mAP50-95 in absolute points). mAP is on the val "
        "split with the final (last-epoch) weights; latency is the median batch-1 forward pass, measured per "
        "architecture in one process with the models interleaved."
    ]
    seed_counts = {len(g["seeds"]) for g in groups}
    if min(seed_counts) < 2:
        notes.append(
            "With a single seed there is no spread to compare against: a ΔmAP50-95 from one short run is not evidence "
            "either way. Add seeds (--seeds 0,1,2) before reading anything into it."
        )
    else:
        widest = max(statistics.stdev(g["map50_95"]) for g in groups)
        reference_map = statistics.mean(groups[0]["map50_95"])
        for group in groups[1:]:
            delta = statistics.mean(group["map50_95"]) - reference_map
            verdict = "larger" if abs(delta) > 2 * widest else "not larger"
            notes.append(
                f"{group['model']}: |ΔmAP50-95| = {abs(delta):.3f} is {verdict} than twice the largest seed std "
                f"({widest:.3f}); with {min(seed_counts)} seeds that is a rough screen, not a significance test."
            )
    return "\n\n".join(notes)
