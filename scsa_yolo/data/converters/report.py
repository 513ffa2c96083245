"""The conversion report: what went in, what came out, what was dropped or skipped and why, per split."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from .records import SPLITS, UNASSIGNED

EXAMPLES_PER_REASON = 20  # examples kept per issue reason in the JSON report; the counts are always complete
REPORT_NAME = "prepare_report.json"


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
