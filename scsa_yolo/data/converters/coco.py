"""COCO-JSON datasets (DUO, RUOD): ``instances_<split>.json`` files plus folders of images.

``ultralytics.data.converter.convert_coco`` is not used: it maps ``category_id - 1`` (ids must be 1-based and
contiguous, which these releases do not promise), normalises by the JSON's width/height without EXIF handling or
clipping, and leaves copying images to the caller. Here categories are mapped by *name* to the official order and the
boxes go through the shared checks in :mod:`.common`.

Splits come from the JSON file name (``instances_train.json`` -> train). DUO and RUOD ship only train and test; the
test set is written as ``val`` (it is what papers report on, and Ultralytics needs a ``val`` split).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from .common import (
    UNDERWATER_ALIASES,
    ConversionError,
    ConversionReport,
    DatasetSpec,
    RawBox,
    Sample,
    find_files,
    find_images,
    index_by_name,
    split_from_name,
)

DUO = DatasetSpec(
    key="duo",
    title="DUO",
    names=("holothurian", "echinus", "scallop", "starfish"),
    source_url="https://github.com/chongweiliu/DUO (Baidu Yun link in the README); paper arXiv:2106.05681",
    licence="not stated by the owners; research use",
    split_note="official: train 6671 / test 1111; the test set is written as 'val' (DUO has no separate val)",
    aliases=UNDERWATER_ALIASES,
)

RUOD = DatasetSpec(
    key="ruod",
    title="RUOD",
    names=(
        "holothurian",
        "echinus",
        "scallop",
        "starfish",
        "fish",
        "corals",
        "diver",
        "cuttlefish",
        "turtle",
        "jellyfish",
    ),
    source_url="https://github.com/dlut-dimt/RUOD (Neurocomputing 2023)",
    licence="research use (see the RUOD repository)",
    split_note="official: train 9800 / test 4200; the test set is written as 'val' (RUOD has no separate val)",
    aliases=UNDERWATER_ALIASES,
)


def _load_coco(path: Path) -> dict | None:
    """Return the parsed JSON if it looks like COCO detection annotations, else None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConversionError(f"{path} is not valid JSON: {e}") from e
    if isinstance(data, dict) and all(isinstance(data.get(k), list) for k in ("images", "annotations", "categories")):
        return data
    return None


def _image_folder(file_names: list[str], by_name: dict[str, list[Path]], split: str) -> Path | None:
    """Pick the folder holding most of a JSON's images (DUO's train and test folders may reuse file names)."""
    votes = Counter(p.parent for name in file_names for p in by_name.get(Path(name).name.lower(), []))
    if not votes:
        return None
    best = max(votes.values())
    tied = sorted(folder for folder, n in votes.items() if n == best)
    return next((f for f in tied if split_from_name(f.name) == split), tied[0])


def _read_bbox(annotation: dict) -> tuple[float, float, float, float] | None:
    """Return a COCO ``[x, y, w, h]`` box as xyxy, or None if it is not four numbers."""
    bbox = annotation.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
        return None
    x, y, w, h = (float(v) for v in bbox)
    return x, y, x + w, y + h


def parse_coco_file(
    path: Path, data: dict, split: str, folder: Path | None, by_name: dict[str, list[Path]], report: ConversionReport
) -> tuple[list[Sample], set[Path]]:
    """Turn one COCO JSON into samples.

    Args:
        path: The JSON file (for the report).
        data: Its parsed content.
        split: Output split.
        folder: Image folder chosen for this JSON (see :func:`_image_folder`).
        by_name: All images below the sources by lower-case file name.
        report: Receives problems.

    Returns:
        Samples, and the image files they use.
    """
    categories = {c.get("id"): str(c.get("name")) for c in data["categories"] if isinstance(c, dict)}
    boxes_by_image: dict[object, list[RawBox]] = defaultdict(list)
    images_by_id = {im.get("id"): im for im in data["images"] if isinstance(im, dict)}
    orphans: dict[object, int] = Counter()
    for number, annotation in enumerate(data["annotations"]):
        where = f"{path}:annotations[{number}]"
        xyxy = _read_bbox(annotation) if isinstance(annotation, dict) else None
        if xyxy is None:
            report.drop_box(
                split,
                "malformed_line",
                f"{where}: bbox {annotation.get('bbox') if isinstance(annotation, dict) else annotation!r}",
            )
            continue
        if annotation.get("iscrowd"):
            report.drop_box(
                split, "crowd", where
            )  # crowd boxes cover many objects; Ultralytics' converter skips them too
            continue
        image_id = annotation.get("image_id")
        if image_id not in images_by_id:
            orphans[image_id] += 1
            report.drop_box(split, "annotation_without_image", f"{where}: image_id {image_id!r} not in images")
            continue
        label = categories.get(annotation.get("category_id"), f"category_id {annotation.get('category_id')}")
        boxes_by_image[image_id].append(RawBox(label, xyxy, where))

    samples, used = [], set()
    for image_id, entry in images_by_id.items():
        file_name = str(entry.get("file_name", ""))
        candidates = by_name.get(Path(file_name).name.lower(), [])
        image = next((p for p in candidates if p.parent == folder), None) or (
            candidates[0] if len(candidates) == 1 else None
        )
        boxes = boxes_by_image.get(image_id, [])
        if image is None or image in used:
            if candidates:  # missing images are counted by write_dataset; here say why an existing one was not used
                report.issue("ambiguous_image", f"{path}: images[id={image_id!r}] file_name {file_name!r}")
            samples.append(Sample(split, None, path, boxes))
            continue
        used.add(image)
        width, height = entry.get("width"), entry.get("height")
        declared = (int(width), int(height)) if isinstance(width, int) and isinstance(height, int) else None
        samples.append(Sample(split, image, path, boxes, declared_size=declared))
    return samples, used


def parse_coco(roots: list[Path], dest: Path, report: ConversionReport, **_: object) -> tuple[list[Sample], None]:
    """Collect samples from every COCO detection JSON below ``roots``.

    Args:
        roots: Folders to search.
        dest: Output folder, excluded from the search.
        report: Receives parse problems.

    Returns:
        Samples and no split lists (the split is official).

    Raises:
        ConversionError: If no COCO JSON is found, a JSON's split cannot be told, or two JSONs claim one split.
    """
    files = {}
    for path in find_files(roots, {"json"}, dest):
        data = _load_coco(path)
        if data is None:
            report.note(f"{path} skipped: not COCO detection JSON (needs images, annotations, categories)")
            continue
        split = split_from_name(path.stem)
        if split is None:
            raise ConversionError(
                f"cannot tell the split of {path}; name it like instances_train.json / instances_test.json"
            )
        if split in files:
            raise ConversionError(f"two annotation files for split '{split}': {files[split][0]} and {path}")
        files[split] = (path, data)
    if not files:
        raise ConversionError("no COCO JSON (instances_<split>.json) found under --source")
    if "val" not in files and "test" in files:
        files["val"] = files.pop("test")

    images = find_images(roots, dest)
    by_name = index_by_name(images)
    samples, used = [], set()
    for split, (path, data) in sorted(files.items()):
        folder = _image_folder(
            [str(im.get("file_name", "")) for im in data["images"] if isinstance(im, dict)], by_name, split
        )
        split_samples, split_used = parse_coco_file(path, data, split, folder, by_name, report)
        samples += split_samples
        used |= split_used
        if folder is not None:  # images in the split's folder that the JSON does not list: not labelled, not used
            for image in images:
                if image.parent == folder and image not in used:
                    report.skip_image(split, "not_in_annotation_file", str(image))
    return samples, None
