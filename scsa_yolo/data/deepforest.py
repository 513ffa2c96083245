"""Build a small, real YOLO detection dataset from the images that the ``deepforest`` wheel ships.

The ``deepforest`` wheel (MIT licence; imagery from NEON's airborne observation platform) carries a few real aerial RGB
tiles with hand-drawn tree-crown boxes in ``deepforest/data/``. Only those data files are read, straight out of the
wheel with :mod:`zipfile`; deepforest itself is never installed or imported. ``scripts/setup.sh`` puts the wheel in the
repository's ``data_cache/``; nothing is downloaded here.

Source of truth, one annotation file per image (inspected in deepforest 2.1.0):

============================================  ===========  ==========================================================
image                                         size (px)    boxes, annotation file used
============================================  ===========  ==========================================================
2019_YELL_2_528000_4978000_image_crop2.png    2299 x 2472  574 Tree, ``..._crop2.xml``
2019_YELL_2_541000_4977000_image_crop.png     1249 x 1035  279 Tree, ``..._crop.xml``
OSBS_029.png                                  400 x 400    61 Tree, ``OSBS_029.xml``
SOAP_061.png                                  400 x 400    37 (28 Dead, 9 Alive), ``SOAP_061.xml``
============================================  ===========  ==========================================================

Every labelled image has a Pascal VOC XML file, so the XML is the one source of truth. The CSV files are ignored:
``OSBS_029.csv`` and ``testfile_deepforest.csv`` repeat the 61 OSBS_029 boxes, ``testfile_multi.csv`` repeats the 37
SOAP_061 boxes, and ``example.csv`` is a partial labelling (79 rows) of the 279-box YELL crop whose rows do not all
match the XML. ``OSBS_029.xml`` names ``OSBS_029.tif``; the PNG next to it is the same 400 x 400 tile and is the one
read. ``SOAP_031.png`` and the ``AWPE`` photograph have no labels and are not used. All boxes become one class,
``tree``: SOAP_061's Dead/Alive split covers 37 of 951 boxes and is not labelled anywhere else.

Tiling and split:

* Each source image is cut by one horizontal line at ``round(height * (1 - val_fraction))``: the part above is the
  train region, the part below the val region. Each region is cut into a grid of non-overlapping windows of at most
  ``tile_size`` pixels, anchored at the region's top-left corner. So a val tile never shares a source pixel with a
  train tile (the split is by source region, not by tile), and no tile shares pixels with another.
* Every tile is written at exactly ``tile_size`` x ``tile_size``: a window cut short by the image or region edge is
  pasted top-left on a grey (114, 114, 114) canvas, the value Ultralytics pads with when it letterboxes.
* A box is clipped to each window it intersects. A clipped piece is kept if its area is at least ``min_visible`` of
  the whole box's area; smaller pieces are slivers and are dropped. Per source box this gives exactly one outcome:
  **kept** (lies inside one window, written unchanged), **clipped** (crosses a window or split border and at least
  one piece survives; every surviving piece is written) or **dropped** (no piece survives). So
  ``kept + clipped + dropped == source boxes``, checked on every build.

The build is cached: ``build_report.json`` records the parameters and the counts, and a later call with the same
parameters returns that report without touching the files. A build with other parameters replaces the folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from .errors import DatasetError
from .layout import save_data_yaml, to_yolo_line, write_label_file
from .tiling import Box, BoxCounts, TileWindow, assign_boxes, plan_windows

__all__ = ["Box", "BoxCounts", "BuildReport", "TileWindow", "assign_boxes", "build_deepforest_dataset", "plan_windows"]

# Bump when the output layout or the tiling rules change, so that old caches are rebuilt.
BUILD_FORMAT_VERSION = 1
DEEPFOREST_VERSION = "2.1.0"
WHEEL_NAME = f"deepforest-{DEEPFOREST_VERSION}-py3-none-any.whl"
# Relative to the working directory, like Ultralytics' runs/: scripts/setup.sh fills ./data_cache in the checkout.
DEFAULT_CACHE_DIR = Path("data_cache")
DEFAULT_DATASET_DIR = DEFAULT_CACHE_DIR / "deepforest-yolo"
PAD_VALUE = (114, 114, 114)
CLASS_NAMES = ("tree",)
REPORT_NAME = "build_report.json"
MANIFEST_NAME = "tiles.csv"
YAML_NAME = "deepforest.yaml"

# Image member -> Pascal VOC annotation member inside the wheel's deepforest/data/ folder (see module docstring).
SOURCE_IMAGES: dict[str, str] = {
    "2019_YELL_2_528000_4978000_image_crop2.png": "2019_YELL_2_528000_4978000_image_crop2.xml",
    "2019_YELL_2_541000_4977000_image_crop.png": "2019_YELL_2_541000_4977000_image_crop.xml",
    "OSBS_029.png": "OSBS_029.xml",
    "SOAP_061.png": "SOAP_061.xml",
}
DATA_PREFIX = "deepforest/data/"


class MissingWheelError(DatasetError, FileNotFoundError):
    """The deepforest wheel that holds the demo images is not where it was looked for."""


class DemoParameterError(DatasetError, ValueError):
    """A tiling parameter or image name outside its range (one line from `scsa-yolo demo-data`, exit 2)."""


class ForeignFolderError(DatasetError, FileExistsError):
    """The output folder holds files this builder did not write; it is never overwritten."""


@dataclass
class BuildReport:
    """The result of a build: where the dataset is and what went into it."""

    yaml_path: str
    params: dict
    boxes: BoxCounts
    per_image: dict[str, BoxCounts] = field(default_factory=dict)
    tiles: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One human-readable paragraph with every count."""
        b = self.boxes
        return (
            f"deepforest demo dataset: {b.source} source boxes -> {b.kept} kept, {b.clipped} clipped, "
            f"{b.dropped} dropped (pieces under {self.params['min_visible']:.0%} visible); "
            f"tiles train {self.tiles.get('train', 0)} / val {self.tiles.get('val', 0)} "
            f"({self.params['tile_size']} px), labels train {self.labels.get('train', 0)} / val "
            f"{self.labels.get('val', 0)}; {self.yaml_path}"
        )

    @classmethod
    def from_json(cls, data: dict) -> BuildReport:
        """Rebuild a report from its ``build_report.json`` form."""
        return cls(
            yaml_path=data["yaml_path"],
            params=data["params"],
            boxes=BoxCounts(**data["boxes"]),
            per_image={name: BoxCounts(**counts) for name, counts in data["per_image"].items()},
            tiles=data["tiles"],
            labels=data["labels"],
        )


def find_wheel(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Locate the deepforest wheel in the cache folder.

    Args:
        cache_dir: Folder that ``scripts/setup.sh`` downloads the wheel into.

    Returns:
        Path of the wheel.

    Raises:
        MissingWheelError: If the wheel is not there; the message says how to get it.
    """
    wheel = Path(cache_dir) / WHEEL_NAME
    if wheel.is_file():
        return wheel
    raise MissingWheelError(
        f"The demo data come from {WHEEL_NAME}, which is not in {Path(cache_dir).resolve()}. Nothing is downloaded "
        f"at run time; put it there once with this command, run in {Path.cwd()}:\n"
        f"    {download_command(cache_dir)}"
    )


def download_command(cache_dir: Path | str = DEFAULT_CACHE_DIR) -> str:
    """The one shell command that puts the deepforest wheel into ``cache_dir`` (``pip download``, no dependencies)."""
    return f"python -m pip download --no-deps deepforest=={DEEPFOREST_VERSION} -d {cache_dir}"


def read_voc_boxes(xml_bytes: bytes, name: str = "annotation.xml") -> list[Box]:
    """Read the boxes of a Pascal VOC annotation with the converters' VOC reader.

    Args:
        xml_bytes: Content of the XML file.
        name: Its name, for messages.

    Returns:
        One box per usable ``<object>``, in file order. deepforest writes 0-based corners, used as-is as a half-open
        box (no VOC devkit 1-pixel shift).
    """
    from .converters.voc import read_voc  # the converters need Ultralytics: imported only when a build runs

    return [Box(*box.xyxy) for box in read_voc(io.BytesIO(xml_bytes), name, pixel_offset=0).boxes]


def _yolo_label_lines(pieces: list[Box], window: Box, tile_size: int) -> list[str]:
    """Format boxes as YOLO rows relative to the window, normalised by the padded tile size."""
    return [
        to_yolo_line(
            0, (p.x0 - window.x0, p.y0 - window.y0, p.x1 - window.x0, p.y1 - window.y0), (tile_size, tile_size)
        )
        for p in pieces
    ]


YAML_HEADER = (
    "# Real NEON aerial RGB tiles with tree-crown boxes, cut from the deepforest wheel's data/ folder\n"
    "# by scsa_yolo.data.deepforest (see build_report.json for the counts).\n"
)


def _load_cached(out_dir: Path, params: dict) -> BuildReport | None:
    """Return the existing build's report if it was made with the same parameters and is complete."""
    report_path = out_dir / REPORT_NAME
    if not report_path.is_file():
        return None
    data = json.loads(report_path.read_text())
    if data.get("params") != params or not Path(data.get("yaml_path", "")).is_file():
        return None
    return BuildReport.from_json(data)


def build_deepforest_dataset(
    out_dir: Path | str = DEFAULT_DATASET_DIR,
    wheel: Path | str | None = None,
    tile_size: int = 320,
    val_fraction: float = 0.25,
    min_visible: float = 0.3,
    images: tuple[str, ...] | None = None,
) -> BuildReport:
    """Build (or reuse) the YOLO dataset cut from the deepforest wheel's annotated images.

    Args:
        out_dir: Folder for the dataset; it holds ``images/``, ``labels/``, the YAML, ``tiles.csv`` (one row per tile
            with its source window) and ``build_report.json``. A folder with other contents is never overwritten.
        wheel: Path of the deepforest wheel; defaults to ``data_cache/`` in the repository.
        tile_size: Side of the square tiles in pixels.
        val_fraction: Share of each source image's height, at the bottom, used for validation.
        min_visible: Clipped box pieces with less than this share of the box's area are dropped as slivers.
        images: Subset of :data:`SOURCE_IMAGES` to use (all of them by default); tests use a small one.

    Returns:
        The build report (also written to ``build_report.json``).

    Raises:
        MissingWheelError: If the wheel is missing.
        FileExistsError: If ``out_dir`` exists but is not a dataset built by this function.
        ValueError: For parameters outside their range or unknown image names.
    """
    problems = [
        f"--tile-size {tile_size!r} (an integer >= 32)"
        * (isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 32),
        f"--val-fraction {val_fraction!r} (a number between 0 and 1, both excluded)" * (not 0.0 < val_fraction < 1.0),
        f"--min-visible {min_visible!r} (a number in (0, 1])" * (not 0.0 < min_visible <= 1.0),
    ]
    problems = [p for p in problems if p]
    if problems:
        raise DemoParameterError(f"bad demo-data parameter(s): {'; '.join(problems)}")
    images = tuple(images) if images else tuple(SOURCE_IMAGES)
    unknown = set(images) - set(SOURCE_IMAGES)
    if unknown:
        raise DemoParameterError(f"unknown images {sorted(unknown)}; choose from {list(SOURCE_IMAGES)}")
    wheel = Path(wheel) if wheel else find_wheel()
    if not wheel.is_file():
        raise MissingWheelError(f"No deepforest wheel at {wheel}; see find_wheel() for how to get it.")
    out_dir = Path(out_dir)
    params = {
        "format": BUILD_FORMAT_VERSION,
        "wheel": wheel.name,
        "wheel_bytes": wheel.stat().st_size,
        "tile_size": tile_size,
        "val_fraction": val_fraction,
        "min_visible": min_visible,
        "images": list(images),
    }
    cached = _load_cached(out_dir, params)
    if cached:
        return cached
    if out_dir.exists() and not out_dir.is_dir():
        raise ForeignFolderError(f"--out {out_dir} is a file; choose a folder")
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / REPORT_NAME).is_file():
        raise ForeignFolderError(f"--out {out_dir} exists and is not a deepforest build; choose another folder")

    # Build next to the target and swap it in at the end, so an interrupted build never looks complete.
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    except OSError as e:
        raise DemoParameterError(
            f"--out {out_dir} cannot be created ({e.strerror}); choose a folder you can write to"
        ) from e
    try:
        report = _build_into(staging, out_dir, wheel, params, images)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _build_into(staging: Path, out_dir: Path, wheel: Path, params: dict, images: tuple[str, ...]) -> BuildReport:
    """Write tiles, labels, manifest, YAML and report into ``staging`` (paths recorded as under ``out_dir``)."""
    tile_size = params["tile_size"]
    for kind in ("images", "labels"):
        for split in ("train", "val"):
            (staging / kind / split).mkdir(parents=True)
    total = BoxCounts()
    per_image: dict[str, BoxCounts] = {}
    tiles = {"train": 0, "val": 0}
    labels = {"train": 0, "val": 0}
    manifest_rows = []
    with zipfile.ZipFile(wheel) as archive:
        for image_name in images:
            boxes = read_voc_boxes(archive.read(DATA_PREFIX + SOURCE_IMAGES[image_name]), SOURCE_IMAGES[image_name])
            with Image.open(io.BytesIO(archive.read(DATA_PREFIX + image_name))) as opened:
                image = opened.convert("RGB")
            windows = plan_windows(image_name, image.width, image.height, tile_size, params["val_fraction"])
            pieces, counts = assign_boxes(boxes, windows, params["min_visible"])
            per_image[image_name] = counts
            total.add(counts)
            for index, tile in enumerate(windows):
                w = tile.window
                canvas = Image.new("RGB", (tile_size, tile_size), PAD_VALUE)
                canvas.paste(image.crop((int(w.x0), int(w.y0), int(w.x1), int(w.y1))), (0, 0))
                canvas.save(staging / "images" / tile.split / f"{tile.file_stem}.png", compress_level=1)
                lines = _yolo_label_lines(pieces[index], w, tile_size)
                write_label_file(staging / "labels" / tile.split / f"{tile.file_stem}.txt", lines)
                tiles[tile.split] += 1
                labels[tile.split] += len(lines)
                manifest_rows.append(
                    [f"{tile.file_stem}.png", tile.split, image_name, *map(int, (w.x0, w.y0, w.x1, w.y1)), len(lines)]
                )
    if total.kept + total.clipped + total.dropped != total.source:
        raise AssertionError(f"Box accounting is off: {total}")  # assign_boxes gives each box one outcome

    with open(staging / MANIFEST_NAME, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "split", "source", "x0", "y0", "x1", "y1", "labels"])
        writer.writerows(manifest_rows)
    # the YAML points at the final folder, not the staging one
    save_data_yaml(
        staging / YAML_NAME, {"train": "images/train", "val": "images/val"}, CLASS_NAMES, YAML_HEADER, out_dir
    )
    report = BuildReport(str(out_dir.resolve() / YAML_NAME), params, total, per_image, tiles, labels)
    (staging / REPORT_NAME).write_text(json.dumps(asdict(report), indent=2))
    return report
