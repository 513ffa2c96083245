"""Writing parsed samples in the Ultralytics layout: images, labels, ``data.yaml``, the report and the file list.

Everything that must behave the same for every dataset lives in :func:`write_dataset`: checking the image, EXIF
orientation, class mapping, clipping, dropping, duplicate stems, the layout, ``data.yaml`` and the report. It writes
into a staging folder (see :mod:`scsa_yolo.data.dest`); names below it are the names below --dest after the swap.

A label id outside ``names`` makes Ultralytics discard the whole image, so every box is mapped to an official class or
dropped with a counted reason; no id outside the class list is ever written.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps
from ultralytics.utils import TQDM

from ..errors import ConversionError
from ..images import IMAGE_ERRORS, clip_box, probe_image, stored_to_displayed
from ..layout import save_data_yaml, to_yolo_line, write_label_file
from ..manifest import MANIFEST_NAME, relative_name, write_manifest
from .duplicates import find_cross_split_duplicates
from .options import ConvertOptions
from .records import SPLITS, DatasetSpec, Sample
from .report import REPORT_NAME, ConversionReport

EMPTY_STEM = "unnamed"  # output stem of an image called ".jpg" (Ultralytics' file search skips hidden names)


def leave_out_unlabelled(samples: list[Sample], report: ConversionReport, keep_backgrounds: bool) -> list[Sample]:
    """Decide what happens to images that have no annotation file; count and report every one left out.

    A folder in which no image has an annotation is an unlabelled set (e.g. URPC's ``test-B-image/``): its images are
    left out with a note naming the folder, always. A single image without annotation in a labelled folder is left
    out too, unless ``keep_backgrounds`` says such images are backgrounds. Images listed in an annotation file without
    boxes (COCO) have an annotation and are kept.

    Returns:
        The samples to write.
    """
    labelled_folders = {s.image.parent for s in samples if s.image is not None and s.annotation is not None}
    kept, unlabelled_folders = [], defaultdict(list)
    for sample in samples:
        if sample.image is None or sample.annotation is not None:
            kept.append(sample)
        elif sample.image.parent not in labelled_folders:
            unlabelled_folders[sample.image.parent].append(sample)
        elif keep_backgrounds:
            kept.append(sample)
        else:
            report.skip_image(sample.split, "image_without_annotation", str(sample.image))
    for folder, group in sorted(unlabelled_folders.items()):
        report.note(f"{folder}: {len(group)} images, none with an annotation (an unlabelled test set?); left out")
        for sample in group:
            report.skip_image(sample.split, "unlabelled_folder", str(sample.image))
    return kept


def split_name(image: Path) -> tuple[str, str]:
    """Return (stem, suffix) the way Ultralytics splits an image name (``.jpg`` -> ``""``, ``".jpg"``)."""
    stem, dot, suffix = image.name.rpartition(".")
    return (stem, f".{suffix}") if dot else (image.name, "")


def unique_stems(samples: list[Sample], report: ConversionReport) -> dict[int, str]:
    """Give each image an output stem that no other image of its split uses (labels/ is keyed by stem only).

    The first image in sorted source-path order keeps its stem; later ones get ``__2``, ``__3``... (case-insensitive,
    since two stems differing in case collide on Windows and macOS file systems). A stem that is empty or starts with
    a dot (``.jpg``, ``.a.jpg``) is renamed: Ultralytics' file search skips hidden names, so the image would vanish.

    Returns:
        Output stem per sample position in ``samples``.
    """
    taken: dict[str, set[str]] = defaultdict(set)
    stems = {}
    for position, sample in enumerate(samples):
        if sample.image is None:
            continue
        stem, suffix = split_name(sample.image)
        visible = stem.lstrip(".") or EMPTY_STEM
        if visible != stem:
            report.issue("renamed_hidden_name", f"{sample.image} -> {visible}{suffix}")
        used, candidate, n = taken[sample.split], visible, 1
        while candidate.lower() in used:
            n += 1
            candidate = f"{visible}__{n}"
        if n > 1:
            report.count(sample.split, "renamed_duplicate_stems")
            report.issue("renamed_duplicate_stem", f"{sample.image} -> {candidate}{suffix}")
        used.add(candidate.lower())
        stems[position] = candidate
    return stems


def place_image(source: Path, target: Path, hardlink: bool) -> None:
    """Copy (or hard-link) an image file unchanged, so EXIF orientation and pixels stay as the owners shipped them."""
    if hardlink:
        try:
            os.link(source, target)
            return
        except OSError:  # cross-device or unsupported: a copy is always correct
            pass
    shutil.copyfile(source, target)


def paint_regions(source: Path, target: Path, regions: list[tuple[float, float, float, float]]) -> None:
    """Save the displayed (EXIF-applied) image with ``regions`` filled with its mean colour."""
    with Image.open(source) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    mean_colour = tuple(int(round(c)) for c in np.asarray(image).reshape(-1, 3).mean(0))
    draw = ImageDraw.Draw(image)
    for x1, y1, x2, y2 in regions:
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=mean_colour)
    image.save(target, quality=95) if target.suffix.lower() in {".jpg", ".jpeg"} else image.save(target)


def _is_number(value: object) -> bool:
    """Return True for a finite int or float (booleans are not numbers here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def convert_sample(
    sample: Sample, stem: str, spec: DatasetSpec, root: Path, options: ConvertOptions, report: ConversionReport
) -> None:
    """Check, map, clip and write one sample into ``root``, counting every box and image into ``report``."""
    split, where = sample.split, str(sample.image)
    try:
        probed = probe_image(sample.image)
    except IMAGE_ERRORS as e:
        reason = "unreadable_image" if isinstance(e, OSError) else "unusable_image"
        report.skip_image(split, reason, f"{where}: {e}")
        if sample.boxes:
            report.drop_box(split, "image_skipped", where, len(sample.boxes))
        return

    rotated = probed.orientation != 1
    boxes_are_stored = rotated and options.exif_boxes == "stored"
    if rotated and sample.declared_size and probed.displayed_size != probed.stored_size:
        # The annotation states the size the annotator saw, which tells the frame unambiguously for 90-degree turns
        boxes_are_stored = tuple(sample.declared_size) == probed.stored_size
    if rotated:
        report.count(split, "exif_rotated_images")

    def displayed(xyxy):
        return stored_to_displayed(xyxy, probed.orientation, probed.stored_size) if boxes_are_stored else xyxy

    lines = []
    for box in sample.boxes:
        if not all(_is_number(v) for v in box.xyxy):
            report.drop_box(split, "non_finite", f"{box.origin}: {box.xyxy}")  # NaN passes every clip and comparison
            continue
        class_id = spec.class_index(box.label)
        if class_id is None:
            reason = "excluded_class" if spec.is_excluded(box.label) else "unknown_class"
            report.drop_box(split, reason, f"{box.origin}: '{box.label}'")
            continue
        if box.xyxy[2] < box.xyxy[0] or box.xyxy[3] < box.xyxy[1]:  # the far corner before the near one
            report.drop_box(split, "inverted_box", f"{box.origin}: {box.xyxy}")
            continue
        xyxy, clipped = clip_box(displayed(box.xyxy), probed.displayed_size)
        if xyxy[2] <= xyxy[0] or xyxy[3] <= xyxy[1]:
            report.drop_box(split, "outside_image" if clipped else "degenerate", f"{box.origin}: {box.xyxy}")
            continue
        if min(xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]) < options.min_box_pixels:
            report.drop_box(split, "degenerate", f"{box.origin}: {box.xyxy}")
            continue
        if clipped:
            report.count(split, "boxes_clipped")
            report.issue("clipped", f"{box.origin}: {box.xyxy}")
        report.count(split, "boxes_in")
        report.count(split, "boxes_out")
        report.class_counts[split][spec.names[class_id]] += 1
        lines.append(to_yolo_line(class_id, xyxy, probed.displayed_size))

    image_target = root / "images" / split / f"{stem}{split_name(sample.image)[1]}"
    regions = [r for r in sample.paint_regions if all(_is_number(v) for v in r.xyxy)]
    if regions:
        paint_regions(
            sample.image, image_target, [clip_box(displayed(r.xyxy), probed.displayed_size)[0] for r in regions]
        )
        report.count(split, "painted_images")
    else:
        place_image(sample.image, image_target, options.hardlink)
    write_label_file(root / "labels" / split / f"{stem}.txt", lines)
    report.count(split, "images_in")
    report.count(split, "images_out")
    if not lines:
        report.count(split, "background_images")


def _count_unpaired(samples: list[Sample], report: ConversionReport) -> None:
    """Count annotations without an image and images kept without an annotation."""
    for sample in samples:
        if sample.image is None:
            report.count(sample.split, "annotations_without_image")
            if sample.boxes:
                report.drop_box(sample.split, "annotation_without_image", str(sample.annotation), len(sample.boxes))
            else:
                report.issue("annotation_without_image", str(sample.annotation))
        elif sample.annotation is None:
            report.count(sample.split, "images_without_annotation")
            report.issue("image_without_annotation_kept_as_background", str(sample.image))


def write_dataset(
    samples: list[Sample],
    spec: DatasetSpec,
    root: Path,
    options: ConvertOptions,
    report: ConversionReport,
    split_lists: dict[str, list[str]] | None = None,
) -> dict:
    """Write samples into ``root`` (the staging folder) with ``data.yaml``, the report and the file list.

    Args:
        samples: Parsed samples of all splits.
        spec: Dataset definition (class order, notes).
        root: Empty folder to write into.
        options: Shared behaviour switches.
        report: Report that already holds what the parser counted.
        split_lists: Optional ``{split: [source image paths]}`` for splits the tool decided itself; written to
            ``splits/<split>.txt`` so the split can be reproduced and audited.

    Returns:
        The report as a dictionary (also saved as ``prepare_report.json``); the table is printed.

    Raises:
        ConversionError: If no image or no box could be written, or no train image (nothing is swapped in then).
    """
    samples = leave_out_unlabelled(samples, report, options.unlabelled_backgrounds)
    samples = find_cross_split_duplicates(samples, report, options.drop_eval_duplicates, options.pixel_duplicates)
    samples = sorted(samples, key=lambda s: (s.split, str(s.image or s.annotation)))
    _count_unpaired(samples, report)
    used_splits = sorted({s.split for s in samples if s.image}, key=SPLITS.index)
    for split in used_splits:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    stems = unique_stems(samples, report)
    for position, sample in enumerate(TQDM(samples, desc=f"Converting {spec.title}", unit="img")):
        if sample.image is not None:
            convert_sample(sample, stems[position], spec, root, options, report)

    total_images = sum(report.counts[s]["images_out"] for s in used_splits)
    total_boxes = sum(report.counts[s]["boxes_out"] for s in used_splits)
    written_splits = [s for s in used_splits if report.counts[s]["images_out"]]  # data.yaml names no empty folder
    if written_splits and not {"val", "test"} & set(written_splits):
        report.note("no val or test image written: data.yaml's val is images/train, so val scores are training scores")
    for split, files in (split_lists or {}).items():
        (root / "splits").mkdir(exist_ok=True)
        (root / "splits" / f"{split}.txt").write_text("".join(f"{f}\n" for f in files), encoding="utf-8")
    result = report.to_dict()
    print(report.table())
    if not total_images or not total_boxes:
        raise ConversionError(
            f"nothing usable found for {spec.title}: {total_images} images and {total_boxes} boxes written (the "
            f"table above says what was skipped and why); is --source the extracted {spec.title} download? "
            "--dest was left as it was"
        )
    if "train" not in written_splits:
        raise ConversionError(
            f"no train image written for {spec.title} (splits written: {', '.join(written_splits)}; the table above "
            "says why); Ultralytics needs a train split. --dest was left as it was"
        )
    (root / REPORT_NAME).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    write_data_yaml(spec, root, written_splits, bool(split_lists))
    written = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)
    write_manifest(root, [relative_name(root, p) for p in written])
    return result


def write_data_yaml(spec: DatasetSpec, root: Path, splits: list[str], has_split_lists: bool) -> Path:
    """Write ``root/data.yaml`` for Ultralytics, without ``path`` so it resolves relative to its own folder.

    Args:
        spec: Dataset definition.
        root: Output folder.
        splits: Splits that received images; ``val`` falls back to ``test``, then ``train``.
        has_split_lists: Whether ``splits/*.txt`` records a split this tool made.
    """
    folders = {split: f"images/{split}" for split in splits}
    folders.setdefault("val", folders.get("test", folders.get("train")))
    folders = {k: folders[k] for k in SPLITS if k in folders}
    header = (
        f"# {spec.title} converted by scsa-yolo prepare {spec.key}\n"
        f"# Source: {spec.source_url}\n"
        f"# Licence: {spec.licence}\n"
        f"# Split: {spec.split_note}\n"
        + ("# Split lists: splits/<split>.txt (source image paths)\n" if has_split_lists else "")
        + f"# Report: {REPORT_NAME}. No 'path' key: Ultralytics resolves the folders relative to this file.\n\n"
    )
    return save_data_yaml(root / "data.yaml", folders, spec.names, header)
