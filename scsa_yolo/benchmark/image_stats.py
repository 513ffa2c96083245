"""Per-image matching statistics of one validation run: the typed record the bootstrap resamples, and its file.

A task supplies, per size bin, one :class:`ImageStats` (its rows are predictions and labels tagged with their image)
and :mod:`scsa_yolo.benchmark.stats` recomputes the metric on resampled image sets from them. The file is a plain
``.npz`` read with ``allow_pickle=False``; a damaged one is refused by name.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scsa_yolo.benchmark.records import ResultsFolderError

# COCO's area ranges in original-image pixels (pycocotools / faster-coco-eval ``Params``): bounds inclusive.
AREA_RANGES: dict[str, tuple[float, float]] = {
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e10),
}


@dataclass
class ImageStats:
    """Matching results of one validation run, image by image, for one size bin.

    Predictions are stored concatenated over images with ``pred_image`` naming each one's image; labels likewise.

    Attributes:
        images: Image file names, in validation order (index = image id used below).
        tp: (P, 10) bool, prediction correct at IoU 0.50:0.05:0.95 (Ultralytics' ``match_predictions``).
        counted: (P, 10) bool, prediction takes part in the AP at that threshold (all True for the "all" bin; for a
            size bin, COCO's rule: a prediction matched to a label outside the bin, or unmatched and itself outside
            the bin, is ignored).
        conf: (P,) confidences.
        pred_cls: (P,) predicted classes.
        pred_image: (P,) image index of each prediction.
        target_cls: (L,) label classes.
        target_image: (L,) image index of each label.
    """

    images: list[str]
    tp: np.ndarray
    counted: np.ndarray
    conf: np.ndarray
    pred_cls: np.ndarray
    pred_image: np.ndarray
    target_cls: np.ndarray
    target_image: np.ndarray

    @classmethod
    def from_images(cls, images: list[str], records: Sequence[dict]) -> ImageStats:
        """Concatenate per-image dicts with keys ``tp``, ``counted``, ``conf``, ``pred_cls``, ``target_cls``."""
        n_iou = records[0]["tp"].shape[1] if records else 10
        pred_counts = [len(record["conf"]) for record in records]
        target_counts = [len(record["target_cls"]) for record in records]

        def stack(key, shape, dtype):
            parts = [np.asarray(record[key], dtype=dtype).reshape(shape) for record in records]
            return np.concatenate(parts) if parts else np.zeros((0, *shape[1:]), dtype)

        return cls(
            images=list(images),
            tp=stack("tp", (-1, n_iou), bool),
            counted=stack("counted", (-1, n_iou), bool),
            conf=stack("conf", (-1,), np.float32),
            pred_cls=stack("pred_cls", (-1,), np.int32),
            pred_image=np.repeat(np.arange(len(records)), pred_counts).astype(np.int32),
            target_cls=stack("target_cls", (-1,), np.int32),
            target_image=np.repeat(np.arange(len(records)), target_counts).astype(np.int32),
        )

    def arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """The arrays under ``prefix/`` names, for one ``np.savez`` file holding several bins."""
        return {f"{prefix}/{key}": getattr(self, key) for key in ImageStats.__dataclass_fields__ if key != "images"}

    @classmethod
    def from_arrays(cls, arrays, prefix: str, images: list[str]) -> ImageStats:
        """Inverse of :meth:`arrays`."""
        fields = {key: arrays[f"{prefix}/{key}"] for key in cls.__dataclass_fields__ if key != "images"}
        return cls(images=images, **fields)


def save_image_stats(path: Path, bins: dict[str, ImageStats]) -> None:
    """Write the per-image statistics of several size bins (same images) into one ``.npz`` file."""
    images = next(iter(bins.values())).images
    arrays = {"images": np.array(images, dtype=str)}
    for name, stats in bins.items():
        arrays.update(stats.arrays(name))
    with open(path, "wb") as handle:  # np.savez would append .npz to a name without it
        np.savez_compressed(handle, **arrays)


def save_image_sums(path: Path, images: Sequence[str], values: np.ndarray) -> None:
    """Write per-image summed statistics (``values[i]`` belongs to ``images[i]``) of a summed-statistics task."""
    with open(path, "wb") as handle:
        np.savez_compressed(handle, images=np.array(list(images), dtype=str), values=np.asarray(values, np.float64))


def load_image_sums(path: Path):
    """Read a file written by :func:`save_image_sums` as a :class:`~scsa_yolo.benchmark.comparisons.PerImageSums`.

    Raises:
        ResultsFolderError: If the file is not such a statistics file.
    """
    from scsa_yolo.benchmark.comparisons import PerImageSums

    try:
        with np.load(path, allow_pickle=False) as arrays:
            return PerImageSums([str(name) for name in arrays["images"]], np.asarray(arrays["values"], np.float64))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise _damaged(path, error) from None


def _damaged(path: Path, error: Exception) -> ResultsFolderError:
    return ResultsFolderError(
        f"{path} is not a per-image statistics file the benchmark wrote ({type(error).__name__}); move its run "
        "folder away or delete the file to validate the run again"
    )


def load_image_stats(path: Path) -> dict[str, ImageStats]:
    """Read a file written by :func:`save_image_stats` (no pickles); a damaged file is refused by name.

    Raises:
        ResultsFolderError: If the file is not such a statistics file.
    """
    try:
        with np.load(path, allow_pickle=False) as arrays:
            images = [str(name) for name in arrays["images"]]
            bins = sorted({key.split("/")[0] for key in arrays.files if "/" in key})
            return {name: ImageStats.from_arrays(arrays, name, images) for name in bins}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise _damaged(path, error) from None
