"""Tiny datasets of the tasks without boxes, written by the tests (nothing downloads)."""

from pathlib import Path

import cv2
import numpy as np


def write_tiny_classification_dataset(root: Path, per_class: int = 3, size: int = 32, seed: int = 0) -> Path:
    """Write an Ultralytics classification folder (train/ and val/, one folder per class) and return its root.

    Two classes that differ in brightness, so a model can tell them apart.

    Args:
        root (Path): Folder to write into.
        per_class (int): Images per class and split.
        size (int): Image side in pixels.
        seed (int): Seed for the pixels.

    Returns:
        (Path): The dataset root, to pass as ``data=``.
    """
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for label, (low, high) in {"dark": (0, 80), "bright": (170, 255)}.items():
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(per_class):
                image = rng.integers(low, high, (size, size, 3), dtype=np.uint8)
                cv2.imwrite(str(folder / f"{label}{index}.jpg"), image)
    return root
