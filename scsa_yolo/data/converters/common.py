"""Shared machinery of the dataset converters: dataset specs, sample records, geometry, writing and the report.

A format module only parses its native annotations into :class:`Sample` records (class *names* and pixel boxes in
``xyxy``). Everything that must behave the same for every dataset lives here, in :func:`write_dataset`: checking the
image, EXIF orientation, class mapping, clipping, dropping, duplicate stems, the Ultralytics layout, ``data.yaml``
and the report.

Conventions that the converters rely on:

- Ultralytics loads images EXIF-rotated (``cv2.imdecode`` honours the orientation tag) and measures them with
  ``ultralytics.data.utils.exif_size``, so labels are written in the *displayed* orientation, normalised by the
  displayed size, and image files are copied byte for byte (the tag stays and Ultralytics rotates on load).
- A label id outside ``names`` makes Ultralytics discard the whole image, so every box is mapped to an official class
  or dropped with a counted reason; no id outside the class list is ever written.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import math
import os
import posixpath
import re
import shutil
import tarfile
import unicodedata
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps
from ultralytics.data.utils import IMG_FORMATS, exif_size
from ultralytics.utils import TQDM, YAML

REPORT_NAME = "prepare_report.json"
# Every file a run writes below --dest, one relative path a line; a re-run deletes exactly these and nothing else
MANIFEST_NAME = "prepare_files.txt"
EXTRACT_DIR_NAME = ".extracted"
LABEL_CACHE_SUFFIX = ".cache"  # labels/<split>.cache: Ultralytics' label cache, rebuilt by it when the labels change
SPLITS = ("train", "val", "test")
EXAMPLES_PER_REASON = 20  # examples kept per issue reason in the JSON report; the counts are always complete
EXIF_ORIENTATION_TAG = 274
UNASSIGNED = "unassigned"  # report bucket for input that could not be given a split

# PIL transpose applied by ImageOps.exif_transpose for each EXIF orientation value (2-8; 1 means upright).
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class ConversionError(RuntimeError):
    """Raised for input that cannot be converted at all (nothing usable found, missing split file, bad --dest)."""


@dataclass(frozen=True)
class DatasetSpec:
    """What a converter knows about one dataset besides its annotation format.

    Attributes:
        key: Command-line name, e.g. ``"exdark"``.
        title: Human-readable name used in ``data.yaml`` and the report.
        names: Class names in the official order; the index is the YOLO class id.
        source_url: Where users download the native dataset.
        licence: Licence or terms of use as stated by the owners.
        split_note: How the train/val/test split is defined, written into ``data.yaml``.
        aliases: Alternative spellings (normalised) mapped to an official name.
        excluded_names: Classes that exist in the native data but are deliberately not part of ``names``; their boxes
            are dropped with reason ``excluded_class`` rather than ``unknown_class``.
    """

    key: str
    title: str
    names: tuple[str, ...]
    source_url: str
    licence: str
    split_note: str
    aliases: dict[str, str] = field(default_factory=dict)
    excluded_names: frozenset[str] = frozenset()

    def class_index(self, name: str) -> int | None:
        """Return the YOLO id of a native class name (case, spaces and punctuation ignored), or None if unknown."""
        wanted = normalise_name(name)
        wanted = normalise_name(self.aliases.get(wanted, wanted))
        for index, official in enumerate(self.names):
            if normalise_name(official) == wanted:
                return index
        return None

    def is_excluded(self, name: str) -> bool:
        """Return True if ``name`` is a known native class that this dataset definition leaves out on purpose."""
        return normalise_name(name) in {normalise_name(n) for n in self.excluded_names}


UNDERWATER_ALIASES = {"seacucumber": "holothurian", "seaurchin": "echinus", "urchin": "echinus", "coral": "corals"}
"""Spellings of the underwater classes seen across DUO, RUOD and URPC releases (an alias to a class a dataset lacks
changes nothing: the name stays unknown)."""


def normalise_name(name: str) -> str:
    """Lower-case a class name and strip everything but letters and digits, so 'Sea-Urchin' equals 'seaurchin'."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


@dataclass
class RawBox:
    """One native annotation before mapping and clipping.

    Attributes:
        label: Native class name.
        xyxy: Pixel corners (x1, y1, x2, y2) in the annotation's own coordinate frame.
        origin: Where it came from, e.g. ``"ExDark_Annno/Car/a.jpg.txt:3"``, for the report.
    """

    label: str
    xyxy: tuple[float, float, float, float]
    origin: str


@dataclass
class Sample:
    """One image (or one orphan annotation) as parsed from the native dataset.

    Attributes:
        split: Output split (``train``/``val``/``test``).
        image: Source image file, or None for an annotation whose image is missing.
        annotation: Source annotation file, or None for an image without one (see :func:`leave_out_unlabelled`).
        boxes: Objects to turn into labels.
        ignore_regions: Regions the owners mark as "ignore" (VisDrone); never labels, optionally painted out.
        declared_size: (width, height) stated by the annotation file, used to tell which orientation the boxes are in.
    """

    split: str
    image: Path | None
    annotation: Path | None = None
    boxes: list[RawBox] = field(default_factory=list)
    ignore_regions: list[RawBox] = field(default_factory=list)
    declared_size: tuple[int, int] | None = None


@dataclass
class ConvertOptions:
    """Behaviour switches shared by all converters.

    Attributes:
        exif_boxes: Frame of boxes in EXIF-rotated images when the annotation does not state its image size:
            ``"stored"`` (pixel rows as saved in the file, what MATLAB/OpenCV-era tools show) or ``"displayed"``.
        fill_ignored: Paint ignore regions with the image's mean colour (re-encodes those images).
        hardlink: Hard-link images into --dest instead of copying (falls back to copying across file systems).
        min_box_pixels: Boxes narrower or shorter than this after clipping are dropped as degenerate.
        unlabelled_backgrounds: Keep images that have no annotation file, in a folder whose other images have one,
            as background images (empty label files). Off by default: in datasets where every labelled image has an
            annotation file, a missing one usually means a lost file, not an empty scene.
        drop_eval_duplicates: Leave images of val/test out when they are byte-identical to an image of an earlier
            split (train before val before test); they are always reported.
        pixel_duplicates: Compare decoded pixels instead of file bytes when looking for such copies (also finds
            copies with stripped metadata or another container; decodes candidate images once more).
    """

    exif_boxes: str = "stored"
    fill_ignored: bool = False
    hardlink: bool = False
    min_box_pixels: float = 1.0
    unlabelled_backgrounds: bool = False
    drop_eval_duplicates: bool = False
    pixel_duplicates: bool = False

    def __post_init__(self) -> None:
        """Reject an unknown EXIF frame instead of silently treating it as one of the two."""
        if self.exif_boxes not in {"stored", "displayed"}:
            raise ValueError(f"exif_boxes must be 'stored' or 'displayed', got {self.exif_boxes!r}")


class ConversionReport:
    """Counts everything that goes in, comes out or is dropped, per split, with examples of each problem."""

    def __init__(self, dataset: str, archives: dict[Path, Path] | None = None) -> None:
        """Create an empty report.

        Args:
            dataset: Dataset title written into the report.
            archives: Scratch folder an archive was unpacked into -> the archive; the scratch folder is removed after
                the run, so paths below it are shown as paths inside the archive (``data.zip/a/b.json``).
        """
        self.dataset = dataset
        self.archives = archives or {}
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.box_drops: dict[str, Counter] = defaultdict(Counter)
        self.image_skips: dict[str, Counter] = defaultdict(Counter)
        self.class_counts: dict[str, Counter] = defaultdict(Counter)
        self.examples: dict[str, list[str]] = defaultdict(list)
        self.issue_totals: Counter = Counter()
        self.notes: list[str] = []

    def count(self, split: str, key: str, n: int = 1) -> None:
        """Add ``n`` to counter ``key`` of ``split``."""
        self.counts[split][key] += n

    def show(self, text: str) -> str:
        """Return ``text`` with paths in unpacked archives written as paths inside the archive (see ``archives``)."""
        for scratch, archive in self.archives.items():
            text = text.replace(str(scratch), str(archive))
        return text

    def issue(self, reason: str, where: str) -> None:
        """Record one example of a problem (file:line or file plus detail) under ``reason``."""
        self.issue_totals[reason] += 1
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            self.examples[reason].append(self.show(where))

    def drop_box(self, split: str, reason: str, where: str, n: int = 1) -> None:
        """Count ``n`` native boxes that are not written as labels, and why."""
        self.count(split, "boxes_in", n)
        self.box_drops[split][reason] += n
        self.issue(reason, where)

    def skip_image(self, split: str, reason: str, where: str) -> None:
        """Count an input image that is not written, and why."""
        self.count(split, "images_in")
        self.image_skips[split][reason] += 1
        self.issue(reason, where)

    def note(self, text: str) -> None:
        """Add a free-text remark (e.g. a skipped folder) shown under the table and kept in the JSON."""
        self.notes.append(self.show(text))

    def splits(self) -> list[str]:
        """Return the splits that have any entry, in train/val/test order, the unassigned bucket last."""
        seen = set(self.counts) | set(self.box_drops) | set(self.image_skips)
        return [s for s in (*SPLITS, UNASSIGNED) if s in seen]

    def totals(self, split: str) -> dict[str, int]:
        """Return the headline numbers of one split, derived so that in = out + dropped holds by construction."""
        counts = self.counts[split]
        return {
            "images_in": counts["images_in"],
            "images_out": counts["images_out"],
            "background_images": counts["background_images"],
            "images_without_annotation": counts["images_without_annotation"],
            "annotations_without_image": counts["annotations_without_image"],
            "images_skipped": sum(self.image_skips[split].values()),
            "boxes_in": counts["boxes_in"],
            "boxes_out": counts["boxes_out"],
            "boxes_clipped": counts["boxes_clipped"],
            "boxes_dropped": sum(self.box_drops[split].values()),
            "renamed_duplicate_stems": counts["renamed_duplicate_stems"],
            "exif_rotated_images": counts["exif_rotated_images"],
            "painted_images": counts["painted_images"],
            "duplicates_of_earlier_split": counts["duplicates_of_earlier_split"],
        }

    def to_dict(self) -> dict:
        """Return the report as JSON-serialisable data with sorted keys, so re-runs produce identical files."""
        return {
            "dataset": self.dataset,
            "splits": {
                split: {
                    **self.totals(split),
                    "boxes_dropped_by_reason": dict(sorted(self.box_drops[split].items())),
                    "images_skipped_by_reason": dict(sorted(self.image_skips[split].items())),
                    "boxes_per_class": dict(sorted(self.class_counts[split].items())),
                }
                for split in self.splits()
            },
            "issues": {
                reason: {"count": self.issue_totals[reason], "examples": sorted(self.examples[reason])}
                for reason in sorted(self.issue_totals)
            },
            "notes": self.notes,
        }

    def table(self) -> str:
        """Return the per-split summary as a fixed-width text table with the drop/skip reasons below it."""
        splits = self.splits()
        rows = [(k, [self.totals(s)[k] for s in splits]) for k in (self.totals(splits[0]) if splits else {})]
        for label, table in (("boxes dropped", self.box_drops), ("images skipped", self.image_skips)):
            reasons = sorted({r for s in splits for r in table[s]})
            rows += [(f"  {label}: {r}", [table[s][r] for s in splits]) for r in reasons]
        width = max((len(name) for name, _ in rows), default=10) + 2
        lines = [f"{self.dataset} conversion report", "".ljust(width) + "".join(s.rjust(12) for s in splits)]
        lines += [name.ljust(width) + "".join(str(v).rjust(12) for v in values) for name, values in rows]
        for reason in sorted(self.issue_totals):
            lines.append(f"e.g. {reason}: {self.examples[reason][0]}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------------
# Finding input files


def check_sources(sources: Iterable[Path | str]) -> list[Path]:
    """Resolve --source arguments and check that each is a folder or a file (an archive), without reading them.

    Returns:
        The resolved paths, in the order given.

    Raises:
        ConversionError: If a source does not exist.
    """
    resolved = [Path(s).expanduser().resolve() for s in sources]
    for source in resolved:
        if not source.is_dir() and not source.is_file():
            raise ConversionError(f"--source {source} does not exist")
    return resolved


def resolve_sources(sources: list[Path], dest: Path) -> list[Path]:
    """Turn checked --source paths into folders to search, unpacking archives into ``dest/.extracted``.

    The extraction folder name is fixed (index and archive name) so that re-runs sort files in the same order. The
    folder is claimed first (see :func:`claim_dest`), so a scratch folder left by a killed run is never "foreign".

    Args:
        sources: Paths from :func:`check_sources`: folders, or .zip / .tar (.tar.gz, .tgz, .tar.bz2, .tar.xz)
            archives, see :func:`extract_archive`.
        dest: Output folder; archives are unpacked below it and removed by :func:`cleanup_extracted`.

    Returns:
        Folders to search, in the order given.

    Raises:
        ConversionError: If an archive cannot be read or would write outside its scratch folder.
    """
    roots = []
    for index, source in enumerate(sources):
        if source.is_dir():
            roots.append(source)
        else:
            claim_dest(dest)
            target = dest / EXTRACT_DIR_NAME / f"{index}_{source.name}"
            shutil.rmtree(target, ignore_errors=True)
            extract_archive(source, target)
            roots.append(target)
    return roots


def _leaves_folder(name: str) -> bool:
    """Return True if an archive member name is absolute or climbs out of the folder it is extracted into."""
    name = name.replace("\\", "/")
    normal = posixpath.normpath(name)
    return name.startswith("/") or bool(re.match(r"^[A-Za-z]:", name)) or normal == ".." or normal.startswith("../")


def _parts(name: str) -> list[str]:
    """Split an archive path into its components, leaving out empty ones and ``.``."""
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def _link_key(name: str) -> str:
    """Compare archive paths as case-insensitive, normalisation-insensitive file systems (macOS, Windows) do."""
    return unicodedata.normalize("NFC", name).casefold()


def _symlink_problem(name: str, target: str, symlinks: set[str]) -> str | None:
    """Say why a symbolic link member is unsafe, or None: its target leaves the folder or passes through a link.

    The target is walked component by component from the link's folder; passing through any symbolic link member of
    the archive (before or after this one: extraction order does not matter to the result) is refused, since ``..``
    after a link follows the link's target, which a lexical check cannot see. A hard link is a plain file, so a target
    that is one is fine (GNU tar stores every second name of a file as a hard link).
    """
    target = target.replace("\\", "/")
    if target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        return "is absolute"
    parts = _parts(posixpath.dirname(name))
    for component in _parts(target):
        if component == "..":
            if not parts:
                return "leaves the extraction folder"
            parts.pop()
        else:
            parts.append(component)
            if _link_key("/".join(parts)) in symlinks:
                return f"passes through the link {'/'.join(parts)}"
    return None


def unsafe_tar_members(members: list[tarfile.TarInfo]) -> list[str]:
    """Name the members of a tar archive that could write outside the folder it is extracted into.

    Refused: absolute names and names with a ``..`` component (after a link, ``..`` climbs from the link's target,
    whatever the name looks like); symbolic links whose target is absolute, climbs out, or passes through any link of
    the archive; hard links to a name that is absolute, has ``..`` or is or passes through a symbolic link; any member
    stored below a link, or written over a symbolic link of the same name (opening it would follow the link); devices
    and FIFOs. Links are collected from the whole archive first, so their order in it does not matter. Paths are
    compared case-insensitively, as on macOS and Windows. The check is lexical, so it needs no file system and behaves
    the same on every Python version; where tarfile has the "data" extraction filter (3.12, and 3.9.17+ / 3.10.12+ /
    3.11.4+) it is applied as well.

    Returns:
        ``"<name>: <why>"`` for each refused member, in archive order.
    """
    symlinks = {_link_key("/".join(_parts(m.name))) for m in members if m.issym()}
    links = symlinks | {_link_key("/".join(_parts(m.name))) for m in members if m.islnk()}
    refused = []
    for member in members:
        parts = _parts(member.name)
        name = "/".join(parts)
        below = [p for p in ("/".join(parts[:i]) for i in range(1, len(parts))) if _link_key(p) in links]
        if _leaves_folder(member.name) or ".." in parts:
            refused.append(f"{member.name}: path leaves the extraction folder or contains '..'")
        elif below:
            refused.append(f"{member.name}: stored below a link ({below[0]})")
        elif not member.issym() and _link_key(name) in symlinks:
            refused.append(f"{member.name}: would be written through the symbolic link of the same name")
        elif member.issym():
            why = _symlink_problem(name, member.linkname, symlinks)
            if why:
                refused.append(f"{member.name}: symbolic link to {member.linkname} {why}")
        elif member.islnk():
            target = _parts(member.linkname)
            through = [p for p in ("/".join(target[:i]) for i in range(1, len(target) + 1)) if _link_key(p) in symlinks]
            if _leaves_folder(member.linkname) or ".." in target:
                refused.append(f"{member.name}: hard link to {member.linkname} leaves the extraction folder")
            elif through:
                refused.append(f"{member.name}: hard link to {member.linkname} passes through the link {through[0]}")
        elif not (member.isfile() or member.isdir()):
            refused.append(f"{member.name}: device or FIFO member")
    return refused


ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
# What a damaged or truncated archive raises while it is read: tarfile, zipfile and each decompressor have their own
_DAMAGED_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError)


def extract_archive(source: Path, target: Path) -> None:
    """Unpack a .zip or tar archive into ``target``, refusing archives with members that would land outside it.

    Args:
        source: The archive.
        target: Scratch folder (created).

    Raises:
        ConversionError: If the file is no supported archive, cannot be read to its end (a truncated or damaged
            download; what was extracted is removed with the scratch folder), or names every member that would leave
            ``target`` (nothing is extracted then).
    """
    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                refused = [f"{n}: path leaves the extraction folder" for n in archive.namelist() if _leaves_folder(n)]
                if not refused:  # zipfile never creates links; it would rename these silently, so refuse them instead
                    archive.extractall(target)
        elif tarfile.is_tarfile(source):
            with tarfile.open(source) as archive:
                members = archive.getmembers()
                refused = unsafe_tar_members(members)
                if not refused and hasattr(tarfile, "data_filter"):
                    archive.extractall(target, members=members, filter="data")
                elif not refused:
                    archive.extractall(target, members=members)  # noqa: S202 (members checked above)
        elif source.name.lower().endswith(ARCHIVE_SUFFIXES):
            raise ConversionError(f"--source {source} cannot be read as an archive: truncated or damaged download?")
        else:
            raise ConversionError(
                f"--source {source} is not a folder or a supported archive ({', '.join(ARCHIVE_SUFFIXES)})"
            )
    except _DAMAGED_ARCHIVE_ERRORS as e:  # tarfile's FilterError (the data filter refusing a member) is a TarError
        raise ConversionError(
            f"--source {source}: refused or failed while extracting ({type(e).__name__}: {e}); if the download is "
            "truncated or damaged, fetch it again"
        ) from e
    if refused:
        shown = "; ".join(refused[:5]) + (f"; and {len(refused) - 5} more" if len(refused) > 5 else "")
        raise ConversionError(
            f"--source {source}: refused to extract, {len(refused)} member(s) would be written outside the "
            f"extraction folder: {shown}. Extract it yourself after checking it, and pass the folder"
        )


def cleanup_extracted(dest: Path) -> None:
    """Remove archives unpacked by :func:`resolve_sources`."""
    shutil.rmtree(dest / EXTRACT_DIR_NAME, ignore_errors=True)


def find_files(roots: Iterable[Path], suffixes: set[str], exclude: Path | None = None) -> list[Path]:
    """Return all files below ``roots`` whose lower-case suffix is in ``suffixes``, sorted, skipping ``exclude``.

    Links to folders are followed (datasets on shared storage are often linked in, e.g. ``train/image`` pointing to
    another disk); each real folder is read once, under the first path that reaches it in sorted order, so link loops
    end and a folder reached twice gives no duplicates.

    Args:
        roots: Folders to walk.
        suffixes: Lower-case suffixes without the dot, e.g. ``{"jpg", "png"}``.
        exclude: A folder to leave out (the output folder, which may lie inside a source folder).

    Returns:
        Sorted file paths (sorting makes every later decision, such as duplicate-stem renaming, deterministic).
    """
    exclude = exclude.resolve() if exclude else None
    found, seen = set(), set()
    for root in roots:
        for folder, subfolders, files in os.walk(root, followlinks=True):
            here = Path(folder)
            real = here.resolve()
            if real == exclude or real in seen:
                subfolders[:] = []
                continue
            seen.add(real)
            subfolders[:] = sorted(d for d in subfolders if d != "__MACOSX")  # macOS zip resource forks are not data
            found.update(here / f for f in files if f.rsplit(".", 1)[-1].lower() in suffixes and not f.startswith("._"))
    return sorted(found)


def find_images(roots: Iterable[Path], exclude: Path | None = None) -> list[Path]:
    """Return every image Ultralytics can read below ``roots`` (see :func:`find_files`)."""
    return find_files(roots, IMG_FORMATS, exclude)


def index_by_name(paths: Iterable[Path]) -> dict[str, list[Path]]:
    """Map lower-case file name to the paths with that name (file names vary in case across OS and tools)."""
    index: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        index[path.name.lower()].append(path)
    return index


def split_from_name(name: str) -> str | None:
    """Guess a split from a folder or file name such as ``VisDrone2019-DET-val`` or ``instances_train``.

    Returns:
        ``"train"``, ``"val"`` or ``"test"``, or None if the name says none of them.
    """
    tokens = re.split(r"[^a-z]+", name.lower())
    for split, words in (("train", {"train", "training"}), ("val", {"val", "valid", "validation"}), ("test", {"test"})):
        if words & set(tokens):
            return split
    return None


# --------------------------------------------------------------------------------------------------------------------
# Geometry


def exif_orientation(image: Image.Image) -> int:
    """Return the EXIF orientation (1-8) of an open image, 1 when absent or unreadable."""
    try:
        value = int(image.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except Exception:  # malformed EXIF blocks raise assorted errors inside Pillow; Ultralytics treats them as upright
        return 1
    return value if value in _ORIENTATION_TRANSPOSE else 1


def stored_to_displayed(
    xyxy: tuple[float, float, float, float], orientation: int, stored_size: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Map a box from stored-pixel coordinates to the coordinates of the EXIF-transposed (displayed) image.

    Args:
        xyxy: Box corners in the stored frame.
        orientation: EXIF orientation value; 1 (or unknown) leaves the box unchanged.
        stored_size: (width, height) of the stored pixels.

    Returns:
        Box corners in the frame produced by ``PIL.ImageOps.exif_transpose`` (what Ultralytics trains on).
    """
    width, height = stored_size
    x1, y1, x2, y2 = xyxy
    corner_maps = {  # where a stored point (x, y) lands after each transpose
        Image.Transpose.FLIP_LEFT_RIGHT: lambda x, y: (width - x, y),
        Image.Transpose.ROTATE_180: lambda x, y: (width - x, height - y),
        Image.Transpose.FLIP_TOP_BOTTOM: lambda x, y: (x, height - y),
        Image.Transpose.TRANSPOSE: lambda x, y: (y, x),
        Image.Transpose.ROTATE_270: lambda x, y: (height - y, x),
        Image.Transpose.TRANSVERSE: lambda x, y: (height - y, width - x),
        Image.Transpose.ROTATE_90: lambda x, y: (y, width - x),
    }
    transpose = _ORIENTATION_TRANSPOSE.get(orientation)
    if transpose is None:
        return xyxy
    (ax, ay), (bx, by) = corner_maps[transpose](x1, y1), corner_maps[transpose](x2, y2)
    return min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)


def clip_box(
    xyxy: tuple[float, float, float, float], size: tuple[int, int]
) -> tuple[tuple[float, float, float, float], bool]:
    """Clip a box to the image.

    Args:
        xyxy: Box corners in pixels.
        size: (width, height) of the image.

    Returns:
        The clipped box and whether clipping changed it.
    """
    width, height = size
    x1, y1, x2, y2 = xyxy
    clipped = (min(max(x1, 0.0), width), min(max(y1, 0.0), height), min(max(x2, 0.0), width), min(max(y2, 0.0), height))
    return clipped, clipped != (x1, y1, x2, y2)


def to_yolo_line(class_id: int, xyxy: tuple[float, float, float, float], size: tuple[int, int]) -> str:
    """Format one label row ``class x_center y_center width height`` normalised to 0-1."""
    width, height = size
    x1, y1, x2, y2 = xyxy
    values = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
    return f"{class_id} " + " ".join(f"{v:.6f}" for v in values)


# --------------------------------------------------------------------------------------------------------------------
# Writing


@dataclass
class _ProbedImage:
    """Facts about a readable image: stored size, displayed size and EXIF orientation."""

    stored_size: tuple[int, int]
    displayed_size: tuple[int, int]
    orientation: int


HEIF_SUFFIXES = {".heic", ".heif"}
# What reading a file that is no usable image raises: Pillow's DecompressionBombError (a header claiming more than
# twice Image.MAX_IMAGE_PIXELS) is neither an OSError nor a ValueError
IMAGE_ERRORS = (OSError, ValueError, Image.DecompressionBombError)


def check_image_signature(path: Path) -> None:
    """Check that a file's first bytes are those of an image format Ultralytics reads, before Pillow opens it.

    Ultralytics replaces ``PIL.Image.open`` with a version that, on any file Pillow cannot identify, pip-installs
    pi-heif and retries, so a text file named ``.jpg`` would end in an install attempt and a "No module named
    'pi_heif'" message. Checking the signature first keeps that path for real HEIC/HEIF files only.

    Raises:
        ValueError: If the content matches no such format (the message shows the first bytes), or the file is
            HEIC/HEIF and pi-heif is not installed.
    """
    if path.suffix.lower() in HEIF_SUFFIXES:
        try:
            import pi_heif  # noqa: F401  (decoder Ultralytics registers for HEIC/HEIF)
        except ImportError:
            raise ValueError("HEIC/HEIF image: reading it needs the pi-heif package (pip install pi-heif)") from None
        return
    Image.init()
    with open(path, "rb") as f:
        prefix = f.read(64)
    formats = {"JPEG2000"} | {name for name in Image.OPEN if name.lower() in IMG_FORMATS}
    if not any(accept is not None and accept(prefix) for name, (_, accept) in Image.OPEN.items() if name in formats):
        kind = "an empty file" if not prefix else f"content starting with {prefix[:12]!r}"
        raise ValueError(
            f"not an image: {kind} matches no image format Ultralytics reads ({', '.join(sorted(formats))})"
        )


def probe_image(path: Path) -> _ProbedImage:
    """Open and fully decode an image, so truncated files fail here rather than in the training loop.

    Raises:
        ValueError: If the file is no image (:func:`check_image_signature`), the format is not one Ultralytics trains
            on, or the image is smaller than 10 px (its limit).
        OSError: If the file cannot be decoded (unreadable or truncated).
    """
    check_image_signature(path)
    with Image.open(path) as image:
        if (image.format or "").lower() not in IMG_FORMATS | {"jpeg2000"}:
            raise ValueError(f"format {image.format} is not an Ultralytics image format")
        displayed_size = exif_size(image)
        orientation = exif_orientation(image)
        stored_size = image.size
        image.load()  # full decode: Pillow raises OSError on truncated data
    if min(displayed_size) < 10:
        raise ValueError(f"image size {displayed_size} is below Ultralytics' 10-pixel minimum")
    return _ProbedImage(stored_size, displayed_size, orientation)


def read_manifest(dest: Path) -> list[str]:
    """Return the relative paths an earlier run recorded in ``dest``'s manifest (empty if there is none)."""
    manifest = dest / MANIFEST_NAME
    if not manifest.is_file():
        return []
    return [line for line in manifest.read_text(encoding="utf-8").splitlines() if line]


def is_one_line(name: str) -> bool:
    """Return True if ``name`` holds no line break, so a file that lists one name a line can hold it.

    Every separator ``str.splitlines`` knows counts (LF, CR, NEL, LINE SEPARATOR...): the manifest is read with it.
    """
    return name.splitlines() == [name]


def check_listable_names(samples: Iterable[Sample], split_lists: dict[str, list[str]] | None) -> None:
    """Refuse file names that the one-name-a-line lists (``prepare_files.txt``, ``splits/*.txt``) cannot hold.

    Raises:
        ConversionError: Naming the first such file (its image name becomes an output name).
    """
    names = [s.image.name for s in samples if s.image is not None]
    names += [name for files in (split_lists or {}).values() for name in files]
    bad = [name for name in names if not is_one_line(name)]
    if bad:
        raise ConversionError(
            f"{len(bad)} file name(s) contain a line break, e.g. {bad[0]!r}: {MANIFEST_NAME} and splits/*.txt list "
            "one name a line (as Ultralytics' list files do) and cannot hold them; rename those files. Nothing was "
            "deleted or written"
        )


def record_written(dest: Path, paths: Iterable[Path], replace: bool = False) -> None:
    """Add files below ``dest`` to its manifest (or replace the list), so a later run may delete exactly those.

    Args:
        dest: Folder holding the manifest.
        paths: Files below ``dest``.
        replace: Write only ``paths`` (plus the manifest itself) instead of adding them to the recorded ones.

    Raises:
        ConversionError: If a path contains a line break (it would be read back as other names); nothing is written.
    """
    recorded = [] if replace else read_manifest(dest)
    names = set(recorded)
    for path in paths:
        name = Path(path).resolve().relative_to(dest.resolve()).as_posix()
        if not is_one_line(name):
            raise ConversionError(f"{name!r} contains a line break: {dest / MANIFEST_NAME} lists one name a line")
        if name not in names:
            names.add(name)
            recorded.append(name)
    if MANIFEST_NAME not in names:
        recorded.insert(0, MANIFEST_NAME)
    (dest / MANIFEST_NAME).write_text("".join(f"{name}\n" for name in recorded), encoding="utf-8")


def _files_below(dest: Path, skip: set[str]) -> Iterator[str]:
    """Yield every file, link and special entry below ``dest`` as a relative path, without entering ``skip`` folders."""
    for folder, subfolders, files in os.walk(dest):
        here = Path(folder)
        links = [d for d in subfolders if (here / d).is_symlink()]  # listed, never entered: a link is one entry
        subfolders[:] = [
            d for d in subfolders if d not in links and (here / d).relative_to(dest).as_posix() not in skip
        ]
        for name in (*files, *links):
            yield (here / name).relative_to(dest).as_posix()


def check_dest(dest: Path) -> set[str]:
    """Check that ``dest`` may receive a (re-)run, deleting and writing nothing.

    Files an earlier run recorded in ``dest/prepare_files.txt`` (the manifest) may be replaced. Anything else below
    ``dest`` - a file the user put there, or the output of an older version that kept no manifest - is foreign. Not
    counted as foreign: Ultralytics' ``labels/<split>.cache`` files (left in place; Ultralytics rebuilds a cache whose
    labels changed) and, in a folder with a manifest, the ``.extracted`` scratch folder.

    Returns:
        The relative paths the manifest records (empty for a new or empty folder).

    Raises:
        ConversionError: If ``dest`` is a file, its manifest names paths outside it or in the scratch folder, or it
            holds files no earlier run recorded.
    """
    if dest.exists() and not dest.is_dir():
        raise ConversionError(f"--dest {dest} is a file, not a folder")
    if not dest.exists():
        return set()
    recorded = set(read_manifest(dest))
    escaping = sorted(
        name for name in recorded if _leaves_folder(name) or _parts(posixpath.normpath(name))[:1] == [EXTRACT_DIR_NAME]
    )
    if escaping:  # the list is a plain text file: never let an edited one point a deletion outside dest
        raise ConversionError(
            f"{dest / MANIFEST_NAME} names files outside --dest or in its scratch folder ({', '.join(escaping[:5])}); "
            "refused"
        )
    skip = {EXTRACT_DIR_NAME} if recorded else set()
    foreign = [
        name
        for name in _files_below(dest, skip)
        if name not in recorded
        and not (name.startswith("labels/") and name.endswith(LABEL_CACHE_SUFFIX) and name.count("/") == 1)
    ]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ConversionError(
            f"--dest {dest} holds {len(foreign)} file(s) that no earlier scsa-yolo prepare run recorded in "
            f"{MANIFEST_NAME} ({shown}); nothing was deleted. Use an empty or new folder, or move those files away"
        )
    return recorded


def claim_dest(dest: Path) -> None:
    """Create ``dest`` and its manifest if there is none yet, so what is written next is never taken as foreign."""
    dest.mkdir(parents=True, exist_ok=True)
    if not (dest / MANIFEST_NAME).is_file():
        record_written(dest, [])


def release_dest(dest: Path, created: bool) -> None:
    """Undo :func:`claim_dest` after a run that stopped before replacing anything.

    The claim-only manifest goes, and ``dest`` too if this run created it and it is empty.
    """
    if read_manifest(dest) == [MANIFEST_NAME]:
        (dest / MANIFEST_NAME).unlink()
    if created and dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()


def prepare_dest(dest: Path) -> None:
    """Make ``dest`` ready for writing: delete exactly the files an earlier run recorded, or refuse.

    Called only once the arguments are checked and the sources parsed (a bad option or source then costs nothing).
    The ``.extracted`` scratch folder, which may hold this run's unpacked sources, is left to
    :func:`cleanup_extracted`.

    Raises:
        ConversionError: See :func:`check_dest` (checked again: nothing is deleted unless it passes).
    """
    recorded = check_dest(dest)
    dest.mkdir(parents=True, exist_ok=True)
    folders = set()
    for name in sorted(recorded):
        path = dest / name
        if path.is_file() or path.is_symlink():
            path.unlink()
        folders.update(p for p in path.parents if p != dest and dest in p.parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):  # deepest first; only empty ones go
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()
    # Claim the folder first, so a run that is interrupted half-way can still be repeated into it
    (dest / REPORT_NAME).write_text(json.dumps({"status": "conversion did not finish"}) + "\n", encoding="utf-8")
    record_written(dest, [dest / REPORT_NAME], replace=True)


def _unique_stems(samples: list[Sample], report: ConversionReport) -> dict[int, str]:
    """Give each image an output stem that no other image of its split uses (labels/ is keyed by stem only).

    The first image in sorted source-path order keeps its stem; later ones get ``__2``, ``__3``... (case-insensitive,
    since two stems differing in case collide on Windows and macOS file systems).

    Returns:
        Output stem per sample position in ``samples``.
    """
    taken: dict[str, set[str]] = defaultdict(set)
    stems = {}
    for position, sample in enumerate(samples):
        if sample.image is None:
            continue
        stem, used = sample.image.stem, taken[sample.split]
        candidate, n = stem, 1
        while candidate.lower() in used:
            n += 1
            candidate = f"{stem}__{n}"
        if n > 1:
            report.count(sample.split, "renamed_duplicate_stems")
            report.issue("renamed_duplicate_stem", f"{sample.image} -> {candidate}{sample.image.suffix}")
        used.add(candidate.lower())
        stems[position] = candidate
    return stems


def _place_image(source: Path, target: Path, hardlink: bool) -> None:
    """Copy (or hard-link) an image file unchanged, so EXIF orientation and pixels stay as the owners shipped them."""
    if hardlink:
        try:
            os.link(source, target)
            return
        except OSError:  # cross-device or unsupported: a copy is always correct
            pass
    shutil.copyfile(source, target)


def _paint_regions(source: Path, target: Path, regions: list[tuple[float, float, float, float]]) -> None:
    """Save the displayed (EXIF-applied) image with ``regions`` filled with its mean colour."""
    with Image.open(source) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    mean_colour = tuple(int(round(c)) for c in np.asarray(image).reshape(-1, 3).mean(0))
    draw = ImageDraw.Draw(image)
    for x1, y1, x2, y2 in regions:
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=mean_colour)
    image.save(target, quality=95) if target.suffix.lower() in {".jpg", ".jpeg"} else image.save(target)


def _convert_sample(
    sample: Sample, stem: str, spec: DatasetSpec, dest: Path, options: ConvertOptions, report: ConversionReport
) -> None:
    """Check, map, clip and write one sample, counting every box and image into ``report``."""
    split, where = sample.split, str(sample.image)
    try:
        probed = probe_image(sample.image)
    except Exception as e:  # Pillow raises many exception types for bad files; each one means "skip this image"
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

    def displayed(box: RawBox) -> tuple[float, float, float, float]:
        return stored_to_displayed(box.xyxy, probed.orientation, probed.stored_size) if boxes_are_stored else box.xyxy

    lines = []
    for box in sample.boxes:
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box.xyxy):
            report.drop_box(split, "non_finite", f"{box.origin}: {box.xyxy}")  # NaN passes every clip and comparison
            continue
        class_id = spec.class_index(box.label)
        if class_id is None:
            reason = "excluded_class" if spec.is_excluded(box.label) else "unknown_class"
            report.drop_box(split, reason, f"{box.origin}: '{box.label}'")
            continue
        xyxy, clipped = clip_box(displayed(box), probed.displayed_size)
        if xyxy[2] <= xyxy[0] or xyxy[3] <= xyxy[1]:
            reason = "outside_image" if clipped else "degenerate"
            report.drop_box(split, reason, f"{box.origin}: {box.xyxy}")
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

    image_target = dest / "images" / split / f"{stem}{sample.image.suffix}"
    if options.fill_ignored and sample.ignore_regions:
        finite = [r for r in sample.ignore_regions if all(math.isfinite(v) for v in r.xyxy)]
        regions = [clip_box(displayed(r), probed.displayed_size)[0] for r in finite]
        _paint_regions(sample.image, image_target, regions)
        report.count(split, "painted_images")
    else:
        _place_image(sample.image, image_target, options.hardlink)
    (dest / "labels" / split / f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    report.count(split, "images_in")
    report.count(split, "images_out")
    if not lines:
        report.count(split, "background_images")


def leave_out_unlabelled(samples: list[Sample], report: ConversionReport, keep_backgrounds: bool) -> list[Sample]:
    """Decide what happens to images that have no annotation file; count and report every one left out.

    A folder in which no image has an annotation is an unlabelled set (e.g. URPC's ``test-B-image/``, whose images
    are full of unlabelled objects): its images are left out with a note naming the folder, always. A single image
    without annotation in a labelled folder is left out too, unless ``keep_backgrounds`` says such images are
    backgrounds. Images listed in an annotation file without boxes (COCO) have an annotation and are kept.

    Args:
        samples: Parsed samples.
        report: Receives the skips (reasons ``unlabelled_folder``, ``image_without_annotation``) and notes.
        keep_backgrounds: Keep lone unannotated images as background images.

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


def _file_digest(path: Path) -> str:
    """Return the SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pixel_digest(path: Path) -> str | None:
    """Return the SHA-256 of an image's decoded RGB pixels and size, or None if it cannot be decoded."""
    try:
        check_image_signature(path)
        with Image.open(path) as image:
            pixels = image.convert("RGB")
            return hashlib.sha256(f"{pixels.size}".encode() + pixels.tobytes()).hexdigest()
    except IMAGE_ERRORS:  # reported by the image probe when the sample is written
        return None


def _image_dimensions(path: Path) -> tuple[int, int] | None:
    """Return (width, height) from the image header without decoding, or None for files that are no image."""
    try:
        check_image_signature(path)
        with Image.open(path) as image:
            return image.size
    except IMAGE_ERRORS:
        return None


def find_cross_split_duplicates(
    samples: list[Sample], report: ConversionReport, drop: bool, pixels: bool = False
) -> list[Sample]:
    """Report images identical to an image of an earlier split; optionally leave them out.

    A copy of a training image in val or test inflates every metric measured there. By default files are compared
    by size first and hashed (SHA-256) only when sizes collide across splits: byte-identical copies. With ``pixels``
    the decoded RGB pixels are hashed instead (images whose dimensions collide across splits), which also finds
    copies that differ only in metadata or container (EXIF stripped, PNG saved as BMP); it decodes those images
    once more.

    Args:
        samples: Samples with their final splits.
        report: Receives each duplicate (``duplicate_across_splits`` with both names) and per-split counts.
        drop: Leave the later copy out (skip reason ``duplicate_of_earlier_split``, its boxes ``image_skipped``).
        pixels: Compare decoded pixels rather than file bytes.

    Returns:
        The samples to write.
    """
    by_size: dict[object, list[Sample]] = defaultdict(list)
    for sample in samples:
        if sample.image is not None and sample.split in SPLITS and sample.image.is_file():  # dangling links: later
            size = _image_dimensions(sample.image) if pixels else sample.image.stat().st_size
            if size is not None:
                by_size[size].append(sample)
    by_digest: dict[str, list[Sample]] = defaultdict(list)
    candidates = [group for group in by_size.values() if len({s.split for s in group}) > 1]
    for sample in TQDM([s for group in candidates for s in group], desc="Looking for copies across splits"):
        digest = _pixel_digest(sample.image) if pixels else _file_digest(sample.image)
        if digest is not None:
            by_digest[digest].append(sample)
    dropped = set()
    for group in by_digest.values():
        first = min(SPLITS.index(s.split) for s in group)
        keeper = next(s for s in group if SPLITS.index(s.split) == first)
        for sample in group:
            if SPLITS.index(sample.split) == first:
                continue
            report.count(sample.split, "duplicates_of_earlier_split")
            report.issue(
                "duplicate_across_splits", f"{sample.image} ({sample.split}) == {keeper.image} ({keeper.split})"
            )
            if drop:
                dropped.add(id(sample))
                report.skip_image(sample.split, "duplicate_of_earlier_split", str(sample.image))
                if sample.boxes:
                    report.drop_box(sample.split, "image_skipped", str(sample.image), len(sample.boxes))
    if report.issue_totals["duplicate_across_splits"]:
        n = report.issue_totals["duplicate_across_splits"]
        action = "left out" if drop else "kept (--drop-eval-duplicates leaves them out)"
        kind = "pixel-identical" if pixels else "byte-identical"
        report.note(f"{n} image(s) {kind} to an image of an earlier split, {action}: see duplicate_across_splits")
    return [s for s in samples if id(s) not in dropped]


def write_dataset(
    samples: list[Sample],
    spec: DatasetSpec,
    dest: Path,
    options: ConvertOptions,
    report: ConversionReport,
    split_lists: dict[str, list[str]] | None = None,
) -> dict:
    """Write samples in the Ultralytics layout with ``data.yaml`` and the JSON report, and print the report table.

    Args:
        samples: Parsed samples of all splits.
        spec: Dataset definition (class order, notes).
        dest: Output folder, already cleaned by :func:`prepare_dest`.
        options: Shared behaviour switches.
        report: Report that already holds what the parser counted.
        split_lists: Optional ``{split: [source image paths]}`` for splits the tool decided itself; written to
            ``splits/<split>.txt`` so the split can be reproduced and audited.

    Returns:
        The report as a dictionary (also saved as ``prepare_report.json``).

    Raises:
        ConversionError: If no image or no box could be written.
    """
    samples = leave_out_unlabelled(samples, report, options.unlabelled_backgrounds)
    samples = find_cross_split_duplicates(samples, report, options.drop_eval_duplicates, options.pixel_duplicates)
    samples = sorted(samples, key=lambda s: (s.split, str(s.image or s.annotation)))
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

    used_splits = sorted({s.split for s in samples if s.image}, key=SPLITS.index)
    for split in used_splits:
        (dest / "images" / split).mkdir(parents=True, exist_ok=True)
        (dest / "labels" / split).mkdir(parents=True, exist_ok=True)
    stems = _unique_stems(samples, report)
    planned = [dest / name for name in ("data.yaml", REPORT_NAME)]
    planned += [dest / "splits" / f"{split}.txt" for split in split_lists or {}]
    for position, sample in enumerate(samples):
        if sample.image is not None:
            stem = stems[position]
            planned += [dest / "images" / sample.split / f"{stem}{sample.image.suffix}"]
            planned += [dest / "labels" / sample.split / f"{stem}.txt"]
    record_written(dest, planned)  # before writing: an interrupted run can still be repeated into dest
    for position, sample in enumerate(TQDM(samples, desc=f"Converting {spec.title}", unit="img")):
        if sample.image is not None:
            _convert_sample(sample, stems[position], spec, dest, options, report)

    total_images = sum(report.counts[s]["images_out"] for s in used_splits)
    total_boxes = sum(report.counts[s]["boxes_out"] for s in used_splits)
    written_splits = [s for s in used_splits if report.counts[s]["images_out"]]  # data.yaml names no empty folder
    if written_splits and not {"val", "test"} & set(written_splits):
        report.note("no val or test image written: data.yaml's val is images/train, so val scores are training scores")
    if split_lists:
        for split, files in split_lists.items():
            (dest / "splits").mkdir(exist_ok=True)
            (dest / "splits" / f"{split}.txt").write_text("".join(f"{f}\n" for f in files), encoding="utf-8")
    result = report.to_dict()
    (dest / REPORT_NAME).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(report.table())
    record_written(dest, [p for p in planned if p.exists()], replace=True)  # exactly what this run wrote
    if not total_images or not total_boxes:
        raise ConversionError(
            f"nothing usable found for {spec.title}: {total_images} images and {total_boxes} boxes written; "
            f"see {dest / REPORT_NAME} for what was skipped and why (is --source the extracted {spec.title} download?)"
        )
    write_data_yaml(spec, dest, written_splits, bool(split_lists))
    record_written(dest, [dest / "data.yaml"])
    return result


def write_data_yaml(spec: DatasetSpec, dest: Path, splits: list[str], has_split_lists: bool) -> Path:
    """Write ``dest/data.yaml`` for Ultralytics, without ``path`` so it resolves relative to its own folder.

    Args:
        spec: Dataset definition.
        dest: Output folder.
        splits: Splits that received images; ``val`` falls back to ``train`` only if there is no other split.
        has_split_lists: Whether ``splits/*.txt`` records a split this tool made.

    Returns:
        Path of the written file.
    """
    data = {split: f"images/{split}" for split in splits}
    data.setdefault("val", data.get("test", data.get("train")))
    data = {k: data[k] for k in SPLITS if k in data}
    data["names"] = dict(enumerate(spec.names))
    header = (
        f"# {spec.title} converted by scsa-yolo prepare {spec.key}\n"
        f"# Source: {spec.source_url}\n"
        f"# Licence: {spec.licence}\n"
        f"# Split: {spec.split_note}\n"
        + ("# Split lists: splits/<split>.txt (source image paths)\n" if has_split_lists else "")
        + f"# Report: {REPORT_NAME}. No 'path' key: Ultralytics resolves the folders relative to this file.\n\n"
    )
    YAML.save(dest / "data.yaml", data, header=header)
    return dest / "data.yaml"


def iter_text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, stripped line) of a text file, tolerating a BOM and stray non-UTF-8 bytes."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for number, line in enumerate(f, 1):
            yield number, line.strip()
