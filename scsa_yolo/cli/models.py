"""Print the model table: layers, parameters and GFLOPs of plain vs SCSA models of every family and task."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the model table's flags to ``parser``."""
    from scsa_yolo.summary import SCALES

    parser.add_argument("--scales", default=SCALES, help="scale letters to include (default: %(default)s)")
    parser.add_argument("--imgsz", type=int, default=640, help="image size for GFLOPs (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Print the markdown table."""
    from scsa_yolo.summary import model_table

    print(model_table(args.scales, args.imgsz))
    return 0
