"""Convert a downloaded complex-scene dataset into the Ultralytics YOLO layout with a ready data.yaml.

Examples:
    python scripts/prepare_dataset.py exdark --source ExDark.zip --source ExDark_Annno.zip --dest datasets/ExDark
    python scripts/prepare_dataset.py visdrone --source ~/Downloads/VisDrone --dest datasets/VisDrone --fill-ignored
    python scripts/prepare_dataset.py urpc2020 --source URPC2020/train --dest datasets/URPC2020 --val-fraction 0.2
    python scripts/prepare_dataset.py utdac2020 --source UTDAC2020.zip --dest datasets/UTDAC2020 --drop-eval-duplicates
"""

from __future__ import annotations

import argparse
import os
import sys

# Before Ultralytics is imported: no connectivity checks, no downloads, no telemetry.
os.environ.setdefault("YOLO_OFFLINE", "1")

from scsa_yolo.data.converters import CONVERTERS, ConversionError, ConvertOptions, convert_dataset  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments without the program name; None reads ``sys.argv``.

    Returns:
        Parsed arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(CONVERTERS), help="which native format to read")
    parser.add_argument(
        "--source", action="append", required=True, help="extracted download folder or archive (repeatable)"
    )
    parser.add_argument("--dest", required=True, help="output folder (new, empty, or from an earlier run)")
    parser.add_argument("--split-file", help="ExDark: imageclasslist.txt, if it is not under --source")
    parser.add_argument("--val-fraction", type=float, default=0.2, help="URPC2020: share of images for val")
    parser.add_argument("--seed", type=int, default=0, help="URPC2020: seed of the train/val split")
    parser.add_argument(
        "--exif-boxes",
        choices=("stored", "displayed"),
        default="stored",
        help="frame of boxes in EXIF-rotated images whose annotation states no image size (default: stored pixels)",
    )
    parser.add_argument("--fill-ignored", action="store_true", help="VisDrone: paint ignored regions with mean colour")
    parser.add_argument("--waterweeds", action="store_true", help="UTDAC2020: use the five-class *_waterweeds.json")
    parser.add_argument(
        "--ruod-environment",
        choices=("light", "color", "blur"),
        help="RUOD: also convert this environment subset (Environmet_ANN/instances_<name>.json), as the test split",
    )
    parser.add_argument(
        "--unlabelled-backgrounds",
        action="store_true",
        help="keep images without an annotation file as backgrounds (default: left out and reported)",
    )
    parser.add_argument(
        "--drop-eval-duplicates",
        action="store_true",
        help="leave val/test images out that are byte-identical to an image of an earlier split (always reported)",
    )
    parser.add_argument("--hardlink", action="store_true", help="hard-link images instead of copying them")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the conversion.

    Args:
        argv: Arguments without the program name; None reads ``sys.argv``.

    Returns:
        0 on success, 2 when the input could not be converted (the reason is printed to stderr).
    """
    args = parse_args(argv)
    options = ConvertOptions(
        exif_boxes=args.exif_boxes,
        fill_ignored=args.fill_ignored,
        hardlink=args.hardlink,
        unlabelled_backgrounds=args.unlabelled_backgrounds,
        drop_eval_duplicates=args.drop_eval_duplicates,
    )
    format_options = {
        "split_file": args.split_file,
        "val_fraction": args.val_fraction,
        "seed": args.seed,
        "waterweeds": args.waterweeds,
        "environment": args.ruod_environment,
    }
    try:
        convert_dataset(args.dataset, args.source, args.dest, options, **format_options)
    except (ConversionError, ValueError) as e:
        print(f"prepare_dataset: error: {e}", file=sys.stderr)
        return 2
    print(f"Done: train with data={args.dest}/data.yaml")
    print(f"See the labels on sample images: python scripts/profile_dataset.py {args.dest}/data.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
