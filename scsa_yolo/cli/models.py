"""Print the model table: layers, parameters and GFLOPs of plain vs SCSA models of every installed family and task.

The families (folders under ``ultralytics/cfg/models``) and tasks come from the installed Ultralytics.
"""

from __future__ import annotations

import argparse

SCALES = "ns"  # default scales; kept here so that --help imports nothing heavy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the model table's flags to ``parser``."""
    parser.add_argument(
        "--scales", default=SCALES, help="scale letters of n, s, m, l, x to include (default: %(default)s)"
    )
    parser.add_argument("--imgsz", type=int, default=640, help="image size for GFLOPs, >= 32 (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    """Check the flags, then print the markdown table."""
    from scsa_yolo.errors import UsageError
    from scsa_yolo.summary import check_scales, model_table

    try:
        scales = check_scales(args.scales)
    except ValueError as error:
        raise UsageError(f"--scales: {error}") from None
    if args.imgsz < 32:
        raise UsageError(f"--imgsz must be at least 32 (one stride of the coarsest map), got {args.imgsz}")
    print(model_table(scales, args.imgsz))
    return 0
