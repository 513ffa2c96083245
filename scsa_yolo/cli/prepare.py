"""Convert a downloaded complex-scene dataset into the Ultralytics YOLO layout with a ready data.yaml.

Examples:
    scsa-yolo prepare exdark --source ExDark.zip --source ExDark_Annno.zip --dest datasets/ExDark
    scsa-yolo prepare visdrone --source ~/Downloads/VisDrone --dest datasets/VisDrone --fill-ignored
    scsa-yolo prepare urpc2020 --source URPC2020/train --dest datasets/URPC2020 --val-fraction 0.2
    scsa-yolo prepare utdac2020 --source UTDAC2020.zip --dest datasets/UTDAC2020 --drop-eval-duplicates

Bad input (a missing or empty --source, a --dest that cannot be written, an option of another dataset, nothing usable
found) is one line and exit status 2; --dest is then left as it was.
"""

from __future__ import annotations

import argparse
import dataclasses

# Light: the options module declares every flag and imports neither torch nor Ultralytics.
from scsa_yolo.data.converters.options import DATASET_OPTIONS, ConvertOptions, flag_of


def _add_option(parser: argparse.ArgumentParser, item: dataclasses.Field) -> None:
    """Add one declared option as a flag (booleans as switches; others typed by their default)."""
    help_text, choices = item.metadata.get("help"), item.metadata.get("choices")
    if help_text is None:
        return  # a Python-API-only option
    if isinstance(item.default, bool):
        parser.add_argument(flag_of(item), dest=item.name, action="store_true", default=None, help=help_text)
        return
    kind = type(item.default) if item.default is not None else str
    if item.default is not None:
        help_text = f"{help_text} (default {item.default})"
    parser.add_argument(flag_of(item), dest=item.name, type=kind, choices=choices, default=None, help=help_text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the converter's flags to ``parser`` (derived from :mod:`scsa_yolo.data.converters.options`)."""
    parser.add_argument("dataset", choices=sorted(DATASET_OPTIONS), help="which native format to read")
    parser.add_argument(
        "--source", action="append", required=True, help="extracted download folder or archive (repeatable)"
    )
    parser.add_argument("--dest", required=True, help="output folder (new, empty, or from an earlier run)")
    seen = set()
    for options_class in (ConvertOptions, *DATASET_OPTIONS.values()):
        for item in dataclasses.fields(options_class):
            if item.name not in seen:
                seen.add(item.name)
                _add_option(parser, item)


def run(args: argparse.Namespace) -> int:
    """Run the conversion.

    Returns:
        (int): 0 on success. Bad input raises :class:`scsa_yolo.errors.UsageError` (one line, exit 2).
    """
    from scsa_yolo.data.converters import convert_dataset
    from scsa_yolo.data.errors import OptionError

    own = {item.name for item in dataclasses.fields(DATASET_OPTIONS[args.dataset])}
    misplaced = [
        f"{flag_of(item)} is for {dataset} only"
        for dataset, options_class in sorted(DATASET_OPTIONS.items(), key=lambda kv: kv[0])
        for item in dataclasses.fields(options_class)
        if item.name not in own and getattr(args, item.name, None) is not None
    ]
    if misplaced:
        raise OptionError(f"{'; '.join(sorted(misplaced))}, not {args.dataset}")
    shared = {
        item.name: getattr(args, item.name)
        for item in dataclasses.fields(ConvertOptions)
        if getattr(args, item.name, None) is not None
    }
    dataset_options = {name: getattr(args, name) for name in own if getattr(args, name) is not None}
    convert_dataset(args.dataset, args.source, args.dest, ConvertOptions(**shared), **dataset_options)
    print(f"Done: train with data={args.dest}/data.yaml")
    print(f"See the labels on sample images: scsa-yolo profile {args.dest}/data.yaml")
    return 0
