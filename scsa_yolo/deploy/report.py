"""The deployment table: one :class:`DeployRow` per (target, model), written as CSV, markdown and a plot.

The CSV columns are the fields of :class:`DeployRow`, in order. The first model given is the reference (the plain
detector): every other model's latency is divided by the reference's on the same target (interleaved rounds,
median, 95 % interval over rounds) and its INT8 drop is compared with the reference's (paired bootstrap over the val
images). ``pytorch`` rows are the models themselves, the baseline of the parity and mAP columns.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

STATUS_OK = "ok"


@dataclass
class DeployRow:
    """One model on one target.

    Attributes:
        target: ``pytorch`` or ``format[:precision]``.
        format: Ultralytics' export format (``pytorch`` for the baseline).
        precision: fp32, fp16 or int8.
        model: The model's name.
        status: ``ok``, ``export failed``, ``load failed``, ``run failed`` or ``val failed``.
        error: One line when the status is not ok.
        size_mb: Exported size on disk.
        export_s: Export wall time.
        parity: Max abs difference of the raw head output to PyTorch on the parity images.
        map50_95: mAP50-95 through Ultralytics' validator on this target.
        map50_95_vs_pytorch: ``map50_95`` minus the same model's PyTorch mAP50-95.
        ap_small: COCO AP of small objects (NaN without small labels).
        latency_ms: Median batch-1 inference time through the backend.
        ratio: Latency over the reference model's on this target (1 for the reference).
        ratio_low: Lower end of the ratio's 95 % interval.
        ratio_high: Upper end.
        int8_drop: INT8 mAP50-95 minus this model's PyTorch mAP50-95 (INT8 targets).
        int8_drop_low: Lower end of its 95 % paired-bootstrap interval.
        int8_drop_high: Upper end.
        drop_vs_reference: ``int8_drop`` minus the reference model's ``int8_drop`` on this target.
        drop_vs_reference_low: Lower end of its interval.
        drop_vs_reference_high: Upper end.
    """

    target: str
    format: str
    precision: str
    model: str
    status: str = STATUS_OK
    error: str = ""
    size_mb: float = math.nan
    export_s: float = math.nan
    parity: float = math.nan
    map50_95: float = math.nan
    map50_95_vs_pytorch: float = math.nan
    ap_small: float = math.nan
    latency_ms: float = math.nan
    ratio: float = math.nan
    ratio_low: float = math.nan
    ratio_high: float = math.nan
    int8_drop: float = math.nan
    int8_drop_low: float = math.nan
    int8_drop_high: float = math.nan
    drop_vs_reference: float = math.nan
    drop_vs_reference_low: float = math.nan
    drop_vs_reference_high: float = math.nan

    @property
    def ok(self) -> bool:
        """The target exported, loaded and validated for this model."""
        return self.status == STATUS_OK


COLUMNS = tuple(field.name for field in fields(DeployRow))


def write_csv(rows: list[DeployRow], path: Path) -> None:
    """One line per row, columns :data:`COLUMNS`; NaN written as an empty cell."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(row).items()})


def read_csv(path: Path) -> list[DeployRow]:
    """Inverse of :func:`write_csv`."""
    types = {field.name: field.type for field in fields(DeployRow)}
    with open(path, newline="", encoding="utf-8") as handle:
        return [
            DeployRow(**{k: (float(v) if v else math.nan) if types[k] == "float" else v for k, v in line.items()})
            for line in csv.DictReader(handle)
        ]


def _number(value: float, digits: int = 3) -> str:
    return "" if math.isnan(value) else f"{value:.{digits}f}"


def _interval(value: float, low: float, high: float, digits: int = 3, signed: bool = False) -> str:
    if math.isnan(value):
        return ""
    form = f"{{:{'+' if signed else ''}.{digits}f}}"
    text = form.format(value)
    if not (math.isnan(low) or math.isnan(high)):
        text += f" [{form.format(low)}, {form.format(high)}]"
    return text


def markdown(rows: list[DeployRow], header: str = "") -> str:
    """The table as markdown: works, size, parity, mAP (vs PyTorch), latency, ratio and INT8 drops with intervals."""
    lines = [header, ""] if header else []
    lines += [
        "| target | model | works | size MB | parity (max abs) | mAP50-95 (vs PyTorch) | AP small | latency ms "
        "| ratio vs reference [95 % CI] | INT8 drop [95 % CI] | drop minus reference's [95 % CI] |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        works = "yes" if row.ok else f"no: {row.status}"
        mean_ap = _number(row.map50_95, 4)
        if mean_ap and row.format != "pytorch":
            mean_ap += f" ({row.map50_95_vs_pytorch:+.4f})"
        lines.append(
            f"| {row.target} | {row.model} | {works} | {_number(row.size_mb, 1)} | "
            f"{'' if math.isnan(row.parity) else f'{row.parity:.1e}'} | {mean_ap} | {_number(row.ap_small, 4)} | "
            f"{_number(row.latency_ms, 1)} | {_interval(row.ratio, row.ratio_low, row.ratio_high, 2)} | "
            f"{_interval(row.int8_drop, row.int8_drop_low, row.int8_drop_high, 4, True)} | "
            f"{_interval(row.drop_vs_reference, row.drop_vs_reference_low, row.drop_vs_reference_high, 4, True)} |"
        )
    failures = [row for row in rows if not row.ok]
    if failures:
        lines += ["", "Failures:", ""]
        lines += [f"- {row.target} / {row.model}: {row.status}: {row.error}" for row in failures]
    return "\n".join(lines) + "\n"


def plot(rows: list[DeployRow], path: Path, reference: str) -> Path | None:
    """Latency ratio vs the reference per target (left) and INT8 drops (right), with 95 % intervals.

    Returns:
        (Path | None): The PNG, or None when no row has a ratio to draw.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    compared = [row for row in rows if row.ok and row.model != reference and not math.isnan(row.ratio)]
    if not compared:
        return None
    quantized = [row for row in rows if row.ok and not math.isnan(row.int8_drop)]
    figure, axes = plt.subplots(1, 2 if quantized else 1, figsize=(12 if quantized else 7, 0.4 * len(compared) + 2))
    axes = list(axes) if quantized else [axes]
    labels = [f"{row.target} {row.model}" for row in compared]
    ratios = [row.ratio for row in compared]
    errors = [
        [max(row.ratio - row.ratio_low, 0) if not math.isnan(row.ratio_low) else 0 for row in compared],
        [max(row.ratio_high - row.ratio, 0) if not math.isnan(row.ratio_high) else 0 for row in compared],
    ]
    axes[0].errorbar(ratios, range(len(compared)), xerr=errors, fmt="o", capsize=3)
    axes[0].axvline(1.0, color="grey", lw=1)
    axes[0].set_yticks(range(len(compared)), labels)
    axes[0].invert_yaxis()
    axes[0].set_xlabel(f"latency / {reference}'s on the same runtime (median, 95 % CI)")
    if quantized:
        labels = [f"{row.target} {row.model}" for row in quantized]
        drops = [row.int8_drop for row in quantized]
        errors = [
            [
                max(row.int8_drop - row.int8_drop_low, 0) if not math.isnan(row.int8_drop_low) else 0
                for row in quantized
            ],
            [
                max(row.int8_drop_high - row.int8_drop, 0) if not math.isnan(row.int8_drop_high) else 0
                for row in quantized
            ],
        ]
        axes[1].errorbar(drops, range(len(quantized)), xerr=errors, fmt="s", capsize=3, color="C1")
        axes[1].axvline(0.0, color="grey", lw=1)
        axes[1].set_yticks(range(len(quantized)), labels)
        axes[1].invert_yaxis()
        axes[1].set_xlabel("INT8 mAP50-95 minus PyTorch (paired bootstrap, 95 % CI)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
