"""Profile a YOLO-format dataset: per-class counts, COCO object sizes, brightness; saves PNG, CSV and Markdown.

Example:
    python scripts/profile_dataset.py datasets/ExDark/data.yaml --out runs/profile/ExDark
"""

from __future__ import annotations

import argparse
import os
import sys

# Before Ultralytics is imported: no connectivity checks, no downloads, no telemetry.
os.environ.setdefault("YOLO_OFFLINE", "1")

from scsa_yolo.data.profile import profile_dataset  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the profile and print the summary per split.

    Args:
        argv: Arguments without the program name; None reads ``sys.argv``.

    Returns:
        0 on success.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="dataset YAML, e.g. the data.yaml written by prepare_dataset.py")
    parser.add_argument("--out", help="output folder (default: <dataset root>/profile)")
    parser.add_argument(
        "--preview",
        type=int,
        default=8,
        help="images per split drawn with their labels in preview_<split>.jpg (0: none)",
    )
    args = parser.parse_args(argv)
    for split, summary in profile_dataset(args.data, args.out, args.preview).items():
        print(split, {k: v for k, v in summary.items() if k != "class_counts"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
