"""Profile a YOLO-format dataset: per-class counts, COCO object sizes, brightness, labels drawn on a few images.

Example:
    scsa-yolo profile datasets/ExDark/data.yaml --out runs/profile/ExDark
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the profiler's flags to ``parser``."""
    parser.add_argument("data", help="dataset YAML, e.g. the data.yaml written by `scsa-yolo prepare`")
    parser.add_argument("--out", help="output folder (default: <dataset root>/profile)")
    parser.add_argument(
        "--preview",
        type=int,
        default=8,
        help="images per split drawn with their labels in preview_<split>.jpg (0: none)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the profile and print the summary per split."""
    from scsa_yolo.data.profile import profile_dataset

    for split, summary in profile_dataset(args.data, args.out, args.preview).items():
        print(split, {k: v for k, v in summary.items() if k != "class_counts"})
    return 0
