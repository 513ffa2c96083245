"""Size and cost of SCSA models next to their plain Ultralytics counterparts (the README's model table)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

SCALES = "ns"


def pairs(scales: str = SCALES) -> list[tuple[str, str]]:
    """(plain, SCSA) model names for every family, task and P2 variant (``scsa_yolo.models``) at each scale."""
    from scsa_yolo.models import scaled_name, stock_configs

    stocks = [stock for stock in stock_configs() if "ghost" not in stock and "p6" not in stock]
    return [(scaled_name(stock, s), scaled_name(f"{stock}-scsa", s)) for stock in stocks for s in scales]


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
    from ultralytics import YOLO
    from ultralytics.utils.torch_utils import get_flops, get_num_params

    model = YOLO(name, verbose=False).model  # the task's model class, from the head
    return ModelSize(name, len(list(model.modules())), get_num_params(model), get_flops(model, imgsz))


def model_table(scales: str = SCALES, imgsz: int = 640) -> str:
    """Return a markdown table of every plain/SCSA pair (families x tasks x P2) at each scale, with the overhead.

    Args:
        scales (str): Scale letters to include.
        imgsz (int): Image size for GFLOPs.

    Returns:
        (str): The table. SCSA's cost is given in MFLOPs: the blocks add a few MFLOPs, which would print as
            +0.00 or +0.01 GFLOPs.
    """
    from ultralytics.utils import TQDM

    lines = [
        f"| model | layers | params | GFLOPs@{imgsz} | SCSA params | SCSA MFLOPs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    # progress on stderr: the table goes to stdout, often into a file (`scsa-yolo models > table.md`)
    for plain_name, scsa_name in TQDM(pairs(scales), desc="Counting models", file=sys.stderr):
        plain, scsa = measure(plain_name, imgsz), measure(scsa_name, imgsz)
        lines.append(f"| {plain.name} | {plain.layers} | {plain.params:,} | {plain.gflops:.1f} | | |")
        lines.append(
            f"| {scsa.name} | {scsa.layers} | {scsa.params:,} | {scsa.gflops:.1f} | "
            f"+{scsa.params - plain.params:,} (+{100 * (scsa.params / plain.params - 1):.2f}%) | "
            f"+{1e3 * (scsa.gflops - plain.gflops):.1f} |"
        )
    return "\n".join(lines)
