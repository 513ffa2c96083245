"""The records that travel between the format parsers and the writer: dataset spec, raw box and sample.

A format module only parses its native annotations into :class:`Sample` records (class *names* and pixel boxes in
``xyxy``); everything that must behave the same for every dataset happens in :mod:`.write`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "val", "test")
UNASSIGNED = "unassigned"  # report bucket for input that could not be given a split


def normalise_name(name: str) -> str:
    """Lower-case a class name and strip everything but letters and digits, so 'Sea-Urchin' equals 'seaurchin'."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


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
        annotation: Source annotation file, or None for an image without one.
        boxes: Objects to turn into labels.
        paint_regions: Regions to fill with the image's mean colour (VisDrone's ignored regions with
            ``fill_ignored``); never labels.
        declared_size: (width, height) stated by the annotation file, used to tell which orientation the boxes are in.
    """

    split: str
    image: Path | None
    annotation: Path | None = None
    boxes: list[RawBox] = field(default_factory=list)
    paint_regions: list[RawBox] = field(default_factory=list)
    declared_size: tuple[int, int] | None = None


@dataclass
class Parsed:
    """What a format parser returns.

    Attributes:
        samples: Every image and orphan annotation found.
        split_lists: ``{split: [source image paths]}`` for a split the tool made itself (written to ``splits/``), or
            None when the split is official.
    """

    samples: list[Sample]
    split_lists: dict[str, list[str]] | None = None
