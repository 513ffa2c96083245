"""Every option of `prepare`, declared once: the shared switches and one typed options class per dataset.

The command-line flags, their help, the "flag of another dataset" check and :func:`dataset_options` (which turns
keyword arguments into the dataset's options object, so a misspelled option raises) are all derived from these
dataclasses' fields and metadata. Light on purpose (no Ultralytics import): ``scsa-yolo prepare --help`` reads it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OptionError


def option(default, help: str, flag: str | None = None, choices: tuple | None = None):  # noqa: A002
    """Declare one option: its default, its help line and, when it differs from the field name, its flag."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices})


def flag_of(item: dataclasses.Field) -> str:
    """Return the command-line flag of an option field (``val_fraction`` -> ``--val-fraction``)."""
    return item.metadata.get("flag") or "--" + item.name.replace("_", "-")


@dataclass(frozen=True)
class ConvertOptions:
    """Switches shared by every converter (see ``docs/datasets.md``)."""

    exif_boxes: str = option(
        "stored",
        "frame of boxes in EXIF-rotated images whose annotation states no image size",
        choices=("stored", "displayed"),
    )
    hardlink: bool = option(False, "hard-link images instead of copying them")
    unlabelled_backgrounds: bool = option(
        False, "keep images without an annotation file as backgrounds (default: left out and reported)"
    )
    drop_eval_duplicates: bool = option(
        False, "leave val/test images out that are byte-identical to an image of an earlier split (always reported)"
    )
    pixel_duplicates: bool = option(
        False, "find copies across splits by decoded pixels, not bytes (also metadata-stripped copies; slower)"
    )
    min_box_pixels: float = field(default=1.0, metadata={"help": None})  # Python API only

    def __post_init__(self) -> None:
        """Reject an unknown EXIF frame instead of silently treating it as one of the two."""
        if self.exif_boxes not in {"stored", "displayed"}:
            raise OptionError(f"--exif-boxes must be 'stored' or 'displayed', got {self.exif_boxes!r}")
        check_types(self)


def check_types(options: object) -> None:
    """Refuse a value whose type does not match its field's default (a string for a number, a number for a flag).

    Raises:
        OptionError: Naming the flag, the value and the expected type.
    """
    for item in dataclasses.fields(options):
        value, default = getattr(options, item.name), item.default
        if value is None or value == default:
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = True
        if not ok:
            raise OptionError(f"{flag_of(item)} must be a {type(default).__name__}, got {value!r}")


@dataclass(frozen=True)
class ExDarkOptions:
    """ExDark's options."""

    split_file: Path | None = option(None, "ExDark: imageclasslist.txt, if it is not under --source")

    def __post_init__(self) -> None:
        """Check the split file before any work starts."""
        if self.split_file is not None and not Path(self.split_file).is_file():
            raise OptionError(f"--split-file {self.split_file} does not exist; pass ExDark's imageclasslist.txt")


@dataclass(frozen=True)
class VisDroneOptions:
    """VisDrone's options."""

    fill_ignored: bool = option(False, "VisDrone: paint ignored regions with the image's mean colour")

    def __post_init__(self) -> None:
        """Check types."""
        check_types(self)


@dataclass(frozen=True)
class DuoOptions:
    """DUO has no options of its own."""


@dataclass(frozen=True)
class RuodOptions:
    """RUOD's options."""

    environment: str | None = option(
        None,
        "RUOD: also convert this environment subset (Environmet_ANN/instances_<name>.json), as the test split",
        flag="--ruod-environment",
        choices=("light", "color", "blur"),
    )

    def __post_init__(self) -> None:
        """Check the subset name."""
        choices = dataclasses.fields(self)[0].metadata["choices"]
        if self.environment is not None and self.environment not in choices:
            raise OptionError(
                f"--ruod-environment {self.environment!r} is no RUOD subset; choose from {', '.join(choices)}"
            )


@dataclass(frozen=True)
class Urpc2020Options:
    """URPC2020's options (it has no official split: this tool makes one)."""

    val_fraction: float = option(0.2, "URPC2020: share of images for val, in [0, 1)")
    seed: int = option(0, "URPC2020: seed of the train/val split")

    def __post_init__(self) -> None:
        """Check the range and the types."""
        value = self.val_fraction
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise OptionError(f"--val-fraction must be a number in [0, 1), got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise OptionError(f"--seed must be an integer, got {self.seed!r}")


@dataclass(frozen=True)
class Utdac2020Options:
    """UTDAC2020's options."""

    waterweeds: bool = option(False, "UTDAC2020: use the five-class *_waterweeds.json annotation files")

    def __post_init__(self) -> None:
        """Check types."""
        check_types(self)


DATASET_OPTIONS: dict[str, type] = {
    "exdark": ExDarkOptions,
    "visdrone": VisDroneOptions,
    "duo": DuoOptions,
    "ruod": RuodOptions,
    "urpc2020": Urpc2020Options,
    "utdac2020": Utdac2020Options,
}
"""Dataset key -> its options class; the keys are the datasets `prepare` knows."""


def dataset_options(name: str, **values: object) -> object:
    """Build dataset ``name``'s options object from keyword arguments.

    Raises:
        OptionError: For an unknown dataset, an option the dataset does not have (a misspelling is never ignored) or
            a value out of range.
    """
    if name not in DATASET_OPTIONS:
        raise OptionError(f"unknown dataset {name!r}; choose from {', '.join(DATASET_OPTIONS)}")
    cls = DATASET_OPTIONS[name]
    known = [item.name for item in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise OptionError(
            f"{name} has no option {', '.join(map(repr, unknown))}; its options: {', '.join(known) or 'none'}"
        )
    return cls(**values)
