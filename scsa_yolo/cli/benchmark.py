"""Train the plain and the SCSA model on the same data and compare them (see docs/benchmark.md).

With no arguments: yolov8n.yaml vs yolov8n-scsa.yaml on the embedded deepforest tree-crown tiles, one seed, sized
for about 8 to 12 minutes on a 2-core CPU; the table is printed at the end and written to runs/benchmark/.
"""

from __future__ import annotations

import argparse
import sys


def seed_list(text: str) -> list[int]:
    """Parse '0,1,2' into seeds, with an argparse error naming the bad item."""
    try:
        return [int(seed) for seed in text.split(",") if seed.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's flags to ``parser``."""
    from scsa_yolo.benchmark import PRESETS, TrainSettings
    from scsa_yolo.benchmark.runner import DEFAULT_OUT, DEFAULT_PRESET

    defaults = TrainSettings()
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--models", help="comma-separated model YAMLs/checkpoints, reference first")
    group.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help=f"named model list (default {DEFAULT_PRESET}: {', '.join(PRESETS[DEFAULT_PRESET])})",
    )
    parser.add_argument("--data", help="dataset YAML (default: the embedded deepforest tree-crown dataset)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--imgsz", type=int, default=defaults.imgsz)
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--device", default=defaults.device, help="training device, e.g. cpu or 0 (default: auto)")
    parser.add_argument("--seeds", type=seed_list, default=[0], help="comma-separated training seeds (default 0)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default runs/benchmark)")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; the table is printed and written under ``args.out``.

    Returns:
        (int): 0 on success, 2 when the demo data's source wheel is missing (the fix is printed to stderr).
    """
    from scsa_yolo.benchmark import TrainSettings, resolve_models, run_benchmark
    from scsa_yolo.data.deepforest import MissingWheelError

    settings = TrainSettings(
        data=args.data, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, workers=args.workers, device=args.device
    )
    try:
        run_benchmark(resolve_models(args.models, args.preset), settings, args.seeds, args.out)
    except MissingWheelError as error:
        print(f"scsa-yolo benchmark: error: {error}", file=sys.stderr)
        return 2
    return 0
