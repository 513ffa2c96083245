"""Dataset converters: tiny fixtures in each native format, including the bad inputs the converters must survive."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageOps

from scsa_yolo.data.converters import (
    CONVERTERS,
    MANIFEST_NAME,
    REPORT_NAME,
    ConversionError,
    convert_dataset,
)
from scsa_yolo.data.images import stored_to_displayed

REPO = Path(__file__).resolve().parents[1]
SIZE = (64, 48)  # width, height of fixture images
HEADER = "% bbGt version=3\n"
ZEROS = " 0 0 0 0 0 0 0"


def approx(values):
    """Compare label rows, which are written with 6 decimals."""
    return pytest.approx(values, abs=2e-6)


def make_image(path: Path, size: tuple[int, int] = SIZE, colour=(40, 40, 40), orientation: int | None = None) -> Path:
    """Write a flat-colour image; ``orientation`` adds an EXIF orientation tag (JPEG only).

    The file's path is stored in a JPEG comment or PNG text chunk, so no two fixture images are byte-identical (a
    one-pixel difference can vanish in JPEG quantisation) while the pixels stay flat.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    tag = str(path).encode()
    if path.suffix.lower() == ".png":
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("path", str(path))
        extra = {"pnginfo": info}
    else:
        extra = {"comment": tag}
    if orientation:
        exif = image.getexif()
        exif[274] = orientation
        extra["exif"] = exif
    image.save(path, **extra)
    return path


def make_oversized_png(path: Path) -> Path:
    """Write a 16x16 PNG whose header claims 40000x40000 pixels: Pillow refuses it as a decompression bomb."""
    import io
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", 40000, 40000)  # IHDR width and height, after the signature and chunk header
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # the chunk's CRC over type and data
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def write(path: Path, text: str) -> Path:
    """Write a text file, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def labels(dest: Path, split: str, stem: str) -> list[list[float]]:
    """Read one output label file as rows of floats."""
    return [[float(v) for v in ln.split()] for ln in (dest / "labels" / split / f"{stem}.txt").read_text().splitlines()]


def load_report(dest: Path) -> dict:
    """Read the JSON report."""
    return json.loads((dest / REPORT_NAME).read_text())


def assert_balanced(report: dict) -> None:
    """Every box and image that went in is either written or dropped with a reason."""
    for split, s in report["splits"].items():
        assert s["boxes_in"] == s["boxes_out"] + sum(s["boxes_dropped_by_reason"].values()), split
        assert s["images_in"] == s["images_out"] + sum(s["images_skipped_by_reason"].values()), split


def tree_digest(root: Path) -> dict[str, str]:
    """Hash every file below ``root`` by relative path."""
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


# ---------------------------------------------------------------------------------------------------------------------
# Fixtures in native formats


def build_exdark(root: Path) -> Path:
    """ExDark-like download: class folders, bbGt files, imageclasslist.txt, with the usual defects."""
    images, annos = root / "ExDark", root / "ExDark_Annno"
    make_image(images / "Bicycle" / "2015_00001.jpg")
    make_image(images / "Bicycle" / "2015_00002.JPG")  # extension case differs from the annotation name
    make_image(images / "Bicycle" / "2015_00003.png")
    make_image(images / "Car" / "2015_00004.jpeg")
    make_image(images / "Car" / "2015_00005.jpg")  # not in the split list
    make_image(images / "Car" / "2015_00006.jpg")  # no annotation -> background
    truncated = make_image(images / "Car" / "2015_00007.jpg")
    truncated.write_bytes(truncated.read_bytes()[:300])
    write(
        annos / "Bicycle" / "2015_00001.jpg.txt",
        HEADER
        + f"Bicycle 10 5 20 15{ZEROS}\n"  # kept
        + f"Unicorn 1 1 5 5{ZEROS}\n"  # unknown class
        + f"Car 50 40 30 30{ZEROS}\n"  # clipped to 64x48
        + f"People 5 5 0 10{ZEROS}\n"  # degenerate
        + "People ten 5 6 7\n"  # malformed
        + f"Dog 100 100 5 5{ZEROS}\n",  # outside the image
    )
    write(annos / "Bicycle" / "2015_00002.jpg.txt", HEADER + f"person 0 0 32 24{ZEROS}\n")  # alias of People
    write(annos / "Bicycle" / "2015_00003.png.txt", HEADER + f"Boat 1 1 10 10{ZEROS}\n")
    write(annos / "Car" / "2015_00004.jpeg.txt", HEADER + f"Car 2 2 10 10{ZEROS}\n")
    write(annos / "Car" / "2015_00007.jpg.txt", HEADER + f"Car 2 2 10 10{ZEROS}\n")
    write(annos / "Car" / "2015_00099.jpg.txt", HEADER + f"Car 2 2 10 10{ZEROS}\n")  # no image
    rows = {"00001.jpg": 1, "00002.JPG": 1, "00003.png": 2, "00004.jpeg": 3, "00006.jpg": 1, "00007.jpg": 1}
    write(
        root / "Groundtruth" / "imageclasslist.txt",
        "Name | Class | Light | In/Out | Train/Val/Test\n"
        + "".join(f"2015_{name} 1 2 1 {split}\n" for name, split in rows.items())
        + "2015_00099.jpg 5 2 1 1\nbroken row\n",
    )
    return root


def build_visdrone(root: Path) -> Path:
    """VisDrone-like download: train and val folders, ignored regions, 'others', bad rows, a test-challenge folder."""
    train = root / "VisDrone2019-DET-train"
    half_black = make_image(train / "images" / "0000001.jpg", colour=(0, 0, 0))
    with Image.open(half_black) as image:  # left half black, right half white: mean colour is mid-grey
        image = image.copy()
    image.paste((255, 255, 255), (SIZE[0] // 2, 0, *SIZE))
    image.save(half_black, quality=100)
    write(
        train / "annotations" / "0000001.txt",
        "1,2,10,8,1,4,0,0\n"  # car
        "20,20,10,10,0,0,0,0\n"  # ignored region
        "30,5,6,6,1,11,0,0,\n"  # others, trailing comma
        "40,30,50,50,1,1,0,0\n"  # pedestrian, clipped
        "5,5,x,5,1,1,0,0\n"  # malformed
        "5,5,5,5,1,12,0,0\n",  # unknown category
    )
    make_image(train / "images" / "0000002.jpg")
    write(train / "annotations" / "0000002.txt", "0,0,64,48,0,0,0,0\n")  # only an ignored region: image stays
    make_image(train / "images" / "0000003.jpg")  # no annotation file
    write(train / "annotations" / "0000004.txt", "1,1,5,5,1,2,0,0\n")  # no image
    val = root / "VisDrone2019-DET-val"
    make_image(val / "images" / "0000010.jpg")
    write(val / "annotations" / "0000010.txt", "3,3,10,10,1,10,0,0\n")
    make_image(root / "VisDrone2019-DET-test-challenge" / "images" / "9999.jpg")
    return root


def build_coco(root: Path) -> Path:
    """DUO-like download: non-contiguous category ids, a file name reused by train and test, crowd and orphan rows."""
    for split, names in (("train", ("a.jpg", "b.jpg", "c.jpg", "extra.jpg")), ("test", ("a.jpg", "d.jpg"))):
        for name in names:
            make_image(root / "images" / split / name)
    categories = [{"id": 40, "name": "starfish"}, {"id": 7, "name": "holothurian"}, {"id": 3, "name": "Sea Urchin"}]
    train = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48},
            {"id": 3, "file_name": "c.jpg", "width": 64, "height": 48},  # no annotations -> background
            {"id": 4, "file_name": "missing.jpg", "width": 64, "height": 48},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 40, "bbox": [1, 1, 10, 10], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [20, 20, 10, 10], "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 7, "bbox": [5, 5, 10, 10], "iscrowd": 1},
            {"id": 4, "image_id": 2, "category_id": 99, "bbox": [5, 5, 10, 10], "iscrowd": 0},
            {"id": 5, "image_id": 2, "category_id": 7, "bbox": [5, 5], "iscrowd": 0},
            {"id": 6, "image_id": 77, "category_id": 7, "bbox": [5, 5, 10, 10], "iscrowd": 0},
            {"id": 7, "image_id": 2, "category_id": 7, "bbox": [5, 6, 10, 10], "iscrowd": 0},
            {"id": 8, "image_id": 4, "category_id": 7, "bbox": [5, 6, 10, 10], "iscrowd": 0},
        ],
        "categories": categories,
    }
    test = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}, {"id": 2, "file_name": "d.jpg"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [30, 30, 8, 8]},
            {"id": 2, "image_id": 2, "category_id": 3, "bbox": [0, 0, 8, 8]},
        ],
        "categories": categories,
    }
    write(root / "annotations" / "instances_train.json", json.dumps(train))
    write(root / "annotations" / "instances_test.json", json.dumps(test))
    return root


def voc_xml(name: str, objects: list[tuple[str, tuple[int, int, int, int], int]], size=SIZE) -> str:
    """Return a Pascal VOC annotation."""
    body = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b, d in objects
    )
    return (
        f"<annotation><filename>{name}</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
        f"<depth>3</depth></size>{body}</annotation>"
    )


def build_urpc(root: Path, n: int = 10) -> Path:
    """URPC-like download: images and Annotations, plus waterweeds, difficult, orphan XML and broken XML."""
    for i in range(n):
        make_image(root / "image" / f"{i:06d}.jpg")
        if i < n - 1:  # last image has no XML -> background
            objects = [
                ("echinus", (2, 2, 20, 20), 0),
                ("waterweeds", (30, 10, 40, 20), 0),
                ("scallop", (1, 1, 5, 5), 1),
            ]
            write(root / "box" / f"{i:06d}.xml", voc_xml(f"{i:06d}.jpg", objects))
    write(root / "box" / "orphan.xml", voc_xml("orphan.jpg", [("starfish", (1, 1, 9, 9), 0)]))
    write(root / "box" / "broken.xml", "<annotation><object>")
    return root


# ---------------------------------------------------------------------------------------------------------------------
# Tests


def test_exdark_official_split_and_bad_inputs(tmp_path):
    """Split from imageclasslist.txt; every defect ends up counted, the good boxes land where expected."""
    dest = tmp_path / "out"
    convert_dataset("exdark", [build_exdark(tmp_path / "src")], dest)
    report = load_report(dest)
    assert_balanced(report)

    assert sorted(p.name for p in (dest / "images" / "train").iterdir()) == ["2015_00001.jpg", "2015_00002.JPG"]
    assert [p.name for p in (dest / "images" / "val").iterdir()] == ["2015_00003.png"]
    assert [p.name for p in (dest / "images" / "test").iterdir()] == ["2015_00004.jpeg"]

    rows = labels(dest, "train", "2015_00001")
    assert [r[0] for r in rows] == [0, 4]  # Bicycle, Car (clipped)
    assert rows[0][1:] == approx([20 / 64, 12.5 / 48, 20 / 64, 15 / 48])
    assert rows[1][1:] == approx([57 / 64, 44 / 48, 14 / 64, 8 / 48])  # x 50..64, y 40..48
    assert labels(dest, "train", "2015_00002") == [approx([10, 0.25, 0.25, 0.5, 0.5])]  # 'person' -> People

    train = report["splits"]["train"]
    assert train["boxes_dropped_by_reason"] == {
        "annotation_without_image": 1, "degenerate": 1, "image_skipped": 1, "malformed_line": 1, "outside_image": 1,
        "unknown_class": 1,
    }  # fmt: skip
    assert train["boxes_clipped"] == 1 and train["images_without_annotation"] == 0
    # the truncated JPEG; 00006 has no annotation in a labelled folder: left out, not made a background
    assert train["images_skipped_by_reason"] == {"image_without_annotation": 1, "unreadable_image": 1}
    assert report["splits"]["unassigned"]["images_skipped_by_reason"] == {"not_in_split_file": 1}
    assert report["splits"]["train"]["annotations_without_image"] == 1
    issues = report["issues"]
    assert any(e.endswith("2015_00001.jpg.txt:6: 'People ten 5 6 7'") for e in issues["malformed_line"]["examples"])
    assert issues["malformed_split_row"]["count"] == 1

    data = yaml.safe_load((dest / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(CONVERTERS["exdark"].spec.names))
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/val", "images/test")


def test_exdark_without_split_file_is_a_clear_error(tmp_path):
    """No imageclasslist.txt: stop and say how to pass it, instead of inventing a split."""
    src = build_exdark(tmp_path / "src")
    split_file = src / "Groundtruth" / "imageclasslist.txt"
    moved = shutil.move(split_file, tmp_path / "list.txt")
    with pytest.raises(ConversionError, match="--split-file"):
        convert_dataset("exdark", [src], tmp_path / "out")
    with pytest.raises(ConversionError, match="does not exist"):
        convert_dataset("exdark", [src], tmp_path / "out", split_file=tmp_path / "typo.txt")
    convert_dataset("exdark", [src], tmp_path / "out", split_file=moved)
    assert (tmp_path / "out" / "data.yaml").is_file()


def test_exdark_boxes_of_second_annotations_and_unlisted_images_are_counted_in_their_split(tmp_path):
    """a.jpg.txt and a.JPG.txt describe one image: the second file's boxes are dropped in the image's split; an image
    missing from the split file drops its boxes too. Every box line of every file is counted exactly once."""
    src = tmp_path / "src"
    make_image(src / "ExDark" / "Car" / "a.jpg")
    make_image(src / "ExDark" / "Car" / "b.jpg")  # not in the split file
    write(src / "ExDark_Annno" / "Car" / "a.JPG.txt", HEADER + f"Car 1 1 9 9{ZEROS}\n")  # first in sorted order: kept
    write(src / "ExDark_Annno" / "Car" / "a.jpg.txt", HEADER + f"Car 2 2 9 9{ZEROS}\nCar 3 3 9 9{ZEROS}\nbad\n")
    write(src / "ExDark_Annno" / "Car" / "b.jpg.txt", HEADER + f"Car 1 1 9 9{ZEROS}\n")
    write(src / "imageclasslist.txt", "a.jpg 5 2 1 1\n")
    convert_dataset("exdark", [src], tmp_path / "out")
    report = load_report(tmp_path / "out")
    assert_balanced(report)
    train, unassigned = report["splits"]["train"], report["splits"]["unassigned"]
    assert (train["boxes_in"], train["boxes_out"]) == (4, 1)
    assert train["boxes_dropped_by_reason"] == {"duplicate_annotation": 2, "malformed_line": 1}
    assert unassigned["boxes_dropped_by_reason"] == {"image_skipped": 1}
    assert sum(s["boxes_in"] for s in report["splits"].values()) == 5  # box lines in the three files
    assert report["issues"]["duplicate_annotation"]["examples"][0].endswith(
        "(kept " + str(src / "ExDark_Annno" / "Car" / "a.JPG.txt") + ")"
    )


def test_visdrone_ignored_regions_and_others_never_drop_an_image(tmp_path):
    """Ignored regions and 'others' are counted drops; every written label passes Ultralytics' own check."""
    from ultralytics.data.utils import verify_image_label

    dest = tmp_path / "out"
    convert_dataset("visdrone", [build_visdrone(tmp_path / "src")], dest, fill_ignored=True)
    report = load_report(dest)
    assert_balanced(report)
    train = report["splits"]["train"]
    assert train["boxes_dropped_by_reason"] == {
        "annotation_without_image": 1, "excluded_class": 1, "ignored_region": 2, "malformed_line": 1,
        "unknown_class": 1,
    }  # fmt: skip
    assert (train["images_out"], train["background_images"], train["painted_images"]) == (2, 1, 2)
    assert train["images_skipped_by_reason"] == {"image_without_annotation": 1}  # 0000003.jpg
    assert any("test-challenge" in note for note in report["notes"])
    assert not (dest / "images" / "test").exists()

    rows = labels(dest, "train", "0000001")
    assert [r[0] for r in rows] == [3, 0]  # car, pedestrian; never 10 ('others' minus one)
    for image in (dest / "images").rglob("*.jpg"):
        label = str(image).replace("/images/", "/labels/").rsplit(".", 1)[0] + ".txt"
        result = verify_image_label((str(image), label, "", False, 10, 0, 0, False))
        assert result[8] == 0, result[9]  # nc: Ultralytics would mark the image corrupt and drop it

    with Image.open(dest / "images" / "train" / "0000001.jpg") as painted:
        pixels = np.asarray(painted.convert("RGB")).astype(int)
    assert abs(pixels[25, 25] - 128).max() < 10  # ignored region (x, y 20..30, in the black half) now mean grey
    assert pixels[5, 5].max() < 10 and pixels[5, 60].min() > 245  # outside the region: untouched (within JPEG loss)


def test_coco_maps_categories_by_name_and_finds_image_folders(tmp_path):
    """Ids 40/7/3 map by name to the official order; a zip source works; test becomes val; orphans are counted."""
    src = build_coco(tmp_path / "src")
    archive = shutil.make_archive(str(tmp_path / "DUO"), "zip", src)
    dest = tmp_path / "out"
    convert_dataset("duo", [archive], dest)
    report = load_report(dest)
    assert_balanced(report)
    assert not (dest / ".prepare-work").exists()

    assert labels(dest, "train", "a") == [
        approx([3, 6 / 64, 6 / 48, 10 / 64, 10 / 48]),  # starfish
        approx([1, 25 / 64, 25 / 48, 10 / 64, 10 / 48]),  # 'Sea Urchin' -> echinus
    ]
    assert labels(dest, "train", "b") == [approx([0, 10 / 64, 11 / 48, 10 / 64, 10 / 48])]
    assert labels(dest, "train", "c") == []
    assert labels(dest, "val", "a") == [approx([0, 34 / 64, 34 / 48, 8 / 64, 8 / 48])]  # test a.jpg, not train
    train = report["splits"]["train"]
    assert train["boxes_dropped_by_reason"] == {
        "annotation_without_image": 2, "crowd": 1, "malformed_line": 1, "unknown_class": 1,
    }  # fmt: skip
    assert train["images_skipped_by_reason"] == {"not_in_annotation_file": 1}  # extra.jpg
    assert yaml.safe_load((dest / "data.yaml").read_text())["val"] == "images/val"


def test_urpc_seeded_split_is_deterministic_and_recorded(tmp_path):
    """Same seed, same split; other seed, other split; the lists and the fraction land in the output."""
    src = build_urpc(tmp_path / "src")
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        convert_dataset("urpc2020", [src], tmp_path / name, val_fraction=0.3, seed=seed)
        runs[name] = (tmp_path / name / "splits" / "val.txt").read_text().split()
    assert len(runs["a"]) == 3 and runs["a"] == runs["b"] and runs["a"] != runs["c"]
    assert sorted(p.stem for p in (tmp_path / "a" / "images" / "val").iterdir()) == sorted(
        Path(f).stem for f in runs["a"]
    )
    assert len((tmp_path / "a" / "splits" / "train.txt").read_text().split()) == 6  # the 10th image has no XML

    report = load_report(tmp_path / "a")
    assert_balanced(report)
    dropped = {
        r: sum(s["boxes_dropped_by_reason"].get(r, 0) for s in report["splits"].values())
        for r in ("excluded_class", "difficult")
    }
    assert dropped == {"excluded_class": 9, "difficult": 9}  # waterweeds and difficult scallops of 9 XML files
    assert report["issues"]["unreadable_annotation"]["count"] == 1
    assert report["issues"]["annotation_without_image"]["count"] == 1
    assert "seeded random" in (tmp_path / "a" / "data.yaml").read_text()


@pytest.mark.parametrize("orientation", range(2, 9))
def test_stored_to_displayed_matches_pillow_exif_transpose(orientation):
    """A box drawn in stored pixels sits exactly where the mapped box says after ImageOps.exif_transpose."""
    image = Image.new("L", SIZE, 0)
    image.paste(255, (5, 7, 20, 30))  # x 5..20, y 7..30 in stored pixels
    exif = image.getexif()
    exif[274] = orientation
    image.info["exif"] = exif.tobytes()
    shown = np.asarray(ImageOps.exif_transpose(image))
    ys, xs = np.nonzero(shown)
    assert stored_to_displayed((5, 7, 20, 30), orientation, SIZE) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)


def test_exif_rotated_jpeg_labels_follow_the_loaded_orientation(tmp_path):
    """Orientation 6: VOC size says stored frame -> boxes rotated; label matches Ultralytics' loaded image shape."""
    from ultralytics.utils.patches import imread

    src = tmp_path / "src"
    make_image(src / "image" / "r.jpg", orientation=6)  # stored 64x48, displayed 48x64
    write(src / "box" / "r.xml", voc_xml("r.jpg", [("starfish", (1, 1, 17, 9), 0)]))  # 1-based: 0..16, 0..8
    convert_dataset("urpc2020", [src], tmp_path / "out", val_fraction=0)
    assert imread(str(tmp_path / "out" / "images" / "train" / "r.jpg")).shape[:2] == (64, 48)  # loader rotates
    # stored (0,0)-(16,8) -> displayed x 40..48, y 0..16 on a 48-wide, 64-high image
    assert labels(tmp_path / "out", "train", "r") == [approx([3, 44 / 48, 8 / 64, 8 / 48, 16 / 64])]
    assert load_report(tmp_path / "out")["splits"]["train"]["exif_rotated_images"] == 1

    write(src / "box" / "r.xml", voc_xml("r.jpg", [("starfish", (1, 1, 17, 9), 0)], size=(48, 64)))
    convert_dataset("urpc2020", [src], tmp_path / "out", val_fraction=0)  # declared displayed size: no rotation
    assert labels(tmp_path / "out", "train", "r") == [approx([3, 8 / 48, 4 / 64, 16 / 48, 8 / 64])]


def test_duplicate_stems_are_renamed_deterministically(tmp_path):
    """a.jpg and a.png in one split would share labels/a.txt: the second becomes a__2, with its own labels."""
    src = tmp_path / "src"
    for folder, ext in (("one", "jpg"), ("two", "png")):
        make_image(src / folder / f"a.{ext}")
        write(
            src / folder / "a.xml", voc_xml(f"a.{ext}", [("starfish" if ext == "jpg" else "echinus", (1, 1, 9, 9), 0)])
        )
    dest = tmp_path / "out"
    convert_dataset("urpc2020", [src], dest, val_fraction=0)
    assert sorted(p.name for p in (dest / "images" / "train").iterdir()) == ["a.jpg", "a__2.png"]
    assert labels(dest, "train", "a")[0][0] == 3 and labels(dest, "train", "a__2")[0][0] == 1
    assert load_report(dest)["splits"]["train"]["renamed_duplicate_stems"] == 1


def test_rerun_is_idempotent_and_never_deletes_user_files(tmp_path):
    """A second run gives byte-identical output and deletes exactly the recorded files; a user file stops it."""
    from scsa_yolo.data.profile import profile_dataset

    src, dest = build_visdrone(tmp_path / "src"), tmp_path / "out"
    with pytest.raises(ConversionError):  # a failed first attempt must not lock the folder
        convert_dataset("duo", [src], dest)
    convert_dataset("visdrone", [src], dest)
    first = tree_digest(dest)
    assert set(first) == set((dest / MANIFEST_NAME).read_text().split())  # every file recorded, nothing else
    profile_dataset(dest / "data.yaml", preview=2)  # default output dest/profile/, recorded in the manifest
    write(dest / "labels" / "train.cache", "ultralytics cache")  # Ultralytics' label cache: neither ours nor foreign
    convert_dataset("visdrone", [src], dest)
    assert not (dest / "profile").exists()  # profile_dataset's files were recorded, so they went
    assert (dest / "labels" / "train.cache").read_text() == "ultralytics cache"
    (dest / "labels" / "train.cache").unlink()
    assert tree_digest(dest) == first

    for user_file in (dest / "labels" / "train" / "mine.txt", dest / "profile" / "notes.md"):
        write(user_file, "mine")
        with pytest.raises(ConversionError, match=user_file.name):
            convert_dataset("visdrone", [src], dest)
        assert user_file.read_text() == "mine" and tree_digest(dest).keys() == first.keys() | {
            user_file.relative_to(dest).as_posix()
        }
        user_file.unlink()

    foreign = tmp_path / "foreign"
    write(foreign / "notes.txt", "mine")
    with pytest.raises(ConversionError, match="no earlier scsa-yolo prepare run recorded"):
        convert_dataset("visdrone", [src], foreign)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_dest_inside_source_is_not_rescanned(tmp_path):
    """Output placed inside the source folder must not feed the next run (no duplicated images)."""
    src = build_visdrone(tmp_path / "src")
    dest = src / "VisDrone2019-DET-train" / "yolo"
    convert_dataset("visdrone", [src], dest)
    convert_dataset("visdrone", [src], dest)
    assert load_report(dest)["splits"]["train"]["images_out"] == 2


def test_cli_exits_nonzero_when_nothing_usable(tmp_path, capsys):
    """A folder without the dataset gives exit code 2 and a message, and the CLI succeeds on real input."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("prepare_dataset", REPO / "scripts" / "prepare_dataset.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    make_image(tmp_path / "junk" / "images" / "x.jpg")
    assert cli.main(["duo", "--source", str(tmp_path / "junk"), "--dest", str(tmp_path / "o1")]) == 2
    assert "no COCO JSON" in capsys.readouterr().err
    write(tmp_path / "junk2" / "box" / "x.xml", voc_xml("x.jpg", [("kraken", (1, 1, 9, 9), 0)]))
    make_image(tmp_path / "junk2" / "image" / "x.jpg")
    assert cli.main(["urpc2020", "--source", str(tmp_path / "junk2"), "--dest", str(tmp_path / "o2")]) == 2
    assert "nothing usable" in capsys.readouterr().err
    misplaced = ["--waterweeds", "--seed", "1"]  # flags of other datasets would be ignored: refused, nothing touched
    assert cli.main(["ruod", "--source", str(tmp_path / "junk"), "--dest", str(tmp_path / "o4"), *misplaced]) == 2
    assert "--seed is for urpc2020 only; --waterweeds is for utdac2020 only, not ruod" in capsys.readouterr().err
    assert not (tmp_path / "o4").exists()
    src = build_urpc(tmp_path / "src")
    flags = ["--seed", "3", "--unlabelled-backgrounds", "--drop-eval-duplicates"]
    assert cli.main(["urpc2020", "--source", str(src), "--dest", str(tmp_path / "o3"), *flags]) == 0
    assert sum(s["background_images"] for s in load_report(tmp_path / "o3")["splits"].values()) == 1


def test_dataset_yamls_match_converter_classes():
    """The shipped datasets/*.yaml list the same classes, in the same order, as the converters write."""
    files = {"exdark": "ExDark.yaml", "visdrone": "VisDrone.yaml", "duo": "DUO.yaml", "ruod": "RUOD.yaml",
             "urpc2020": "URPC2020.yaml", "utdac2020": "UTDAC2020.yaml"}  # fmt: skip
    assert set(files) == set(CONVERTERS)
    for key, name in files.items():
        data = yaml.safe_load((REPO / "datasets" / name).read_text())
        assert data["names"] == dict(enumerate(CONVERTERS[key].spec.names)), name
        assert {"train", "val"} <= set(data)


def test_converted_dataset_passes_check_det_dataset_and_trains_one_epoch(tmp_path):
    """The output is a dataset Ultralytics accepts as is: checker, then one tiny training epoch."""
    from ultralytics import YOLO
    from ultralytics.data.utils import check_det_dataset

    src = build_urpc(tmp_path / "src", n=8)
    dest = tmp_path / "URPC"
    convert_dataset("urpc2020", [src], dest, val_fraction=0.25)
    data = check_det_dataset(str(dest / "data.yaml"), autodownload=False)
    assert data["nc"] == 4 and Path(data["train"]) == dest / "images" / "train" and Path(data["val"]).is_dir()

    model = YOLO("yolov8n.yaml")
    model.train(data=str(dest / "data.yaml"), epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False,
                project=str(tmp_path / "runs"), name="t", amp=False, val=True, verbose=False)  # fmt: skip
    assert (tmp_path / "runs" / "t" / "weights" / "last.pt").is_file()
    assert model.trainer.train_loader.dataset.labels[0]["cls"].size  # labels reached the loader
