"""Pascal VOC XML datasets (URPC2020): one XML per image, no official split.

Native layout (competition release and its mirrors; folder names vary)::

    .../Annotations/<name>.xml or .../box/<name>.xml      <annotation><size>, <object><name>, <difficult>, <bndbox>
    .../JPEGImages/<name>.jpg  or .../image/<name>.jpg

XML files are matched to images by stem (else by ``<filename>``), only within their own split: an image in the XML's own
folder, or, for a folder of XML files only, in a parallel folder (same path but one folder name: ``train/box`` and
``train/image``, ``Annotations`` and ``JPEGImages``; never one that names another split). An XML whose image is missing
there is never paired with a same-stem image elsewhere (URPC's ``test-B-image/`` reuses the train names): it is counted
as ``annotations_without_image`` (its boxes ``annotation_without_image``) and named under ``unpaired_annotation``.
Pixel coordinates are 1-based as in the VOC devkit: like Ultralytics' own VOC conversion (the ``download`` script of
``ultralytics/cfg/datasets/VOC.yaml``: centre ``(min + max) / 2 - 1``, size ``max - min``) both corners are shifted by
-1 pixel. URPC's XML fits this reading: boxes end at ``ymax = 1081`` on 1080-pixel-high images. ``difficult`` objects
are dropped (counted) as that converter does.

Images without an XML are handled by :func:`.write.leave_out_unlabelled` *before* the split, so a folder of
unlabelled test images (URPC's ``test-B-image/``) is reported and never takes a val slot. The split is made here: a
seeded shuffle of the sorted list of images to write, ``round(n * val_fraction)`` to val, recorded in
``splits/{train,val}.txt``.
"""

from __future__ import annotations

import os
import random
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import ConversionError
from .options import ConvertOptions, Urpc2020Options
from .records import UNASSIGNED, UNDERWATER_ALIASES, DatasetSpec, Parsed, RawBox, Sample
from .report import ConversionReport
from .sources import SourceTree, split_from_name
from .write import leave_out_unlabelled

VOC_PIXEL_OFFSET = 1.0  # VOC devkit pixel indices start at 1

URPC2020 = DatasetSpec(
    key="urpc2020",
    title="URPC2020",
    names=("holothurian", "echinus", "scallop", "starfish"),
    source_url="Underwater Robot Picking Contest 2020 (urpc.org.cn); mirrored on Kaggle/AI Studio, no official site",
    licence="competition data; terms not published, research use",
    split_note="no official split (test labels never released): seeded random val split, lists in splits/",
    aliases=UNDERWATER_ALIASES,
    excluded_names=frozenset({"waterweeds"}),
)


def _number(node: ET.Element | None, tag: str) -> float:
    """Read a numeric child tag (raises ValueError/AttributeError when missing or not a number)."""
    return float(node.find(tag).text)


@dataclass
class VocAnnotation:
    """Content of one VOC XML file.

    Attributes:
        path: The XML file.
        boxes: Usable objects.
        declared_size: ``<size>`` (width, height) when present and positive.
        file_name: ``<filename>`` text.
        drops: (reason, where) of objects not usable; recorded once the file's split is known.
    """

    path: Path
    boxes: list[RawBox]
    declared_size: tuple[int, int] | None
    file_name: str
    drops: list[tuple[str, str]]


def read_voc(source: Path | IO[bytes], where: str, pixel_offset: float = VOC_PIXEL_OFFSET) -> VocAnnotation:
    """Read one VOC XML (a file or an open binary stream, e.g. a member of a zip).

    Args:
        source: The XML.
        where: Name used for the file in the origins of its boxes (its path).
        pixel_offset: Subtracted from every corner: 1 for the VOC devkit's 1-based pixels; 0 for tools that write
            0-based corners (deepforest).

    Returns:
        The content; objects with a missing name or corner are in ``drops`` as ``malformed_line``, ``difficult`` ones
        as ``difficult``, and ones whose max corner lies before the min corner as ``swapped_corners``.

    Raises:
        ET.ParseError: If it is not well-formed XML.
        ValueError: If its root element is not ``<annotation>``.
    """
    root = ET.parse(source).getroot()
    if root.tag != "annotation":
        raise ValueError(f"root element <{root.tag}>, not <annotation>")
    try:
        size = root.find("size")
        declared = (int(_number(size, "width")), int(_number(size, "height")))
        declared = declared if min(declared) > 0 else None
    except (AttributeError, TypeError, ValueError, OverflowError):  # int(inf) raises OverflowError
        declared = None
    boxes, drops = [], []
    for number, obj in enumerate(root.iter("object"), 1):
        origin = f"{where}:object[{number}]"
        name = (obj.findtext("name") or "").strip()
        try:
            bndbox = obj.find("bndbox")
            xyxy = tuple(_number(bndbox, tag) for tag in ("xmin", "ymin", "xmax", "ymax"))
        except (AttributeError, TypeError, ValueError):
            xyxy = None
        if not name or xyxy is None:
            drops.append(("malformed_line", origin))
        elif (obj.findtext("difficult") or "0").strip() == "1":
            drops.append(("difficult", origin))
        elif xyxy[2] < xyxy[0] or xyxy[3] < xyxy[1]:
            drops.append(("swapped_corners", f"{origin}: xmin/ymin {xyxy[:2]} beyond xmax/ymax {xyxy[2:]}"))
        else:
            boxes.append(RawBox(name, tuple(v - pixel_offset for v in xyxy), origin))
    return VocAnnotation(Path(where), boxes, declared, (root.findtext("filename") or "").strip(), drops)


def parse_voc_file(path: Path, report: ConversionReport) -> VocAnnotation | None:
    """Read one VOC XML file; one that is not well-formed or not VOC is counted and gives None."""
    try:
        return read_voc(path, str(path))
    except ET.ParseError as e:
        report.issue("unreadable_annotation", f"{path}: {e}")
    except ValueError as e:
        report.issue("not_voc_xml", f"{path}: {e}")
    return None


def _nearest(candidates: list[Path], anchor: Path) -> Path:
    """Return the candidate sharing the longest path prefix with ``anchor`` (ties: first in sorted order)."""
    return max(candidates, key=lambda p: len(os.path.commonpath([p, anchor])))


def _may_pair(xml_folder: Path, image_folder: Path, image_folders: set[Path]) -> bool:
    """Return True if an XML in ``xml_folder`` may describe an image in ``image_folder`` (see the module docstring).

    Args:
        xml_folder: Folder of the XML file.
        image_folder: Folder of the candidate image.
        image_folders: Every folder that holds images (an XML folder among them pairs only within itself).
    """
    if xml_folder == image_folder:
        return True
    if xml_folder in image_folders or len(xml_folder.parts) != len(image_folder.parts):
        return False
    differing = [(a, b) for a, b in zip(xml_folder.parts, image_folder.parts) if a != b]
    if len(differing) != 1:
        return False
    splits = {split_from_name(name) for name in differing[0]}
    return len(splits - {None}) < 2  # "train" vs "test" is another split, not an image folder


def parse_urpc2020(
    tree: SourceTree, report: ConversionReport, options: Urpc2020Options, shared: ConvertOptions
) -> Parsed:
    """Collect URPC2020 samples and split them into train/val deterministically.

    Args:
        tree: Files below --source.
        report: Receives parse problems.
        options: ``val_fraction`` (share of images written to val) and ``seed`` (of the shuffle).
        shared: ``unlabelled_backgrounds`` keeps lone images without XML (in folders of labelled images).

    Returns:
        Samples, and the source image paths per split (written to ``splits/``).

    Raises:
        ConversionError: If ``val_fraction`` leaves no image for train.
    """
    images = tree.images()
    by_stem: dict[str, list[Path]] = defaultdict(list)
    by_name: dict[str, list[Path]] = defaultdict(list)
    for image in images:
        by_stem[image.name.rpartition(".")[0].lower()].append(image)
        by_name[image.name.lower()].append(image)
    image_folders = {image.parent for image in images}

    annotation_of: dict[Path, VocAnnotation] = {}
    orphans = []
    for xml in tree.with_suffixes({"xml"}):
        parsed = parse_voc_file(xml, report)
        if parsed is None:
            continue
        named = by_name.get(Path(parsed.file_name).name.lower(), []) if parsed.file_name else []
        same_stem = by_stem.get(xml.name.rpartition(".")[0].lower(), [])
        image = None
        for group in (named, same_stem):  # <filename> first: d.xml naming d.png is not about d.jpg
            candidates = [p for p in group if _may_pair(xml.parent, p.parent, image_folders)]
            if candidates:
                image = _nearest(candidates, xml)
                break
        same_stem = named or same_stem
        if image is None and same_stem:
            shown = ", ".join(str(p) for p in same_stem[:3])
            report.issue("unpaired_annotation", f"{xml}: no image in its own or a parallel folder (only {shown})")
        if image is None or image in annotation_of:
            orphans.append(parsed)
        else:
            annotation_of[image] = parsed

    candidates = [
        Sample(UNASSIGNED, image, annotation_of[image].path if image in annotation_of else None) for image in images
    ]
    kept = [s.image for s in leave_out_unlabelled(candidates, report, shared.unlabelled_backgrounds)]

    # Split by image, on the sorted list, so the split depends on the file set and the seed only
    order = sorted(kept, key=lambda p: str(p))
    random.Random(options.seed).shuffle(order)
    n_val = round(len(order) * options.val_fraction)
    if order and n_val >= len(order):
        most = (len(order) - 0.5) / len(order)
        raise ConversionError(
            f"--val-fraction {options.val_fraction} puts all {len(order)} images in val and none in train; use a value "
            f"below {most:.3f} (or add images)"
        )
    split_of = {image: ("val" if i < n_val else "train") for i, image in enumerate(order)}

    samples = []
    for image in kept:
        parsed = annotation_of.get(image)
        if parsed is None:
            samples.append(Sample(split_of[image], image))
            continue
        for reason, where in parsed.drops:
            report.drop_box(split_of[image], reason, where)
        samples.append(Sample(split_of[image], image, parsed.path, parsed.boxes, declared_size=parsed.declared_size))
    for parsed in orphans:
        for reason, where in parsed.drops:
            report.drop_box(UNASSIGNED, reason, where)
        samples.append(Sample(UNASSIGNED, None, parsed.path, parsed.boxes))

    def relative(image: Path) -> str:
        root = tree.root_of(image)
        return image.relative_to(root).as_posix() if root else image.as_posix()

    lists = {split: sorted(relative(i) for i, s in split_of.items() if s == split) for split in ("train", "val")}
    return Parsed(samples, {split: files for split, files in lists.items() if files})
