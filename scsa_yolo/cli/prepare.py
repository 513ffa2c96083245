"""Convert a downloaded complex-scene dataset into the Ultralytics YOLO layout with a ready data.yaml.

Examples:
    scsa-yolo prepare exdark --source ExDark.zip --source ExDark_Annno.zip --dest datasets/ExDark
    scsa-yolo prepare visdrone --source ~/Downloads/VisDrone --dest datasets/VisDrone --fill-ignored
    scsa-yolo prepare urpc2020 --source URPC2020/train --dest datasets/URPC2020 --val-fraction 0.2
    scsa-yolo prepare utdac2020 --source UTDAC2020.zip --dest datasets/UTDAC2020 --drop-eval-duplicates
"""

from __future__ import annotations

import argparse
import inspect
import sys

# Flags that mean something for one dataset only; given with another dataset they would be ignored, so they are refused
DATASET_FLAGS = {
    "split_file": "exdark",
    "val_fraction": "urpc2020",
    "seed": "urpc2020",
    "fill_ignored": "visdrone",
    "waterweeds": "utdac2020",
    "ruod_environment": "ruod",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the converter's flags to ``parser``."""
    from scsa_yolo.data.converters import CONVERTERS

    parser.add_argument("dataset", choices=sorted(CONVERTERS), help="which native format to read")
    parser.add_argument(
        "--source", action="append", required=True, help="extracted download folder or archive (repeatable)"
    )
    parser.add_argument("--dest", required=True, help="output folder (new, empty, or from an earlier run)")
    parser.add_argument("--split-file", help="ExDark: imageclasslist.txt, if it is not under --source")
    urpc = {name: p.default for name, p in inspect.signature(CONVERTERS["urpc2020"].parse).parameters.items()}
    parser.add_argument(
        "--val-fraction", type=float, help=f"URPC2020: share of images for val (default {urpc['val_fraction']})"
    )
    parser.add_argument("--seed", type=int, help=f"URPC2020: seed of the train/val split (default {urpc['seed']})")
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
    parser.add_argument(
        "--pixel-duplicates",
        action="store_true",
        help="find copies across splits by decoded pixels, not bytes (also metadata-stripped copies; slower)",
    )
    parser.add_argument("--hardlink", action="store_true", help="hard-link images instead of copying them")


def run(args: argparse.Namespace) -> int:
    """Run the conversion.

    Returns:
        (int): 0 on success, 2 when the input could not be converted (the reason is printed to stderr).
    """
    from scsa_yolo.data.converters import ConversionError, ConvertOptions, convert_dataset

    misplaced = [
        f"--{flag.replace('_', '-')} is for {dataset} only"
        for flag, dataset in DATASET_FLAGS.items()
        if getattr(args, flag) not in (None, False) and args.dataset != dataset
    ]
    if misplaced:
        print(f"scsa-yolo prepare: error: {'; '.join(misplaced)}, not {args.dataset}", file=sys.stderr)
        return 2
    options = ConvertOptions(
        exif_boxes=args.exif_boxes,
        fill_ignored=args.fill_ignored,
        hardlink=args.hardlink,
        unlabelled_backgrounds=args.unlabelled_backgrounds,
        drop_eval_duplicates=args.drop_eval_duplicates,
        pixel_duplicates=args.pixel_duplicates,
    )
    format_options = {
        "split_file": args.split_file,
        "val_fraction": args.val_fraction,
        "seed": args.seed,
        "waterweeds": args.waterweeds,
        "environment": args.ruod_environment,
    }
    format_options = {name: value for name, value in format_options.items() if value is not None}  # parser defaults
    try:
        convert_dataset(args.dataset, args.source, args.dest, options, **format_options)
    except (ConversionError, ValueError) as e:
        print(f"scsa-yolo prepare: error: {e}", file=sys.stderr)
        return 2
    print(f"Done: train with data={args.dest}/data.yaml")
    print(f"See the labels on sample images: scsa-yolo profile {args.dest}/data.yaml")
    return 0
