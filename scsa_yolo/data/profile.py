"""Profile a YOLO-format detection dataset: the numbers that make it a "complex scene" set.

For each split of a ``data.yaml``: objects per class, object size in COCO's buckets (small < 32², medium < 96²,
large otherwise, in pixels of the image as Ultralytics loads it, i.e. EXIF-rotated), objects per image and image
brightness (mean grey level 0-255 of the EXIF-rotated image). Saved as ``profile.png`` (matplotlib), ``profile.csv``
(one row per split and class) and ``profile.md`` (the same as Markdown tables plus a per-split summary), and
``preview_<split>.jpg``: the labels drawn on a few images of each split with Ultralytics' ``Annotator``, to see that
the boxes sit on the objects.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps
from ultralytics.data.utils import IMG_FORMATS, check_det_dataset, exif_size, img2label_paths
from ultralytics.utils import LOGGER, TQDM
from ultralytics.utils.ops import segments2boxes
from ultralytics.utils.patches import imread
from ultralytics.utils.plotting import Annotator, colors

from .converters.sources import iter_text_lines
from .dest import DestLock, make_folder
from .errors import DestError, ProfileError
from .images import IMAGE_ERRORS, check_image_signature
from .manifest import MANIFEST_NAME, record_written

SMALL_AREA = 32**2  # COCO object-size buckets, in pixels
LARGE_AREA = 96**2
SIZE_BUCKETS = ("small", "medium", "large")
DARK_LEVEL = 64  # mean grey level below which an image counts as dark (a quarter of the 0-255 range)
BRIGHTNESS_THUMBNAIL = 128  # brightness is measured on a thumbnail: the mean barely changes, decoding is cheaper
PREVIEW_TILE = 320  # side of one preview tile in pixels
PREVIEW_COLUMNS = 4
MALFORMED_ROWS_SHOWN = 20  # malformed label rows listed in profile.md; the count is always complete


@dataclass
class SplitProfile:
    """Statistics of one split.

    Attributes:
        images: Number of images.
        background_images: Images without any object.
        unreadable: Files that are no readable image (left out of every statistic and the preview; named in a
            warning).
        malformed_rows: ``"file:line: why"`` of label rows Ultralytics' label check rejects (left out; see
            :func:`read_label_rows`).
        class_counts: Objects per class name.
        size_counts: Objects per (class name, size bucket).
        objects_per_image: Object count of every image.
        brightness: Mean grey level (0-255) of every image.
    """

    images: int = 0
    background_images: int = 0
    unreadable: list[Path] = field(default_factory=list)
    malformed_rows: list[str] = field(default_factory=list)
    class_counts: Counter = field(default_factory=Counter)
    size_counts: Counter = field(default_factory=Counter)
    objects_per_image: list[int] = field(default_factory=list)
    brightness: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | int]:
        """Return the headline numbers of the split."""
        objects = sum(self.class_counts.values())
        bucket_totals = {b: sum(n for (_, bucket), n in self.size_counts.items() if bucket == b) for b in SIZE_BUCKETS}
        brightness = np.asarray(self.brightness or [np.nan])
        return {
            "images": self.images,
            "background_images": self.background_images,
            "unreadable_images": len(self.unreadable),
            "malformed_label_rows": len(self.malformed_rows),
            "objects": objects,
            "objects_per_image": round(objects / self.images, 2) if self.images else 0.0,
            **{f"{b}_%": round(100 * n / objects, 1) if objects else 0.0 for b, n in bucket_totals.items()},
            "brightness_mean": round(float(np.nanmean(brightness)), 1),
            "brightness_median": round(float(np.nanmedian(brightness)), 1),
            "dark_images_%": round(100 * float(np.mean(brightness < DARK_LEVEL)), 1) if self.brightness else 0.0,
        }


def size_bucket(area: float) -> str:
    """Return the COCO size bucket of an object area in pixels."""
    return "small" if area < SMALL_AREA else "medium" if area < LARGE_AREA else "large"


def list_split_images(split_path: str | list[str]) -> list[Path]:
    """Return the images of a split given as a folder, a list file of image paths, or a list of those."""
    paths = []
    for entry in split_path if isinstance(split_path, list) else [split_path]:
        entry = Path(entry)
        if entry.is_dir():
            paths += sorted(p for p in entry.rglob("*.*") if p.suffix[1:].lower() in IMG_FORMATS)
        elif entry.is_file():  # Ultralytics list file: one path per line, relative to the list's folder
            lines = [ln.strip() for ln in entry.read_text().splitlines() if ln.strip()]
            paths += [(entry.parent / ln).resolve() if not Path(ln).is_absolute() else Path(ln) for ln in lines]
    return paths


def profile_split(images: list[Path], names: dict[int, str], desc: str) -> SplitProfile:
    """Measure one split.

    Args:
        images: Image files; labels are found the Ultralytics way (``images`` -> ``labels``, ``.txt``).
        names: Class names by id.
        desc: Progress-bar label.

    Returns:
        The split's statistics.
    """
    profile = SplitProfile()
    for image_path, label_path in TQDM(zip(images, img2label_paths(images)), total=len(images), desc=desc):
        try:
            check_image_signature(Path(image_path))  # before Image.open: Ultralytics' patch would pip-install pi-heif
            with Image.open(image_path) as image:
                width, height = exif_size(image)
                image.draft("L", (BRIGHTNESS_THUMBNAIL, BRIGHTNESS_THUMBNAIL))  # JPEG: decode at reduced scale
                grey = ImageOps.exif_transpose(image).convert("L")
                grey.thumbnail((BRIGHTNESS_THUMBNAIL, BRIGHTNESS_THUMBNAIL))
        except IMAGE_ERRORS as e:
            LOGGER.warning(f"{image_path}: left out of the profile, {e}")
            profile.unreadable.append(Path(image_path))
            continue
        profile.images += 1
        profile.brightness.append(float(np.asarray(grey).mean()))
        rows, malformed = read_label_rows(label_path, len(names))
        profile.malformed_rows += malformed
        profile.objects_per_image.append(len(rows))
        profile.background_images += not len(rows)
        for class_id, _, _, w, h in rows:
            name = names.get(int(class_id), f"class {int(class_id)}")
            profile.class_counts[name] += 1
            profile.size_counts[(name, size_bucket(w * width * h * height))] += 1
    if profile.malformed_rows:
        shown = "; ".join(profile.malformed_rows[:3])
        LOGGER.warning(
            f"{desc}: {len(profile.malformed_rows)} label rows left out of the profile, Ultralytics discards their "
            f"images as corrupt: {shown}" + ("; ..." if len(profile.malformed_rows) > 3 else "")
        )
    return profile


def _write_tables(profiles: dict[str, SplitProfile], names: list[str], csv_path: Path, md_path: Path) -> None:
    """Write ``profile.csv`` (split x class rows) and ``profile.md`` (summary plus per-class table)."""
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["split", "class", "objects", *SIZE_BUCKETS])
        for split, p in profiles.items():
            for name in names:
                writer.writerow([split, name, p.class_counts[name], *(p.size_counts[(name, b)] for b in SIZE_BUCKETS)])

    summaries = {split: p.summary() for split, p in profiles.items()}
    keys = list(next(iter(summaries.values())).keys()) if summaries else []
    lines = ["## Summary", "", "| split | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += [f"| {split} | " + " | ".join(str(s[k]) for k in keys) + " |" for split, s in summaries.items()]
    lines += ["", "## Objects per class (small / medium / large)", ""]
    lines += ["| class | " + " | ".join(profiles) + " |", "|---" * (len(profiles) + 1) + "|"]
    for name in names:
        cells = [
            f"{p.class_counts[name]} ({' / '.join(str(p.size_counts[(name, b)]) for b in SIZE_BUCKETS)})"
            for p in profiles.values()
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Sizes in pixels of the loaded image: small < {SMALL_AREA}, medium < {LARGE_AREA}, large otherwise."]
    lines += [f"Brightness: mean grey level 0-255; dark = below {DARK_LEVEL}.", ""]
    malformed = [row for p in profiles.values() for row in p.malformed_rows]
    if malformed:
        lines += ["## Malformed label rows (left out; Ultralytics discards their images as corrupt)", ""]
        lines += [f"- {row}" for row in malformed[:MALFORMED_ROWS_SHOWN]]
        lines += [f"- ... and {len(malformed) - MALFORMED_ROWS_SHOWN} more"] * (len(malformed) > MALFORMED_ROWS_SHOWN)
        lines += [""]
    md_path.write_text("\n".join(lines), encoding="utf-8")


def _plot(profiles: dict[str, SplitProfile], names: list[str], title: str, path: Path) -> None:
    """Save a 2x2 figure: objects per class, size buckets, brightness histogram, objects per image."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    x = np.arange(len(names))
    width = 0.8 / max(len(profiles), 1)
    for i, (split, p) in enumerate(profiles.items()):
        axes[0, 0].bar(x + i * width, [p.class_counts[n] for n in names], width, label=split)
        totals = [sum(n for (_, b), n in p.size_counts.items() if b == bucket) for bucket in SIZE_BUCKETS]
        axes[0, 1].bar(np.arange(3) + i * width, totals, width, label=split)
        axes[1, 0].hist(p.brightness, bins=32, range=(0, 255), alpha=0.5, label=split)
        axes[1, 1].hist(p.objects_per_image, bins=30, alpha=0.5, label=split)
    axes[0, 0].set(title="objects per class", xticks=x, ylabel="objects")
    axes[0, 0].set_xticklabels(names, rotation=45, ha="right")
    axes[0, 1].set(title="object size (COCO buckets, px²)", xticks=np.arange(3), ylabel="objects")
    axes[0, 1].set_xticklabels(["small <32²", "medium", "large ≥96²"])
    axes[1, 0].set(title="image brightness (mean grey level)", xlabel="0-255", ylabel="images")
    axes[1, 1].set(title="objects per image", ylabel="images")
    for ax in axes.flat:
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _check_label_row(values: list[float], num_classes: int) -> str | None:
    """Say why Ultralytics' label check would reject a ``class x y w h`` row (its limits), or None if it passes."""
    row = np.asarray(values)
    if not np.isfinite(row).all():
        return "non-finite value"
    if row[0] % 1 or not 0 <= row[0] < num_classes:
        return f"class {values[0]:g} is not an id of the {num_classes} names"
    if row[1:].max() > 1.01 or row.min() < -0.01 or (row.min() < 0 and row[3:5].min() < 0):
        return "coordinates outside 0-1 (normalised)"
    return None


def read_label_rows(label_path: str | Path, num_classes: int) -> tuple[np.ndarray, list[str]]:
    """Read a YOLO label file the way Ultralytics' label check reads it, keeping its good rows.

    Detection rows are ``class x y w h``; segment rows ``class x1 y1 x2 y2 ...`` (a file is a segment file when a row
    has more than 6 columns), whose box is the polygon's extent (``ultralytics.utils.ops.segments2boxes``). Ultralytics
    discards the whole image when any row is bad; here the bad rows are named instead and left out.

    Args:
        label_path: The ``.txt`` file (absent: no rows).
        num_classes: Number of class names; a class id outside ``0..num_classes - 1`` is a bad row.

    Returns:
        The good rows as an ``(n, 5)`` array ``class x y w h`` (normalised), and ``"file:line: why"`` per bad row.
    """
    path = Path(label_path)
    if not path.is_file():
        return np.zeros((0, 5)), []
    lines = [(number, line.split()) for number, line in iter_text_lines(path) if line]
    segment_file = any(len(fields) > 6 for _, fields in lines)
    rows, malformed = [], []
    for number, fields in lines:
        try:
            values = [float(v) for v in fields]
        except ValueError:
            values = None
        if values is None:
            why = "not numbers"
        elif segment_file and (len(values) < 7 or len(values) % 2 == 0):
            why = "detection row in a segment file" if len(values) == 5 else "segment row without whole x y pairs"
        elif not segment_file and len(values) != 5:
            why = f"{len(values)} columns, not 5 (class x y w h)"
        else:
            xywh = values[1:] if not segment_file else segments2boxes([np.array(values[1:]).reshape(-1, 2)])[0]
            values = [values[0], *(float(v) for v in xywh)]
            why = _check_label_row(values, num_classes)
        if why:
            malformed.append(f"{path}:{number}: {why}")
        else:
            rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5), malformed


def preview_labels(images: list[Path], names: dict[int, str], path: Path, count: int = 8) -> Path | None:
    """Draw the labels of ``count`` evenly spaced images on one mosaic, with Ultralytics' ``Annotator`` (OpenCV mode).

    Images are read as Ultralytics' loader reads them (EXIF-rotated), letterboxed into square tiles, and the boxes
    scaled from the normalised labels, so a misplaced or mis-rotated label shows as a box beside its object.

    Args:
        images: Images of one split (labels found the Ultralytics way).
        names: Class names by id.
        path: Output JPEG.
        count: Number of images drawn.

    Returns:
        The written file, or None when the split has no image or ``count`` is 0.
    """
    if not images or count <= 0:
        return None
    chosen = [images[int(i)] for i in np.unique(np.linspace(0, len(images) - 1, min(count, len(images))).round())]
    columns = min(PREVIEW_COLUMNS, len(chosen))
    rows = -(-len(chosen) // columns)
    mosaic = np.full((rows * PREVIEW_TILE, columns * PREVIEW_TILE, 3), 114, dtype=np.uint8)
    boxes = []
    for index, (image_path, label_path) in enumerate(zip(chosen, img2label_paths([str(p) for p in chosen]))):
        image = imread(str(image_path))
        if image is None:
            continue
        height, width = image.shape[:2]
        scale = PREVIEW_TILE / max(height, width)
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        x0, y0 = (index % columns) * PREVIEW_TILE, (index // columns) * PREVIEW_TILE
        mosaic[y0 : y0 + h, x0 : x0 + w] = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        for c, x, y, bw, bh in read_label_rows(label_path, len(names))[0]:  # bad rows: named by profile_split
            xyxy = (x0 + (x - bw / 2) * w, y0 + (y - bh / 2) * h, x0 + (x + bw / 2) * w, y0 + (y + bh / 2) * h)
            boxes.append((int(c), xyxy))
    annotator = Annotator(mosaic, line_width=2, pil=False)  # OpenCV text: no font download
    for c, xyxy in boxes:
        annotator.box_label(xyxy, names.get(c, str(c)), color=colors(c, True))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), annotator.result())
    return path


def profile_dataset(data_yaml: str | Path, out_dir: str | Path | None = None, preview: int = 8) -> dict[str, dict]:
    """Profile every split of a dataset and save ``profile.png``, ``profile.csv``, ``profile.md`` and label previews.

    When the dataset root holds the file list of ``scsa-yolo prepare`` and the output lies below it, the written files
    are added to that list, so a later prepare run into the same folder may replace them.

    Args:
        data_yaml: Ultralytics dataset YAML (read with ``check_det_dataset``, no download).
        out_dir: Where to save; default ``<dataset root>/profile``.
        preview: Images per split drawn into ``preview_<split>.jpg`` (0: none).

    Returns:
        Summary numbers per split (see :meth:`SplitProfile.summary`) and the class counts.
    """
    data = read_dataset_yaml(data_yaml)
    names_by_id = {int(k): str(v) for k, v in data["names"].items()}
    names = [names_by_id[i] for i in sorted(names_by_id)]
    root = Path(os.path.abspath(data["path"]))
    out_dir = Path(os.path.abspath(out_dir)) if out_dir else root / "profile"
    splits = [
        s for s in ("train", "val", "test") if data.get(s) and (s != "test" or data.get("test") != data.get("val"))
    ]
    previews = {split: out_dir / f"preview_{split}.jpg" for split in splits} if preview > 0 else {}
    csv_path, md_path, png_path = (out_dir / f"profile.{ext}" for ext in ("csv", "md", "png"))
    written = [*previews.values(), csv_path, md_path, png_path]
    if (root / MANIFEST_NAME).is_file() and root in out_dir.parents:
        # A `prepare` folder: recorded before writing (so an interrupted profile leaves no file a later prepare run
        # would call foreign), under prepare's lock (so a prepare run is not swapping the folder meanwhile)
        with DestLock(root, "the dataset folder"):
            record_written(root, written)
            return _profile_into(data, data_yaml, splits, names, names_by_id, out_dir, previews, preview)
    return _profile_into(data, data_yaml, splits, names, names_by_id, out_dir, previews, preview)


def read_dataset_yaml(data_yaml: str | Path) -> dict:
    """Read a dataset YAML with Ultralytics' ``check_det_dataset`` (no download), as training would.

    Raises:
        ProfileError: If the file is missing or Ultralytics refuses it (missing keys, image folders not found).
    """
    path = Path(data_yaml)
    if not path.is_file():
        raise ProfileError(f"{path} is no file; pass a dataset YAML such as the data.yaml written by scsa-yolo prepare")
    try:
        return check_det_dataset(str(path), autodownload=False)
    except Exception as e:  # Ultralytics raises FileNotFoundError, SyntaxError, KeyError... for a bad dataset YAML
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise ProfileError(f"{path}: Ultralytics cannot use this dataset YAML: {first}") from e


def _profile_into(data, data_yaml, splits, names, names_by_id, out_dir, previews, preview) -> dict[str, dict]:
    """Profile every split and write the files into ``out_dir`` (see :func:`profile_dataset`)."""
    try:
        make_folder(out_dir, "--out")
    except DestError as e:
        raise ProfileError(str(e)) from e
    if not os.access(out_dir, os.W_OK):
        raise ProfileError(f"--out {out_dir} is not writable; choose a folder you can write to")
    profiles = {}
    for split in splits:
        images = list_split_images(data[split])
        profiles[split] = profile_split(images, names_by_id, f"Profiling {split}")
        if split in previews:  # only images the profile could read: imread's PIL fallback would pip-install pi-heif
            unreadable = set(profiles[split].unreadable)
            preview_labels([p for p in images if Path(p) not in unreadable], names_by_id, previews[split], preview)
    title = Path(data_yaml).stem if Path(data_yaml).stem != "data" else Path(data["path"]).name
    try:
        _write_tables(profiles, names, out_dir / "profile.csv", out_dir / "profile.md")
        _plot(profiles, names, title, out_dir / "profile.png")
    except OSError as e:
        raise ProfileError(f"cannot write into --out {out_dir}: {e.strerror} ({e.filename})") from e
    return {split: {**p.summary(), "class_counts": dict(p.class_counts)} for split, p in profiles.items()}
