"""ExDark: per-image Piotr-toolbox bbGt text files and the official ``imageclasslist.txt`` split.

Native layout (github.com/cs-chan/Exclusively-Dark-Image-Dataset)::

    ExDark/<Class>/<image>.<ext>                      images, one folder per main class, extensions vary in case
    ExDark_Annno/<Class>/<image>.<ext>.txt            "% bbGt version=3", then "Class left top width height" + 7 ints
    imageclasslist.txt                                "Name Class Light In/Out Train/Val/Test" (1/2/3 = train/val/test)
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ultralytics.data.utils import IMG_FORMATS

from ..errors import ConversionError
from .options import ConvertOptions, ExDarkOptions
from .records import UNASSIGNED, DatasetSpec, Parsed, RawBox, Sample
from .report import ConversionReport
from .sources import SourceTree, index_by_name, iter_text_lines

EXDARK = DatasetSpec(
    key="exdark",
    title="ExDark",
    names=("Bicycle", "Boat", "Bottle", "Bus", "Car", "Cat", "Chair", "Cup", "Dog", "Motorbike", "People", "Table"),
    source_url="https://github.com/cs-chan/Exclusively-Dark-Image-Dataset (ExDark.zip + ExDark_Annno.zip)",
    licence="BSD-3-Clause repository; images for non-commercial research only (dataset README)",
    split_note="official imageclasslist.txt column 5: 1=train, 2=val, 3=test (3000/1800/2563 images)",
    aliases={"person": "People", "motorcycle": "Motorbike", "bike": "Bicycle", "diningtable": "Table"},
)

SPLIT_FILE_NAME = "imageclasslist.txt"
SPLIT_CODES = {"1": "train", "2": "val", "3": "test"}


def read_split_file(path: Path, report: ConversionReport) -> dict[str, str]:
    """Read ``imageclasslist.txt`` into ``{lower-case image name: split}``.

    Args:
        path: The split file.
        report: Receives malformed rows (file:line).

    Returns:
        Split of every listed image.

    Raises:
        ConversionError: If no row could be read.
    """
    splits = {}
    for number, line in iter_text_lines(path):
        fields = line.split()
        if not fields or fields[0].lower() == "name" or line.startswith(("%", "#")):
            continue  # blank, header or comment
        if len(fields) < 5 or fields[4] not in SPLIT_CODES:
            report.issue("malformed_split_row", f"{path}:{number}: {line!r}")
            continue
        splits[fields[0].lower()] = SPLIT_CODES[fields[4]]
    if not splits:
        raise ConversionError(f"{path} has no rows 'name class light in/out split'; is it ExDark's {SPLIT_FILE_NAME}?")
    return splits


def parse_bbgt(path: Path, report: ConversionReport, split: str) -> list[RawBox]:
    """Parse one bbGt annotation file; malformed lines are counted as dropped boxes with file:line.

    Args:
        path: ``<image name>.txt`` file.
        report: Receives malformed lines.
        split: Split the file belongs to, for the report.

    Returns:
        Boxes as (left, top, left + width, top + height).
    """
    boxes = []
    for number, line in iter_text_lines(path):
        if not line or line.startswith("%"):  # "% bbGt version=3" header and comments
            continue
        fields = line.split()
        try:
            left, top, width, height = (float(v) for v in fields[1:5])
        except ValueError:
            left = None
        if len(fields) < 5 or left is None:
            report.drop_box(split, "malformed_line", f"{path}:{number}: {line!r}")
            continue
        boxes.append(RawBox(fields[0], (left, top, left + width, top + height), f"{path}:{number}"))
    return boxes


def _image_for_annotation(
    annotation: Path, by_name: dict[str, list[Path]], by_stem: dict[str, list[Path]]
) -> Path | None:
    """Find the image of ``<Class>/<name>.<ext>.txt`` in a folder named like the annotation's class folder.

    The same name ignoring case wins, else the same stem; an image of another class folder with that stem is another
    picture and is never paired.
    """
    name = annotation.name[: -len(".txt")].lower()
    folder = annotation.parent.name.lower()
    for candidates in (by_name.get(name, []), by_stem.get(name.rsplit(".", 1)[0], [])):
        same_class = [p for p in candidates if p.parent.name.lower() == folder]
        if same_class:
            return same_class[0]
    return None


def parse_exdark(tree: SourceTree, report: ConversionReport, options: ExDarkOptions, shared: ConvertOptions) -> Parsed:
    """Collect ExDark samples with the official split.

    Args:
        tree: Files below --source (images, annotations and the split file may lie in different sources).
        report: Receives parse problems.
        options: ``split_file``: explicit ``imageclasslist.txt``; otherwise searched for below the sources.
        shared: Not used by this format.

    Returns:
        Samples and no split lists (the split is official).

    Raises:
        ConversionError: If the split file is missing.
    """
    split_file = options.split_file
    texts = tree.with_suffixes({"txt"})
    if split_file is None:
        found = [p for p in texts if p.name.lower() == SPLIT_FILE_NAME]
        if not found:
            raise ConversionError(
                f"{SPLIT_FILE_NAME} (ExDark's official split) not found under --source; pass it with --split-file"
            )
        split_file = found[0]
    split_of = read_split_file(Path(split_file), report)
    stem_split = {name.rsplit(".", 1)[0]: split for name, split in split_of.items()}

    images = tree.images()
    by_name = index_by_name(images)
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for image in images:
        by_stem[image.name.rpartition(".")[0].lower()].append(image)
    annotations = [p for p in texts if p.name[: -len(".txt")].rsplit(".", 1)[-1].lower() in IMG_FORMATS]

    def split_for(image: Path) -> str | None:
        # The list and the files disagree in extension case (and sometimes extension) in the official release
        return split_of.get(image.name.lower()) or stem_split.get(image.name.rpartition(".")[0].lower())

    annotation_of: dict[Path, Path] = {}
    duplicates: list[tuple[Path, Path]] = []
    samples = []
    for annotation in annotations:
        image = _image_for_annotation(annotation, by_name, by_stem)
        if image is None:
            split = stem_split.get(annotation.name[: -len(".txt")].rsplit(".", 1)[0].lower(), UNASSIGNED)
            samples.append(Sample(split, None, annotation, parse_bbgt(annotation, report, split)))
        elif image in annotation_of:  # e.g. "a.jpg.txt" and "a.JPG.txt": keep the first in sorted order
            duplicates.append((annotation, image))
        else:
            annotation_of[image] = annotation

    for image in images:
        split = split_for(image)
        annotation = annotation_of.get(image)
        boxes = parse_bbgt(annotation, report, split or UNASSIGNED) if annotation else []
        if split is None:
            report.skip_image(UNASSIGNED, "not_in_split_file", str(image))
            if boxes:
                report.drop_box(UNASSIGNED, "image_skipped", str(annotation), len(boxes))
            continue
        samples.append(Sample(split, image, annotation, boxes))
    for annotation, image in duplicates:  # counted in the image's split, so each split's numbers add up
        split = split_for(image) or UNASSIGNED
        boxes = parse_bbgt(annotation, report, split)
        where = f"{annotation} (kept {annotation_of[image]})"
        if boxes:
            report.drop_box(split, "duplicate_annotation", where, len(boxes))
        else:
            report.issue("duplicate_annotation", where)

    found_names = {image.name.lower() for image in images} | set(by_stem)
    for name in sorted(split_of):
        if name not in found_names and name.rsplit(".", 1)[0] not in found_names:
            report.issue("listed_image_missing", f"{split_file}: {name} ({split_of[name]})")
    return Parsed(samples)
