"""Converters from native complex-scene dataset downloads to the Ultralytics YOLO layout.

Usage::

    from scsa_yolo.data.converters import convert_dataset

    convert_dataset("visdrone", ["~/Downloads/VisDrone2019-DET-train.zip", "~/Downloads/VisDrone2019-DET-val.zip"],
                    "datasets/VisDrone")

Each entry of :data:`CONVERTERS` pairs a :class:`~.common.DatasetSpec` (classes, notes) with the parser of its
native format; parsing is the only format-specific step, everything else happens in :func:`.common.write_dataset`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .bbgt import EXDARK, check_exdark_options, parse_exdark
from .coco import (
    DUO,
    RUOD,
    UTDAC2020,
    UTDAC2020_WATERWEEDS,
    check_ruod_options,
    parse_coco,
    parse_ruod,
    parse_utdac2020,
)
from .common import (
    MANIFEST_NAME,
    REPORT_NAME,
    ConversionError,
    ConversionReport,
    ConvertOptions,
    DatasetSpec,
    check_dest,
    check_listable_names,
    check_sources,
    cleanup_extracted,
    prepare_dest,
    release_dest,
    resolve_sources,
    write_dataset,
)
from .visdrone import VISDRONE, parse_visdrone
from .voc import URPC2020, check_voc_options, parse_voc


@dataclass(frozen=True)
class Converter:
    """A dataset definition and the parser of its native annotation format.

    Attributes:
        spec: Classes in official order and the notes written into ``data.yaml``.
        parse: ``parse(roots, dest, report, **format_options) -> (samples, split_lists or None)``.
        variants: Other specs chosen by a true format option, e.g. ``{"waterweeds": UTDAC2020_WATERWEEDS}``.
        check: ``check(**format_options)`` raises on a bad option before any work starts (None: nothing to check).
    """

    spec: DatasetSpec
    parse: Callable
    variants: dict[str, DatasetSpec] = field(default_factory=dict)
    check: Callable[..., None] | None = None

    def spec_for(self, format_options: dict) -> DatasetSpec:
        """Return the spec selected by ``format_options`` (the first variant whose option is true, else the default)."""
        return next((spec for option, spec in self.variants.items() if format_options.get(option)), self.spec)


CONVERTERS: dict[str, Converter] = {
    "exdark": Converter(EXDARK, parse_exdark, check=check_exdark_options),
    "visdrone": Converter(VISDRONE, parse_visdrone),
    "duo": Converter(DUO, parse_coco),
    "ruod": Converter(RUOD, parse_ruod, check=check_ruod_options),
    "urpc2020": Converter(URPC2020, parse_voc, check=check_voc_options),
    "utdac2020": Converter(UTDAC2020, parse_utdac2020, {"waterweeds": UTDAC2020_WATERWEEDS}),
}


def convert_dataset(
    name: str,
    sources: Iterable[str | Path],
    dest: str | Path,
    options: ConvertOptions | None = None,
    **format_options: object,
) -> dict:
    """Convert a native dataset download into ``dest`` (images/, labels/, data.yaml, prepare_report.json).

    Re-running with the same arguments replaces the earlier output with identical files. Nothing of an earlier run is
    deleted before the options, the sources and ``dest`` are checked and the sources parsed: a bad option, a missing
    source or an annotation file that cannot be read stops the run with the earlier output intact.

    Args:
        name: Key of :data:`CONVERTERS`, e.g. ``"exdark"``.
        sources: Extracted download folders and/or archives.
        dest: Output folder: new, empty, or written by an earlier run.
        options: Shared switches (EXIF frame, painting ignored regions, hard links).
        **format_options: Parser-specific options: ``split_file`` (ExDark), ``val_fraction`` and ``seed`` (URPC2020),
            ``waterweeds`` (UTDAC2020: the five-class annotation files), ``environment`` (RUOD).

    Returns:
        The report dictionary.

    Raises:
        ConversionError: If the input is unusable (message says why) or ``dest`` holds foreign files.
        ValueError: If an option is out of range.
        KeyError: If ``name`` is not a known dataset.
    """
    if name not in CONVERTERS:
        raise KeyError(f"unknown dataset '{name}', choose from {', '.join(CONVERTERS)}")
    converter = CONVERTERS[name]
    if converter.check is not None:
        converter.check(**format_options)
    spec = converter.spec_for(format_options)
    options = options or ConvertOptions()
    dest = Path(dest).expanduser().resolve()
    sources = check_sources(sources)
    check_dest(dest)
    created, replacing = not dest.exists(), False
    try:
        roots = resolve_sources(sources, dest)
        report = ConversionReport(spec.title, {r: s for r, s in zip(roots, sources) if r != s})
        try:
            samples, split_lists = converter.parse(
                roots, dest, report, unlabelled_backgrounds=options.unlabelled_backgrounds, **format_options
            )
            check_listable_names(samples, split_lists)
            replacing = True  # everything is checked: from here on the earlier output is replaced
            prepare_dest(dest)
            return write_dataset(samples, spec, dest, options, report, split_lists)
        except ConversionError as e:  # the message may name a file in an unpacked archive
            raise ConversionError(report.show(str(e))) from e
    finally:
        cleanup_extracted(dest)
        if not replacing:
            release_dest(dest, created)


__all__ = [
    "CONVERTERS",
    "MANIFEST_NAME",
    "REPORT_NAME",
    "ConversionError",
    "ConvertOptions",
    "Converter",
    "convert_dataset",
]
