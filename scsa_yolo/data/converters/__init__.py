"""Converters from native complex-scene dataset downloads to the Ultralytics YOLO layout.

Usage::

    from scsa_yolo.data.converters import convert_dataset

    convert_dataset("visdrone", ["~/Downloads/VisDrone2019-DET-train.zip", "~/Downloads/VisDrone2019-DET-val.zip"],
                    "datasets/VisDrone")

Modules: :mod:`.options` (every option, declared once; light), :mod:`.records` (spec, box, sample),
:mod:`.report`, :mod:`.archives`, :mod:`.sources` (finding input), one parser per format (:mod:`.bbgt`,
:mod:`.visdrone`, :mod:`.coco`, :mod:`.voc`), :mod:`.write` (the one writer), :mod:`.duplicates` and :mod:`.api`
(:func:`convert_dataset`). The public names below are imported on first use, so ``from .options import ...`` (the
command's ``--help``) does not load Ultralytics.
"""

from __future__ import annotations

import importlib

from ..errors import ConversionError, DestError, OptionError
from ..manifest import MANIFEST_NAME
from .options import ConvertOptions

_LAZY = {"CONVERTERS": ".api", "Converter": ".api", "convert_dataset": ".api", "REPORT_NAME": ".report"}


def __getattr__(name: str):
    """Import the heavy public names (they need Ultralytics) when first used."""
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CONVERTERS",
    "MANIFEST_NAME",
    "REPORT_NAME",
    "ConversionError",
    "ConvertOptions",
    "Converter",
    "DestError",
    "OptionError",
    "convert_dataset",
]
