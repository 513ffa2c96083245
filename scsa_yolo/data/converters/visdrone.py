"""VisDrone2019-DET: per-image CSV text files next to an ``images/`` folder, one folder per split.

Native layout (github.com/VisDrone/VisDrone-Dataset)::

    VisDrone2019-DET-{train,val,test-dev}/images/<name>.jpg
    VisDrone2019-DET-{train,val,test-dev}/annotations/<name>.txt   "left,top,width,height,score,category,trunc,occl"

Category 0 ("ignored regions", score 0) marks crowds and areas the owners did not label; category 11 ("others")
marks objects of classes outside the ten. Neither becomes a label: an id 10 (others minus one, what a naive
``category - 1`` mapping writes) makes Ultralytics discard the whole image. Both are dropped with a counted reason;
``--fill-ignored`` also paints ignored regions with the image mean colour, so unlabelled objects there do not
teach the model "background". The image is always kept.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from ..errors import ConversionError
from .options import ConvertOptions, VisDroneOptions
from .records import DatasetSpec, Parsed, RawBox, Sample
from .report import ConversionReport
from .sources import SourceTree, iter_text_lines

VISDRONE = DatasetSpec(
    key="visdrone",
    title="VisDrone2019-DET",
    names=("pedestrian", "people", "bicycle", "car", "van", "truck", "tricycle", "awning-tricycle", "bus", "motor"),
    source_url="https://github.com/VisDrone/VisDrone-Dataset (VisDrone2019-DET-train/val/test-dev zips)",
    licence="VisDrone terms: academic research only, no commercial use",
    split_note="official: train 6471, val 548, test-dev 1610 -> test; test-challenge has no public labels (skipped)",
    excluded_names=frozenset({"others"}),
)

IGNORED_CATEGORY = 0
OTHERS_CATEGORY = 11


def parse_visdrone_file(path: Path, report: ConversionReport, split: str) -> tuple[list[RawBox], list[RawBox]]:
    """Parse one VisDrone annotation file.

    Args:
        path: ``annotations/<name>.txt``.
        report: Receives malformed lines (file:line) and ignored regions.
        split: Split of the file, for the report.

    Returns:
        Object boxes (category 11 labelled ``"others"``, dropped later as an excluded class) and ignored regions.
    """
    boxes, ignored = [], []
    for number, line in iter_text_lines(path):
        if not line:
            continue
        where = f"{path}:{number}"
        fields = [f.strip() for f in line.rstrip(",").split(",")]  # some files end rows with a comma
        try:
            values = [float(v) for v in fields[:6]]
        except ValueError:  # also "nan"; "inf" is caught below
            values = []
        if len(values) < 6 or not all(math.isfinite(v) for v in values):
            report.drop_box(split, "malformed_line", f"{where}: {line!r}")
            continue
        if not all(v.is_integer() for v in values):  # 4.7 is no category, 10.9 no pixel: never rounded or cut
            report.drop_box(split, "malformed_line", f"{where}: {line!r} (the first six columns are integers)")
            continue
        left, top, width, height, score, category = (int(v) for v in values)
        xyxy = (float(left), float(top), float(left) + width, float(top) + height)  # float: huge sums become inf
        if category == IGNORED_CATEGORY or score == 0:  # VisDrone: score 0 = "ignored in evaluation"
            ignored.append(RawBox("ignored", xyxy, where))
            report.drop_box(split, "ignored_region", where)
        elif width < 0 or height < 0:  # which corner the numbers start from cannot be told
            report.drop_box(split, "negative_size", f"{where}: {line!r}")
        elif 1 <= category <= len(VISDRONE.names):
            boxes.append(RawBox(VISDRONE.names[category - 1], xyxy, where))
        elif category == OTHERS_CATEGORY:
            boxes.append(RawBox("others", xyxy, where))
        else:
            boxes.append(RawBox(f"category {category}", xyxy, where))  # reported as unknown_class
    return boxes, ignored


def _split_of_folder(folder: Path) -> str | None:
    """Map ``VisDrone2019-DET-test-dev`` style names to train/val/test; None for test-challenge and unknown names."""
    name = folder.name.lower()
    if "challenge" in name:
        return None
    for split, words in (("train", ("train",)), ("val", ("val",)), ("test", ("test-dev", "testdev", "test"))):
        if any(w in name for w in words):
            return split
    return None


def parse_visdrone(
    tree: SourceTree, report: ConversionReport, options: VisDroneOptions, shared: ConvertOptions
) -> Parsed:
    """Collect VisDrone samples from every ``<split>/images`` folder of the sources.

    Args:
        tree: Files below --source.
        report: Receives parse problems and skipped folders.
        options: ``fill_ignored`` attaches the ignored regions to be painted.
        shared: Not used by this format.

    Returns:
        Samples and no split lists (the split is official).

    Raises:
        ConversionError: If an ``images`` folder's parent does not say its split.
    """
    images = tree.images()
    texts = tree.with_suffixes({"txt"})
    split_folders = sorted({p.parent.parent for p in images if p.parent.name.lower() == "images"})
    samples = []
    for folder in split_folders:
        split = _split_of_folder(folder)
        if split is None:
            if "challenge" in folder.name.lower():
                report.note(f"{folder} skipped: test-challenge labels are not public")
                continue
            raise ConversionError(
                f"cannot tell the split of {folder}; name it like VisDrone2019-DET-train/-val/-test-dev"
            )
        folder_images: dict[str, list[Path]] = defaultdict(list)
        for image in images:
            if image.parent.parent == folder and image.parent.name.lower() == "images":
                folder_images[image.name.rpartition(".")[0]].append(image)
        annotations = {
            p.name.rpartition(".")[0]: p
            for p in texts
            if p.parent.parent == folder and p.parent.name.lower() == "annotations"
        }
        for stem in sorted(folder_images.keys() | annotations.keys()):
            annotation = annotations.get(stem)
            boxes, ignored = parse_visdrone_file(annotation, report, split) if annotation else ([], [])
            first, *others = folder_images.get(stem) or [None]
            samples.append(Sample(split, first, annotation, boxes, ignored if options.fill_ignored else []))
            for image in others:  # "a.jpg" and "a.png" share "a.txt": it belongs to one of them at most
                report.issue("ambiguous_annotation", f"{annotation} also matches {image}; that image has no annotation")
                samples.append(Sample(split, image))
    return Parsed(samples)
