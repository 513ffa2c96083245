"""Size and cost of SCSA models next to their plain Ultralytics counterparts (the README's model table).

The rows are every model config the installed Ultralytics ships (``scsa_yolo.models.stock_configs``), grouped by
its folder (the family) with the task Ultralytics infers from its head: nothing here lists families or tasks.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

SCALES = "ns"
SCALE_LETTERS = "nslmx"
"""Ultralytics' scale letters (tasks.guess_model_scale)."""


@dataclass(frozen=True)
class Pair:
    """One row pair of the table.

    Attributes:
        family (str): Folder of the stock config under ``ultralytics/cfg/models`` (``v8``, ``26``, ``rt-detr``).
        task (str): The task Ultralytics infers from the head.
        plain (str): Stock model YAML name at its scale.
        scsa (str): The SCSA model YAML name (neck placement) at the same scale.
    """

    family: str
    task: str
    plain: str
    scsa: str


def check_scales(scales: str) -> str:
    """Return ``scales`` if every letter is a scale Ultralytics knows; else raise ValueError naming the letter."""
    unknown = [s for s in scales if s not in SCALE_LETTERS]
    if unknown or not scales:
        raise ValueError(
            f"scale {''.join(unknown)!r} is unknown; use letters of {SCALE_LETTERS!r}, e.g. --scales ns"
            if unknown
            else f"no scale given; use letters of {SCALE_LETTERS!r}, e.g. --scales ns"
        )
    return scales


def pairs(scales: str = SCALES) -> list[Pair]:
    """(plain, SCSA) model names for every installed config at each of ``scales`` it has.

    Configs of one fixed size (``yolov10n``, ``rtdetr-l``, ``yolov3``) appear once.
    """
    from scsa_yolo.models import stock_configs, stock_names, task_of

    found = []
    for stock, path in stock_configs().items():
        names = zip(stock_names(stock, scales), stock_names(stock, scales, "-scsa"))
        found += [Pair(path.parent.name, task_of(stock), plain, scsa) for plain, scsa in names]
    return found


@dataclass
class ModelSize:
    """Layers, parameters and GFLOPs of one model, counted the way ``model.info()`` counts them.

    Attributes:
        name (str): Model YAML name.
        layers (int): Modules in the model.
        params (int): Parameters.
        gflops (float): GFLOPs at the given image size, from Ultralytics' thop-based counter.
    """

    name: str
    layers: int
    params: int
    gflops: float


def measure(name: str, imgsz: int = 640) -> ModelSize:
    """Build ``name`` from its YAML on the CPU and count it.

    Args:
        name (str): Model YAML name, e.g. 'yolov8n-scsa.yaml'.
        imgsz (int): Image size for the GFLOPs count.

    Returns:
        (ModelSize): The counts.
    """
    from ultralytics.utils.torch_utils import get_flops, get_num_params

    from scsa_yolo.models import entry_class

    entry = entry_class(name)
    built = entry(name) if entry.__name__ == "RTDETR" else entry(name, verbose=False)  # RTDETR takes no verbose
    model = built.model  # the task's model class, from the head
    return ModelSize(name, len(list(model.modules())), get_num_params(model), get_flops(model, imgsz))


def _offline_failure(error: Exception) -> bool:
    from urllib.error import URLError

    return isinstance(error, (URLError, ConnectionError)) or "download" in str(error).lower()


def model_table(scales: str = SCALES, imgsz: int = 640) -> str:
    """Return a markdown table of every plain/SCSA pair (every installed config) at each scale, with the overhead.

    Args:
        scales (str): Scale letters to include.
        imgsz (int): Image size for GFLOPs.

    Returns:
        (str): The table. SCSA's cost is given in MFLOPs: the blocks add a few MFLOPs, which would print as
            +0.00 or +0.01 GFLOPs. A config whose stock build downloads weights (a TorchVision backbone) gets one
            row saying so.
    """
    import logging

    from ultralytics.utils import LOGGER, TQDM

    lines = [
        f"| family | task | model | layers | params | GFLOPs@{imgsz} | SCSA params | SCSA MFLOPs |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    # progress on stderr: the table goes to stdout, often into a file (`scsa-yolo models > table.md`); Ultralytics'
    # ClassificationModel logs its summary to stdout whatever `verbose` says, so info and warnings are held back
    rows = []
    for pair in TQDM(pairs(scales), desc="Counting models", file=sys.stderr):
        level = LOGGER.level
        LOGGER.setLevel(logging.ERROR)  # per model: the bar, made at INFO, keeps drawing
        try:
            rows.append(_rows(pair, imgsz))
        finally:
            LOGGER.setLevel(level)
    return "\n".join(lines + [line for pair_rows in rows for line in pair_rows])


def _rows(pair: Pair, imgsz: int) -> list[str]:
    """The table rows of one pair: plain, then SCSA with the overhead (or one row saying a download is needed)."""
    lead = f"| {pair.family} | {pair.task} |"
    try:
        plain = measure(pair.plain, imgsz)
    except Exception as error:
        if not _offline_failure(error):
            raise
        return [f"{lead} {pair.plain} | | | | needs a weights download to build (offline) | |"]
    scsa = measure(pair.scsa, imgsz)
    return [
        f"{lead} {plain.name} | {plain.layers} | {plain.params:,} | {plain.gflops:.1f} | | |",
        f"{lead} {scsa.name} | {scsa.layers} | {scsa.params:,} | {scsa.gflops:.1f} | "
        f"+{scsa.params - plain.params:,} (+{100 * (scsa.params / plain.params - 1):.2f}%) | "
        f"+{1e3 * (scsa.gflops - plain.gflops):.1f} |",
    ]
