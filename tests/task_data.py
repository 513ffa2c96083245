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


def write_tiny_semantic_dataset(root: Path, images: int = 4, size: int = 64, seed: int = 0) -> Path:
    """Write an Ultralytics semantic-segmentation dataset (images/ and masks/ PNGs of class ids) and return its YAML.

    Two classes: background (0) and a bright rectangle (1); train = val.

    Args:
        root (Path): Folder to write into.
        images (int): Number of images.
        size (int): Image side in pixels.
        seed (int): Seed for the pixels and rectangles.

    Returns:
        (Path): The dataset YAML.
    """
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "masks" / split).mkdir(parents=True, exist_ok=True)
        for index in range(images):
            image = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
            mask = np.zeros((size, size), np.uint8)
            x0, y0 = rng.integers(0, size // 2, 2)
            image[y0 : y0 + size // 3, x0 : x0 + size // 3] = 230
            mask[y0 : y0 + size // 3, x0 : x0 + size // 3] = 1
            cv2.imwrite(str(root / "images" / split / f"img{index}.jpg"), image)
            cv2.imwrite(str(root / "masks" / split / f"img{index}.png"), mask)
    data = root / "data.yaml"
    data.write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\nmasks_dir: masks\nnames:\n  0: background\n  1: box\n"
    )
    return data


def write_tiny_depth_dataset(root: Path, images: int = 4, size: int = 64, seed: int = 0) -> Path:
    """Write an Ultralytics depth dataset (images/ and depth/ 16-bit PNGs in millimetres) and return its YAML.

    The depth is a ramp from 1 m to 5 m with a nearer rectangle that is also brighter in the image; train = val.

    Args:
        root (Path): Folder to write into.
        images (int): Number of images.
        size (int): Image side in pixels.
        seed (int): Seed for the pixels and rectangles.

    Returns:
        (Path): The dataset YAML.
    """
    rng = np.random.default_rng(seed)
    ramp = np.linspace(1000, 5000, size, dtype=np.float64)[:, None].repeat(size, 1)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "depth" / split).mkdir(parents=True, exist_ok=True)
        for index in range(images):
            depth = ramp.copy()
            image = (255 - depth / 5000 * 200).astype(np.uint8)[..., None].repeat(3, 2)
            x0, y0 = rng.integers(0, size // 2, 2)
            depth[y0 : y0 + size // 3, x0 : x0 + size // 3] = 800
            image[y0 : y0 + size // 3, x0 : x0 + size // 3] = 250
            cv2.imwrite(str(root / "images" / split / f"img{index}.jpg"), image)
            cv2.imwrite(str(root / "depth" / split / f"img{index}.png"), depth.astype(np.uint16))
    data = root / "data.yaml"
    data.write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\nnc: 1\nnames:\n  0: depth\ndepth_scale: 1000\n"
    )
    return data
