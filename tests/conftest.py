"""Test-session set-up shared by every test module.

Ultralytics reads ``YOLO_CONFIG_DIR`` and ``YOLO_OFFLINE`` once, at import, so they are set here before any test
module imports it: settings go to a throw-away folder and nothing is fetched from the network. Triton likewise picks
its interpreter when first imported: without a GPU, ``TRITON_INTERPRET=1`` lets the SCSA op's Triton kernel run on
CPU tensors (``test_scsa_triton.py``).
"""

import os
import tempfile

import torch

os.environ["YOLO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="scsa-yolo-cfg-")
os.environ["YOLO_OFFLINE"] = "1"
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from pathlib import Path  # noqa: E402  (the environment above must be set before anything imports ultralytics)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# The compatibility suite (tests/compat) runs only where .ci/compat asks for it, in an environment made from the built
# wheel: .ci/compat sets SCSA_YOLO_COMPAT to the Ultralytics version it installed. A plain pytest does not collect it
# (it takes minutes and tests the installed wheel, not the checkout). It is ignored from here, not from a conftest.py
# of its own: a second conftest module would shadow this one for the tests that import helpers from it.
collect_ignore_glob = [] if os.environ.get("SCSA_YOLO_COMPAT") else ["compat/*"]


def write_tiny_detection_dataset(root: Path, images: int = 6, size: int = 96, seed: int = 0) -> Path:
    """Write a two-class YOLO dataset of bright boxes on noise (train = val) and return its data YAML.

    Args:
        root (Path): Folder to write into.
        images (int): Number of images.
        size (int): Image side in pixels.
        seed (int): Seed for the pixels and boxes.

    Returns:
        (Path): The dataset YAML.
    """
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for index in range(images):
        image = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        rows = []
        for _ in range(2):
            w, h = rng.integers(size // 6, size // 3, 2)
            x0, y0 = rng.integers(0, size - w), rng.integers(0, size - h)
            cls = int(rng.integers(0, 2))
            image[y0 : y0 + h, x0 : x0 + w] = (255, 255, 255) if cls else (0, 200, 255)
            rows.append(f"{cls} {(x0 + w / 2) / size:.6f} {(y0 + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}")
        cv2.imwrite(str(root / "images" / f"img{index}.jpg"), image)
        (root / "labels" / f"img{index}.txt").write_text("\n".join(rows) + "\n")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images\nval: images\nnames:\n  0: box\n  1: light\n")
    return data


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A freshly written tiny detection dataset; returns its data YAML."""
    return write_tiny_detection_dataset(tmp_path / "tiny")


@pytest.fixture(scope="module")
def torch_single_thread():
    """Run a module's tests with one torch thread: tiny tensors gain nothing from intra-op threads, and on a loaded
    2-core machine the threads' waits on each other made 0.1 s passes take seconds. Restores the count afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
