"""Cutting an annotated image into non-overlapping tiles: windows, and each box clipped to the windows it crosses.

Used by :mod:`scsa_yolo.data.deepforest` (see its docstring for the rules: a val region at the bottom of each image,
a grid of windows per region, a clipped piece kept when it holds at least ``min_visible`` of its box).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in source-image pixels (``x1``/``y1`` exclusive)."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def area(self) -> float:
        """Area in square pixels (0 for an empty box)."""
        return max(self.x1 - self.x0, 0.0) * max(self.y1 - self.y0, 0.0)

    def intersect(self, other: Box) -> Box:
        """Return the overlap of two boxes (empty, with zero area, when they do not overlap)."""
        return Box(max(self.x0, other.x0), max(self.y0, other.y0), min(self.x1, other.x1), min(self.y1, other.y1))


@dataclass(frozen=True)
class TileWindow:
    """The source pixels one output tile is cut from."""

    split: str
    source: str
    window: Box

    @property
    def file_stem(self) -> str:
        """File name (without suffix) of the tile, unique across the dataset."""
        return f"{Path(self.source).stem}_y{int(self.window.y0)}_x{int(self.window.x0)}"


@dataclass
class BoxCounts:
    """What happened to the source boxes; ``kept + clipped + dropped == source``."""

    source: int = 0
    kept: int = 0
    clipped: int = 0
    dropped: int = 0

    def add(self, other: BoxCounts) -> None:
        """Accumulate another image's counts into this one."""
        self.source += other.source
        self.kept += other.kept
        self.clipped += other.clipped
        self.dropped += other.dropped


def plan_windows(source: str, width: int, height: int, tile_size: int, val_fraction: float) -> list[TileWindow]:
    """Cut an image into train and val windows that never share a pixel.

    Args:
        source: Name of the source image (recorded on each window).
        width: Image width in pixels.
        height: Image height in pixels.
        tile_size: Largest window side; windows at region edges are smaller.
        val_fraction: Share of the image height, at the bottom, that becomes the val region.

    Returns:
        Windows in row-major order, train region first.
    """
    split_y = round(height * (1.0 - val_fraction))
    windows = []
    for split, (top, bottom) in (("train", (0, split_y)), ("val", (split_y, height))):
        for y0 in range(top, bottom, tile_size):
            for x0 in range(0, width, tile_size):
                window = Box(x0, y0, min(x0 + tile_size, width), min(y0 + tile_size, bottom))
                windows.append(TileWindow(split, source, window))
    return windows


def assign_boxes(
    boxes: list[Box], windows: list[TileWindow], min_visible: float
) -> tuple[dict[int, list[Box]], BoxCounts]:
    """Clip every box to the windows it overlaps and decide whether it is kept, clipped or dropped.

    Args:
        boxes: Source boxes of one image.
        windows: The image's windows (they tile the image without overlap).
        min_visible: Smallest share of a box's area a clipped piece must keep to be written.

    Returns:
        The pieces to write per window index (in source coordinates) and the per-box counts.
    """
    pieces: dict[int, list[Box]] = {index: [] for index in range(len(windows))}
    counts = BoxCounts(source=len(boxes))
    for box in boxes:
        overlaps = [(index, box.intersect(w.window)) for index, w in enumerate(windows)]
        overlaps = [(index, piece) for index, piece in overlaps if piece.area > 0]
        if len(overlaps) == 1 and overlaps[0][1] == box:
            pieces[overlaps[0][0]].append(box)
            counts.kept += 1
            continue
        survivors = [(index, piece) for index, piece in overlaps if piece.area >= min_visible * box.area]
        for index, piece in survivors:
            pieces[index].append(piece)
        if survivors:
            counts.clipped += 1
        else:
            counts.dropped += 1
    return pieces, counts
