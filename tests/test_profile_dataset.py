"""Dataset profiler: counts, COCO size buckets and brightness of a hand-made YOLO dataset."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
from PIL import Image
from test_converters import build_urpc, make_oversized_png

from scsa_yolo.data.profile import profile_dataset, size_bucket

REPO = Path(__file__).resolve().parents[1]


def make_dataset(root: Path) -> Path:
    """Two train images (dark 128x128, one small + one large object; one background) and a bright val image."""
    for split, name, size, grey, rows in (
        ("train", "dark", (128, 128), 10, "0 0.5 0.5 0.8 0.8\n1 0.1 0.1 0.05 0.05\n"),  # 102x102 px, 6x6 px
        ("train", "empty", (64, 48), 30, ""),
        ("val", "bright", (64, 48), 200, "1 0.5 0.5 0.625 0.8333\n"),  # 40x40 px
    ):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, (grey, grey, grey)).save(root / "images" / split / f"{name}.png")
        (root / "labels" / split / f"{name}.txt").write_text(rows)
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames:\n  0: fish\n  1: diver\n")
    return root / "data.yaml"


def test_size_buckets_follow_coco_limits():
    """COCO: small below 32², medium below 96², large from 96² on."""
    assert [size_bucket(a) for a in (32**2 - 1, 32**2, 96**2 - 1, 96**2)] == ["small", "medium", "medium", "large"]


def test_profile_counts_sizes_and_brightness(tmp_path, monkeypatch):
    """Summary, CSV, Markdown and PNG agree with the hand-made dataset; text files named .png / .heic and a PNG
    claiming a decompression bomb's size are counted, not read, and nothing makes Ultralytics try to pip-install."""
    import ultralytics.utils.checks

    install_attempts = []  # recorded, since Ultralytics' PIL fallback swallows any exception raised here

    def no_install(*args, **kwargs):
        install_attempts.append(args)
        raise ImportError("no install in tests")

    monkeypatch.setattr(ultralytics.utils.checks, "check_requirements", no_install)
    out = tmp_path / "profile"
    data = make_dataset(tmp_path / "ds")
    for name in ("notes.png", "notes.heic"):
        (tmp_path / "ds" / "images" / "val" / name).write_text("not an image\n")
    make_oversized_png(tmp_path / "ds" / "images" / "val" / "bomb.png")
    summary = profile_dataset(data, out)
    assert summary["val"]["unreadable_images"] == 3 and summary["val"]["images"] == 1
    assert install_attempts == []

    train, val = summary["train"], summary["val"]
    assert (train["images"], train["background_images"], train["objects"]) == (2, 1, 2)
    assert (train["small_%"], train["medium_%"], train["large_%"]) == (50.0, 0.0, 50.0)
    assert train["class_counts"] == {"fish": 1, "diver": 1}
    assert train["brightness_mean"] == 20.0 and train["dark_images_%"] == 100.0
    assert (val["medium_%"], val["brightness_mean"], val["dark_images_%"]) == (100.0, 200.0, 0.0)

    with open(out / "profile.csv", newline="") as f:
        rows = {(r["split"], r["class"]): r for r in csv.DictReader(f)}
    assert rows[("train", "fish")]["large"] == "1" and rows[("train", "diver")]["small"] == "1"
    assert rows[("val", "fish")]["objects"] == "0"
    assert "| diver | 1 (1 / 0 / 0) | 1 (0 / 1 / 0) |" in (out / "profile.md").read_text()
    with Image.open(out / "profile.png") as png:
        assert png.width > 500


def test_interrupted_profile_does_not_block_a_prepare_rerun(tmp_path, monkeypatch):
    """profile's files in a prepared folder are recorded before they are written: after a profile that stops half-way,
    scsa-yolo prepare can still repeat its run into the folder (and removes them)."""
    import scsa_yolo.data.profile as profile
    from scsa_yolo.data.converters import convert_dataset

    src, dest = build_urpc(tmp_path / "src", n=3), tmp_path / "out"
    convert_dataset("urpc2020", [src], dest, val_fraction=0)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(profile, "_plot", interrupted)
    with pytest.raises(KeyboardInterrupt):
        profile.profile_dataset(dest / "data.yaml", preview=2)
    assert (dest / "profile" / "preview_train.jpg").is_file()
    convert_dataset("urpc2020", [src], dest, val_fraction=0)
    assert not (dest / "profile").exists()


def test_cli_writes_into_dataset_folder_by_default(tmp_path):
    """The script wrapper profiles a data.yaml and writes <dataset root>/profile/."""
    spec = importlib.util.spec_from_file_location("profile_dataset", REPO / "scripts" / "profile_dataset.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main([str(make_dataset(tmp_path / "ds"))]) == 0
    assert sorted(p.name for p in (tmp_path / "ds" / "profile").iterdir()) == [
        "preview_train.jpg",
        "preview_val.jpg",
        "profile.csv",
        "profile.md",
        "profile.png",
    ]


def test_label_preview_draws_boxes_where_the_labels_say(tmp_path):
    """preview_train.jpg: the large box of the dark image is drawn on its edge, in the class colour, nowhere else."""
    import cv2
    from ultralytics.utils.plotting import colors

    profile_dataset(make_dataset(tmp_path / "ds"), tmp_path / "profile", preview=4)
    mosaic = cv2.imread(str(tmp_path / "profile" / "preview_train.jpg"))
    assert mosaic.shape == (320, 640, 3)  # two train images, one 320-pixel tile each
    # dark.png is 128 px, scaled by 2.5: class 0 box x 0.1..0.9 -> 32..288 px; its left edge at x = 32
    distance_to_colour = abs(mosaic[200, 28:37].astype(int) - colors(0, True)).max(axis=1)
    assert distance_to_colour.min() < 40 and mosaic[200, 40:280].max() < 40  # box colour on the edge, dark inside
    empty_tile = mosaic[:, 320:].astype(int)
    assert (empty_tile.max(axis=2) - empty_tile.min(axis=2)).max() < 20  # empty.png: grey only, no box drawn


def test_segment_labels_are_boxed_like_ultralytics_and_malformed_rows_named(tmp_path):
    """Polygon rows count and draw as the polygon's extent (segments2boxes); bad rows are named by file:line and left
    out, never a traceback."""
    import cv2
    import numpy as np
    from ultralytics.utils.plotting import colors

    from scsa_yolo.data.profile import preview_labels, profile_split

    rows = {
        "poly": [
            "0 0.1 0.2 0.5 0.2 0.3 0.6",  # triangle: box x 0.1-0.5, y 0.2-0.6 = 40x40 px, medium
            "1 0.0 0.0 0.2 0.0 0.2 0.2 0.0 0.2",  # square 20x20 px, small
            "1 0.1 0.1 0.2 0.2",  # detection row in a segment file: Ultralytics rejects the image
            "0 0.1 0.1 0.2 0.2 0.3",  # six columns
            "0 0.1 0.1 0.2 0.2 0.3 0.3 0.4",  # odd number of coordinates
        ],
        "box": [
            "1 0.5 0.5 0.2 0.2",  # 20x20 px, small
            "0 0.5",
            "x 0.5 0.5 0.1 0.1",
            "5 0.5 0.5 0.1 0.1",  # class id beyond the two names
            "0 nan 0.5 0.1 0.1",
            "0 0.5 0.5 0.2 0.2 0.1",
            "0 1.5 0.5 0.2 0.2",
        ],
    }
    images = []
    for stem, lines in rows.items():
        images.append(tmp_path / "images" / f"{stem}.png")
        images[-1].parent.mkdir(exist_ok=True)
        Image.new("RGB", (100, 100)).save(images[-1])
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / "labels" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    names = {0: "fish", 1: "diver"}
    profile = profile_split(images, names, "test")
    assert profile.class_counts == {"fish": 1, "diver": 2}
    assert profile.size_counts == {("fish", "medium"): 1, ("diver", "small"): 2}
    bad = [row.split(": ", 1)[0].rsplit("/", 1)[1] for row in profile.malformed_rows]
    assert bad == [f"poly.txt:{n}" for n in (3, 4, 5)] + [f"box.txt:{n}" for n in range(2, 8)]
    assert profile.summary()["malformed_label_rows"] == 9

    preview = preview_labels(images[:1], names, tmp_path / "preview.jpg")  # poly.png: 100 px, scaled by 3.2
    tile = cv2.imread(str(preview)).astype(int)
    assert abs(tile[128, 28:37] - colors(0, True)).max(axis=1).min() < 60  # left edge of the triangle's box, x = 32
    assert np.abs(tile[100:160, 40:150]).max() < 40  # inside it: the black image, no other box
