"""Images of val/test that are copies of an image of an earlier split (train before val before test)."""

from __future__ import annotations

from collections import defaultdict

from ultralytics.utils import TQDM

from ..images import file_digest, image_dimensions, pixel_digest
from .records import SPLITS, Sample
from .report import ConversionReport


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
            size = image_dimensions(sample.image) if pixels else sample.image.stat().st_size
            if size is not None:
                by_size[size].append(sample)
    by_digest: dict[str, list[Sample]] = defaultdict(list)
    candidates = [group for group in by_size.values() if len({s.split for s in group}) > 1]
    for sample in TQDM([s for group in candidates for s in group], desc="Looking for copies across splits"):
        digest = pixel_digest(sample.image) if pixels else file_digest(sample.image)
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
