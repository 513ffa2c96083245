"""The deepforest demo dataset: box accounting, split without overlap, caching, missing-wheel message."""

import csv
import os
import zipfile
from collections import defaultdict
from xml.etree import ElementTree

import pytest

from scsa_yolo.data import deepforest
from scsa_yolo.data.deepforest import Box, MissingWheelError, TileWindow, assign_boxes, build_deepforest_dataset

SMALL_IMAGES = ("OSBS_029.png", "SOAP_061.png")  # the two 400 x 400 tiles: 98 boxes, fast to cut


def _wheel():
    try:
        return deepforest.find_wheel()
    except MissingWheelError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("deepforest") / "dataset"
    report = build_deepforest_dataset(out, wheel=_wheel(), tile_size=128, images=SMALL_IMAGES)
    return out, report


def _manifest(out):
    with open(out / deepforest.MANIFEST_NAME, newline="") as handle:
        return list(csv.DictReader(handle))


def test_box_counts_add_up(small_build):
    out, report = small_build
    assert report.boxes.source == 61 + 37  # every box of both XML files, nothing from the duplicate CSVs
    for counts in [report.boxes, *report.per_image.values()]:
        assert counts.kept + counts.clipped + counts.dropped == counts.source
    assert report.boxes.clipped > 0  # 128-px tiles on 400-px images must cut some crowns
    # Every kept box is written once, every clipped box at least once: label lines are bounded below by that.
    label_lines = sum(len(path.read_text().splitlines()) for path in (out / "labels").rglob("*.txt"))
    assert label_lines == sum(report.labels.values())
    assert label_lines >= report.boxes.kept + report.boxes.clipped
    assert label_lines == sum(int(row["labels"]) for row in _manifest(out))


def test_box_outcomes_match_an_independent_recount(small_build):
    """Recount kept/clipped/dropped boxes and label lines per tile from the raw XML and the manifest's windows."""
    out, report = small_build
    rows = _manifest(out)
    with zipfile.ZipFile(_wheel()) as archive:
        for image in SMALL_IMAGES:
            root = ElementTree.fromstring(archive.read(deepforest.DATA_PREFIX + deepforest.SOURCE_IMAGES[image]))
            boxes = [
                [float(obj.find("bndbox").find(tag).text) for tag in ("xmin", "ymin", "xmax", "ymax")]
                for obj in root.iter("object")
            ]
            tiles = {
                row["file"]: [int(row[key]) for key in ("x0", "y0", "x1", "y1")]
                for row in rows
                if row["source"] == image
            }
            outcomes, lines = defaultdict(int), defaultdict(int)
            for x0, y0, x1, y1 in boxes:
                area = (x1 - x0) * (y1 - y0)
                overlaps = {}
                for name, (tx0, ty0, tx1, ty1) in tiles.items():
                    width, height = min(x1, tx1) - max(x0, tx0), min(y1, ty1) - max(y0, ty0)
                    if width > 0 and height > 0:
                        overlaps[name] = width * height
                if len(overlaps) == 1 and next(iter(overlaps.values())) == area:
                    outcomes["kept"] += 1
                    lines[next(iter(overlaps))] += 1
                    continue
                visible = [name for name, piece in overlaps.items() if piece >= 0.3 * area]
                outcomes["clipped" if visible else "dropped"] += 1
                for name in visible:
                    lines[name] += 1
            counts = report.per_image[image]
            assert (counts.kept, counts.clipped, counts.dropped) == (
                outcomes["kept"],
                outcomes["clipped"],
                outcomes["dropped"],
            )
            assert {row["file"]: int(row["labels"]) for row in rows if row["source"] == image} == {
                name: lines[name] for name in tiles
            }


def test_val_tiles_never_overlap_train_tiles(small_build):
    out, report = small_build
    windows = defaultdict(lambda: defaultdict(list))
    for row in _manifest(out):
        box = Box(*(float(row[key]) for key in ("x0", "y0", "x1", "y1")))
        windows[row["source"]][row["split"]].append(box)
    assert set(windows) == set(SMALL_IMAGES)
    for source, splits in windows.items():
        assert splits["train"] and splits["val"], source
        for val_box in splits["val"]:
            for train_box in splits["train"]:
                assert val_box.intersect(train_box).area == 0, (source, val_box, train_box)
        # Together the windows cover the whole 400 x 400 image exactly once.
        assert sum(box.area for boxes in splits.values() for box in boxes) == 400 * 400
    assert report.tiles["train"] + report.tiles["val"] == len(_manifest(out))


def test_labels_are_normalised_and_tiles_have_fixed_size(small_build):
    from PIL import Image

    out, _ = small_build
    for label_file in (out / "labels").rglob("*.txt"):
        for line in label_file.read_text().splitlines():
            cls, *xywh = line.split()
            assert cls == "0"
            assert all(0.0 <= float(value) <= 1.0 for value in xywh), line
    sizes = {Image.open(path).size for path in (out / "images").rglob("*.png")}
    assert sizes == {(128, 128)}
    assert "path:" in (out / deepforest.YAML_NAME).read_text()


def test_slivers_are_dropped_and_large_pieces_kept():
    left = TileWindow("train", "img", Box(0, 0, 100, 100))
    right = TileWindow("train", "img", Box(100, 0, 200, 100))
    inside = Box(10, 10, 30, 30)
    half_and_half = Box(90, 10, 110, 30)  # 50 % on each side
    mostly_left = Box(80, 40, 105, 60)  # 80 % left, a 20 % sliver right
    pieces, counts = assign_boxes([inside, half_and_half, mostly_left], [left, right], min_visible=0.3)
    assert (counts.kept, counts.clipped, counts.dropped) == (1, 2, 0)
    assert Box(80, 40, 100, 60) in pieces[0] and not any(p.y0 == 40 for p in pieces[1])  # the sliver is gone
    _, strict = assign_boxes([half_and_half], [left, right], min_visible=0.6)
    assert (strict.kept, strict.clipped, strict.dropped) == (0, 0, 1)


def test_build_is_cached_and_rebuilt_on_new_parameters(small_build, tmp_path):
    out, report = small_build
    tile = next((out / "images" / "train").glob("*.png"))
    stamp = tile.stat().st_mtime_ns
    again = build_deepforest_dataset(out, wheel=_wheel(), tile_size=128, images=SMALL_IMAGES)
    assert again.boxes == report.boxes and tile.stat().st_mtime_ns == stamp
    other = build_deepforest_dataset(tmp_path / "other", wheel=_wheel(), tile_size=256, images=SMALL_IMAGES[:1])
    assert other.boxes.source == 61 and other.params["tile_size"] == 256


def test_missing_wheel_says_how_to_get_it(tmp_path):
    with pytest.raises(MissingWheelError) as error:
        deepforest.find_wheel(tmp_path)
    message = str(error.value)
    assert deepforest.download_command(tmp_path) in message and "pip download --no-deps deepforest==" in message


def test_foreign_folder_is_not_overwritten(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        build_deepforest_dataset(tmp_path, wheel=_wheel(), tile_size=128, images=SMALL_IMAGES[:1])
    assert os.listdir(tmp_path) == ["notes.txt"]
