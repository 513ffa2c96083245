"""Build (or reuse) the embedded deepforest tree-crown dataset and print its counts; the benchmark does this itself."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo dataset's flags to ``parser``."""
    from scsa_yolo.data.deepforest import DEFAULT_DATASET_DIR

    parser.add_argument("--out", default=str(DEFAULT_DATASET_DIR), help="dataset folder (default: %(default)s)")
    parser.add_argument("--tile-size", type=int, default=320)
    parser.add_argument("--val-fraction", type=float, default=0.25, help="bottom share of each image used for val")
    parser.add_argument("--min-visible", type=float, default=0.3, help="smallest kept share of a clipped box")


def run(args: argparse.Namespace) -> int:
    """Build the dataset and print its report."""
    from scsa_yolo.data.deepforest import build_deepforest_dataset

    report = build_deepforest_dataset(
        args.out, tile_size=args.tile_size, val_fraction=args.val_fraction, min_visible=args.min_visible
    )
    print(report.summary())
    return 0
