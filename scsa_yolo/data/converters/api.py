"""`prepare`'s entry point: options checked, --dest owned, sources found and parsed, output written and swapped in.

Each entry of :data:`CONVERTERS` pairs a :class:`~.records.DatasetSpec` with the parser of its native format and its
options class (:mod:`.options`); parsing is the only format-specific step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..dest import DestSession
from ..errors import ConversionError
from ..manifest import check_listable_names
from .bbgt import EXDARK, parse_exdark
from .coco import DUO, RUOD, UTDAC2020, UTDAC2020_WATERWEEDS, parse_duo, parse_ruod, parse_utdac2020
from .options import DATASET_OPTIONS, ConvertOptions, dataset_options
from .records import DatasetSpec, Parsed
from .report import ConversionReport
from .sources import check_sources, resolve_sources, scan_sources
from .visdrone import VISDRONE, parse_visdrone
from .voc import URPC2020, parse_urpc2020
from .write import write_dataset


@dataclass(frozen=True)
class Converter:
    """A dataset definition and the parser of its native annotation format.

    Attributes:
        spec: Classes in official order and the notes written into ``data.yaml``.
        parse: ``parse(tree, report, dataset_options, shared_options) -> Parsed``.
        variants: Other specs chosen by a true option, e.g. ``{"waterweeds": UTDAC2020_WATERWEEDS}``.
    """

    spec: DatasetSpec
    parse: Callable[..., Parsed]
    variants: dict[str, DatasetSpec] = field(default_factory=dict)

    def spec_for(self, options: object) -> DatasetSpec:
        """Return the spec selected by ``options`` (the first variant whose option is true, else the default)."""
        return next((spec for name, spec in self.variants.items() if getattr(options, name, False)), self.spec)


CONVERTERS: dict[str, Converter] = {
    "exdark": Converter(EXDARK, parse_exdark),
    "visdrone": Converter(VISDRONE, parse_visdrone),
    "duo": Converter(DUO, parse_duo),
    "ruod": Converter(RUOD, parse_ruod),
    "urpc2020": Converter(URPC2020, parse_urpc2020),
    "utdac2020": Converter(UTDAC2020, parse_utdac2020, {"waterweeds": UTDAC2020_WATERWEEDS}),
}
assert CONVERTERS.keys() == DATASET_OPTIONS.keys()  # one options class per converter, declared in .options


def _read_error(error: OSError, report: ConversionReport | None) -> ConversionError:
    """Turn an OS error met while reading the sources into a one-line message naming the file."""
    where = report.show(str(error.filename)) if report else error.filename
    return ConversionError(f"cannot read {where}: {error.strerror or error}; check the file and its permissions")


def convert_dataset(
    name: str,
    sources: Iterable[str | Path],
    dest: str | Path,
    options: ConvertOptions | None = None,
    **format_options: object,
) -> dict:
    """Convert a native dataset download into ``dest`` (images/, labels/, data.yaml, prepare_report.json).

    Re-running with the same arguments replaces the earlier output with identical files. The earlier output is not
    touched until the new one is complete (see :mod:`scsa_yolo.data.dest`): any failure leaves ``dest`` as it was.

    Args:
        name: Key of :data:`CONVERTERS`, e.g. ``"exdark"``.
        sources: Extracted download folders and/or archives.
        dest: Output folder: new, empty, or written by an earlier run.
        options: Shared switches (EXIF frame, hard links, backgrounds, duplicates).
        **format_options: Fields of the dataset's options class in :mod:`.options` (``split_file`` for ExDark,
            ``val_fraction`` and ``seed`` for URPC2020, ...); any other name raises.

    Returns:
        The report dictionary.

    Raises:
        OptionError: For an unknown dataset or option, or a value out of range.
        ConversionError: If the input is unusable (the message says why) or ``dest`` cannot be used.
    """
    dataset = dataset_options(name, **format_options)
    converter = CONVERTERS[name]
    spec = converter.spec_for(dataset)
    options = options or ConvertOptions()
    checked = check_sources(sources)
    with DestSession(Path(dest).expanduser()) as session:
        report = tree = None
        try:
            roots, archives = resolve_sources(checked, session.scratch)
            report = ConversionReport(spec.title, archives)
            tree = scan_sources(roots, exclude=session.dest)
            tree.report_to(report)
            parsed = converter.parse(tree, report, dataset, options)
            check_listable_names([s.image.name for s in parsed.samples if s.image is not None])
            check_listable_names(n for files in (parsed.split_lists or {}).values() for n in files)
        except OSError as e:
            raise _read_error(e, report) from e
        except ConversionError as e:  # the message may name a file in an unpacked archive
            raise type(e)(_with_archive_hint(report.show(str(e)) if report else str(e), tree)) from e
        try:
            result = write_dataset(parsed.samples, spec, session.staging, options, report, parsed.split_lists)
        except ConversionError as e:
            raise type(e)(_with_archive_hint(report.show(str(e)), tree)) from e
        except OSError as e:
            if e.filename and Path(e.filename).is_relative_to(session.dest):
                raise ConversionError(f"cannot write into --dest {session.dest}: {e.strerror} ({e.filename})") from e
            raise _read_error(e, report) from e
        session.commit()
    return result


def _with_archive_hint(message: str, tree: object) -> str:
    """Add a hint when --source holds archives (nested archives are not unpacked) to a 'nothing found' message."""
    archives = getattr(tree, "archives", None)
    if not archives:
        return message
    shown = ", ".join(str(a) for a in archives[:3])
    return (
        f"{message}. --source holds archive(s) that are not unpacked ({shown}): extract them, or pass each as --source"
    )
