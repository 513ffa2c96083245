"""COCO-JSON datasets (DUO, RUOD, UTDAC2020): ``instances_<split>.json`` files plus folders of images.

``ultralytics.data.converter.convert_coco`` is not used: it maps ``category_id - 1`` (ids must be 1-based and
contiguous, which these releases do not promise), normalises by the JSON's width/height without EXIF handling or
clipping, and leaves copying images to the caller. Here categories are mapped by *name* to the official order and the
boxes go through the shared checks in :mod:`.write`.

Splits come from the JSON file name (``instances_train.json`` -> train, ``instances_val2017.json`` -> val). DUO and
RUOD ship only train and test; the test set is written as ``val`` (it is what papers report on, and Ultralytics needs
a ``val`` split). Annotation files a release ships besides its splits (RUOD's environment subsets, UTDAC2020's
image-less competition test files, the waterweeds variant not chosen) are recognised, reported in a note with their
image counts, and not converted.

Per annotation: ``iscrowd: 1`` and ``ignore: 1`` (MMDetection-style files, RUOD) are dropped and counted; a flag that
is neither 0/1 nor true/false (``"0"``, ``2``, ``null``) is ``malformed_flag``, never read as set or unset; a bbox that
is not four numbers (booleans are not numbers) is ``malformed_line``; negative width or height (five boxes in the
UTDAC2020 release) is ``negative_size``: which corner the numbers start from cannot be told, so the box is not guessed.
Two images with one id, or one category id with two names, make the file unusable (the annotations cannot be
assigned): the run stops and names both.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from ..errors import ConversionError
from .options import ConvertOptions, DuoOptions, RuodOptions, Utdac2020Options
from .records import UNASSIGNED, UNDERWATER_ALIASES, DatasetSpec, Parsed, RawBox, Sample, normalise_name
from .report import ConversionReport
from .sources import SourceTree, index_by_name, pick_by_name, split_from_name

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

RUOD_SUBSETS = {
    name: f"RUOD environment subset '{name}' ({what}; --ruod-environment {name} converts it as the test split)"
    for name, what in (("light", "low light"), ("color", "colour cast"), ("blur", "blur"))
}
"""RUOD's ``Environmet_ANN/instances_{light,color,blur}.json`` (sic): challenge subsets, not part of train/test."""

UTDAC2020 = DatasetSpec(
    key="utdac2020",
    title="UTDAC2020",
    names=("echinus", "starfish", "holothurian", "scallop"),
    source_url="UTDAC2020 (Underwater Target Detection Algorithm Competition 2020) COCO release, e.g. the "
    "UTDAC2020.zip circulated with papers on it; no official site",
    licence="competition data; terms not published, research use",
    split_note="release: train2017 5168 / val2017 1293 images; testA/testB have no images in the release (skipped)",
    aliases=UNDERWATER_ALIASES,
    excluded_names=frozenset({"waterweeds"}),
)

UTDAC2020_WATERWEEDS = DatasetSpec(
    key="utdac2020",
    title="UTDAC2020 (with waterweeds)",
    names=(*UTDAC2020.names, "waterweeds"),
    source_url=UTDAC2020.source_url,
    licence=UTDAC2020.licence,
    split_note=UTDAC2020.split_note + "; five-class *_waterweeds.json annotation files",
    aliases=UNDERWATER_ALIASES,
)

UTDAC2020_SUBSETS = {
    "testa": "UTDAC2020 competition test set A (the release ships no images for it)",
    "testb": "UTDAC2020 competition test set B (the release ships no images for it)",
}
WATERWEEDS_WORD = "waterweeds"


def _load_coco(path: Path) -> dict | None:
    """Return the parsed JSON if it looks like COCO detection annotations, else None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, RecursionError) as e:  # also undecodable bytes, over-long integers, absurd nesting
        raise ConversionError(f"{path} is not valid JSON: {e}") from e
    if isinstance(data, dict) and all(isinstance(data.get(k), list) for k in ("images", "annotations", "categories")):
        return data
    return None


def _image_folder(
    file_names: list[str], by_name: dict[str, list[Path]], split: str, native: str | None, word: str | None = None
) -> Path | None:
    """Pick the folder holding most of a JSON's images (DUO's train and test folders may reuse file names).

    A folder named after another split than the JSON's own (``native``, from its file name) is never chosen: without
    ``images/train`` the train file names all exist in ``images/test``, and those are other pictures. Ties go to a
    folder named after ``word`` (a subset such as RUOD's ``light``), then to one named after the split.
    """
    votes = Counter(
        p.parent
        for name in file_names
        for p in by_name.get(Path(name).name.lower(), [])
        if native is None or split_from_name(p.parent.name) in (None, native)
    )
    if not votes:
        return None
    best = max(votes.values())
    tied = sorted(folder for folder, n in votes.items() if n == best)
    by_word = [f for f in tied if word and normalise_name(word) in normalise_name(f.name)]
    return next((f for f in by_word + tied if split_from_name(f.name) == split), (by_word + tied)[0])


def _is_id(value: object) -> bool:
    """Return True for a usable COCO id: an integer or a string (JSON true/false, floats and lists are not)."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _read_bbox(annotation: dict) -> tuple[float, float, float, float] | None:
    """Return a COCO ``[x, y, w, h]`` box as given, or None if it is not four numbers (JSON true/false are not)."""
    bbox = annotation.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox):
        return None
    try:
        x, y, w, h = (float(v) for v in bbox)
    except OverflowError:  # an integer beyond the float range
        return None
    return x, y, w, h


FLAG_DROP_REASONS = {"iscrowd": "crowd", "ignore": "ignore_flag"}
"""Per-annotation flags that drop a box when set (``ignore``: MMDetection-style files, RUOD), with the drop reason."""


def _read_flag(annotation: dict, key: str) -> bool | None:
    """Return a 0/1 (or true/false) flag of an annotation, False when absent, None when it is anything else."""
    value = annotation.get(key, 0)
    return bool(value) if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)) else None


def _index_by_id(path: Path, data: dict, section: str, key: str, report: ConversionReport) -> dict[object, dict]:
    """Map id to entry for one section of a COCO file (``images`` or ``categories``).

    An entry without a usable id is counted (``malformed_image_entry`` / ``malformed_category_entry``). One id given
    to two entries with a different ``key`` (file name, category name) stops the run: the annotations pointing at it
    cannot be assigned without guessing, and a dict would silently keep the last entry.

    Raises:
        ConversionError: Naming the file, the id and both values.
    """
    kind = {"images": "image", "categories": "category"}[section]
    by_id: dict[object, dict] = {}
    for entry in data[section]:
        entry_id = entry.get("id") if isinstance(entry, dict) else None
        if not _is_id(entry_id):
            report.issue(f"malformed_{kind}_entry", f"{path}: {section} entry {entry!r}")
            continue
        first = by_id.setdefault(entry_id, entry)
        if first.get(key) != entry.get(key):
            raise ConversionError(
                f"{path}: {kind} id {entry_id!r} is used by both {first.get(key)!r} and {entry.get(key)!r}; the "
                f"annotations pointing at it cannot be assigned without guessing. Ids in '{section}' must be unique: "
                "fix or regenerate the file"
            )
    return by_id


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
    categories = {k: str(v.get("name")) for k, v in _index_by_id(path, data, "categories", "name", report).items()}
    images_by_id = _index_by_id(path, data, "images", "file_name", report)
    boxes_by_image: dict[object, list[RawBox]] = defaultdict(list)
    for number, annotation in enumerate(data["annotations"]):
        where = f"{path}:annotations[{number}]"
        xywh = _read_bbox(annotation) if isinstance(annotation, dict) else None
        if xywh is None:
            report.drop_box(
                split,
                "malformed_line",
                f"{where}: bbox {annotation.get('bbox') if isinstance(annotation, dict) else annotation!r}",
            )
            continue
        flags = {key: _read_flag(annotation, key) for key in FLAG_DROP_REASONS}
        bad = [key for key, value in flags.items() if value is None]
        if bad:  # "0" or 2 could mean set or not set: never guessed
            shown = ", ".join(f"{key} {annotation[key]!r}" for key in bad)
            report.drop_box(split, "malformed_flag", f"{where}: {shown} (flags are 0/1 or true/false)")
            continue
        set_flag = next((key for key, value in flags.items() if value), None)
        if set_flag is not None:  # crowd boxes cover many objects (Ultralytics' converter skips them too); ignore: 1
            report.drop_box(split, FLAG_DROP_REASONS[set_flag], where)  # is excluded from evaluation by its owners
            continue
        x, y, w, h = xywh
        if w < 0 or h < 0:
            report.drop_box(split, "negative_size", f"{where}: bbox {annotation.get('bbox')}")
            continue
        image_id = annotation.get("image_id")
        if not _is_id(image_id) or image_id not in images_by_id:
            report.drop_box(split, "annotation_without_image", f"{where}: image_id {image_id!r} not in images")
            continue
        category_id = annotation.get("category_id")
        label = categories[category_id] if _is_id(category_id) and category_id in categories else None
        label = label or f"category_id {category_id!r}"
        boxes_by_image[image_id].append(RawBox(label, (x, y, x + w, y + h), where))

    samples, used = [], set()
    for image_id, entry in images_by_id.items():
        file_name = str(entry.get("file_name", ""))
        candidates = by_name.get(Path(file_name).name.lower(), [])
        image = pick_by_name([p for p in candidates if p.parent == folder], Path(file_name).name)
        boxes = boxes_by_image.get(image_id, [])
        if image is None or image in used:
            if candidates:  # missing images are counted by write_dataset; here say why an existing one was not used
                elsewhere = ", ".join(str(p) for p in candidates[:2])
                report.issue(
                    "image_not_in_split_folder",
                    f"{path}: images[id={image_id!r}] file_name {file_name!r} is not in {folder} (only {elsewhere}: "
                    "another picture, or a case-only twin; not used)",
                )
            samples.append(Sample(split, None, path, boxes))
            continue
        used.add(image)
        width, height = entry.get("width"), entry.get("height")
        sizes_are_ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (width, height))
        declared = (width, height) if sizes_are_ints else None
        samples.append(Sample(split, image, path, boxes, declared_size=declared))
    return samples, used


def parse_coco(
    tree: SourceTree,
    report: ConversionReport,
    subsets: dict[str, str] | None = None,
    use_waterweeds: bool | None = None,
    test_subset: str | None = None,
) -> Parsed:
    """Collect samples from every COCO detection JSON of the sources.

    Args:
        tree: Files below --source.
        report: Receives parse problems and notes on the files not converted.
        subsets: Extra annotation files the release ships, by normalised file stem without ``instances`` and digits
            (e.g. ``{"light": "RUOD environment subset ..."}``): reported with their image counts, not converted.
        use_waterweeds: For releases with ``*_waterweeds.json`` variants: True uses those, False the others; None when
            the dataset has no such variant.
        test_subset: Key of ``subsets`` converted as the ``test`` split instead of being skipped.

    Returns:
        Samples and no split lists (the split is official).

    Raises:
        ConversionError: If no COCO JSON is found, a JSON's split cannot be told, two JSONs claim one split, or
            ``test_subset`` is not a known subset or its file is not found.
    """
    if test_subset is not None and test_subset not in (subsets or {}):
        raise ConversionError(f"unknown subset {test_subset!r}; this dataset has: {', '.join(subsets or {}) or 'none'}")
    images = tree.images()
    test_file = None
    by_name = index_by_name(images)
    files = {}
    for path in tree.with_suffixes({"json"}):
        data = _load_coco(path)
        if data is None:
            report.note(f"{path} skipped: not COCO detection JSON (needs images, annotations, categories)")
            continue
        stem = normalise_name(path.stem)
        # "instances_testA2017" and "testA" both name subset "testa"
        subset_key = re.sub(r"\d+", "", stem[len("instances") :] if stem.startswith("instances") else stem)
        if test_subset is not None and subset_key == test_subset:
            test_file = (path, data)
            continue
        subset = (subsets or {}).get(subset_key)
        if subset is None and use_waterweeds is not None and (WATERWEEDS_WORD in stem) != use_waterweeds:
            subset = "the " + ("four-class file (--waterweeds uses *_waterweeds.json)" if use_waterweeds else
                               "five-class waterweeds variant (pass --waterweeds to use it)")  # fmt: skip
        if subset is not None:
            listed = [Path(str(im.get("file_name", ""))).name.lower() for im in data["images"] if isinstance(im, dict)]
            found = sum(1 for name in listed if name in by_name)
            report.note(
                f"{path}: {subset}; {len(listed)} images ({found} of them found under --source), "
                f"{len(data['annotations'])} annotations; not converted"
            )
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
    if test_subset is not None:
        if test_file is None:
            raise ConversionError(f"no annotation file for subset {test_subset!r} found under --source")
        files["test"] = test_file
        report.note(f"{test_file[0]}: {subsets[test_subset]}; written as the test split")

    samples, used, folders = [], set(), set()
    for split, (path, data) in sorted(files.items()):
        folder = _image_folder(
            [str(im.get("file_name", "")) for im in data["images"] if isinstance(im, dict)],
            by_name,
            split,
            split_from_name(path.stem),
            test_subset if split == "test" else None,
        )
        if folder is None and data["images"]:
            report.note(f"{path}: none of its images was found in a folder for its split; all counted as missing")
        split_samples, split_used = parse_coco_file(path, data, split, folder, by_name, report)
        samples += split_samples
        used |= split_used
        if folder is not None:  # images in the split's folder that the JSON does not list: not labelled, not used
            folders.add(folder)
            for image in images:
                if image.parent == folder and image not in used:
                    report.skip_image(split, "not_in_annotation_file", str(image))
    uncovered = defaultdict(list)  # e.g. RUOD's Environment_pic/, a test folder without annotations
    for image in images:
        if image not in used and image.parent not in folders:
            uncovered[image.parent].append(image)
    for folder, folder_images in sorted(uncovered.items()):
        report.note(f"{folder}: {len(folder_images)} images that no converted annotation file lists; left out")
        for image in folder_images:
            report.skip_image(UNASSIGNED, "not_in_any_annotation_file", str(image))
    return Parsed(samples)


def parse_duo(tree: SourceTree, report: ConversionReport, options: DuoOptions, shared: ConvertOptions) -> Parsed:
    """DUO: ``annotations/instances_{train,test}.json`` and ``images/{train,test}`` (test written as val)."""
    return parse_coco(tree, report)


def parse_ruod(tree: SourceTree, report: ConversionReport, options: RuodOptions, shared: ConvertOptions) -> Parsed:
    """RUOD from its extracted root: ``RUOD_ANN/instances_{train,test}.json`` (test written as val).

    The environment subsets (``Environmet_ANN/instances_{light,color,blur}.json``) are reported and skipped, except
    ``options.environment``, which is written as the ``test`` split (``yolo val split=test`` evaluates on it).
    """
    return parse_coco(tree, report, subsets=RUOD_SUBSETS, test_subset=options.environment)


def parse_utdac2020(
    tree: SourceTree, report: ConversionReport, options: Utdac2020Options, shared: ConvertOptions
) -> Parsed:
    """UTDAC2020's COCO release: train2017/val2017 (four or, with ``waterweeds``, five classes); testA/B reported."""
    return parse_coco(tree, report, subsets=UTDAC2020_SUBSETS, use_waterweeds=options.waterweeds)
