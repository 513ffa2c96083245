"""Converters on fixtures shaped like the datasets as their owners ship them, and on the real owner files when present.

Layouts: RUOD extracted root (RUOD_ANN/, RUOD_pic/, Environmet_ANN/ + Environment_pic/), UTDAC2020's COCO release
(annotations/instances_{train,val}2017[_waterweeds].json, testA/testB without images), a URPC2020 root with its
unlabelled test-B-image/ folder. Real files: /work/shared/real-samples (see its SOURCES.md), read in place; the tests
that need them skip when the folder is absent.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_converters import (
    approx,
    assert_balanced,
    labels,
    load_report,
    make_image,
    make_oversized_png,
    voc_xml,
    write,
)

from scsa_yolo.data.converters import CONVERTERS, ConvertOptions, convert_dataset

REAL_SAMPLES = Path(os.environ.get("SCSA_REAL_SAMPLES", "/work/shared/real-samples"))


def coco(images: list[tuple[int, str]], annotations: list[dict], categories: list[tuple[int, str]]) -> str:
    """Return COCO JSON text; image entries are (id, file_name) of 64x48 images."""
    return json.dumps(
        {
            "images": [{"id": i, "file_name": name, "width": 64, "height": 48} for i, name in images],
            "annotations": [{"id": n, "iscrowd": 0, "ignore": 0, **a} for n, a in enumerate(annotations, 1)],
            "categories": [{"id": i, "name": name} for i, name in categories],
        }
    )


RUOD_CATEGORIES = list(enumerate(CONVERTERS["ruod"].spec.names, 1))


def build_ruod(root: Path) -> Path:
    """RUOD as extracted: RUOD_ANN/instances_{train,test}.json, RUOD_pic/{train,test}, and the environment subsets."""
    for split, names in (("train", ("000001.jpg", "000002.jpg")), ("test", ("000003.jpg",))):
        for name in names:
            make_image(root / "RUOD_pic" / split / name)
    train = [
        {"image_id": 1, "category_id": 6, "bbox": [8, 14, 32, 20]},  # corals
        {"image_id": 2, "category_id": 10, "bbox": [1, 1, 10, 10]},  # jellyfish
        {"image_id": 2, "category_id": 5, "bbox": [20, 20, 10, 10], "ignore": 1},  # fish the owners mark as ignored
    ]
    write(
        root / "RUOD_ANN" / "instances_train.json", coco([(1, "000001.jpg"), (2, "000002.jpg")], train, RUOD_CATEGORIES)
    )
    test = [{"image_id": 1, "category_id": 1, "bbox": [2, 2, 20, 10]}]
    write(root / "RUOD_ANN" / "instances_test.json", coco([(1, "000003.jpg")], test, RUOD_CATEGORIES))
    for subset in ("light", "color", "blur"):
        make_image(root / "Environment_pic" / subset / f"{subset}_1.jpg")
        anns = [{"image_id": 1, "category_id": 1, "bbox": [2, 2, 5, 5]}]
        write(
            root / "Environmet_ANN" / f"instances_{subset}.json", coco([(1, f"{subset}_1.jpg")], anns, RUOD_CATEGORIES)
        )
    return root


def test_ruod_converts_from_its_root_and_reports_environment_subsets(tmp_path):
    """The root as extracted converts; light/color/blur are named in notes, not converted; ignore: 1 is counted."""
    dest = tmp_path / "out"
    convert_dataset("ruod", [build_ruod(tmp_path / "RUOD")], dest)
    report = load_report(dest)
    assert_balanced(report)
    assert sorted(p.name for p in (dest / "images" / "train").iterdir()) == ["000001.jpg", "000002.jpg"]
    assert [p.name for p in (dest / "images" / "val").iterdir()] == ["000003.jpg"]  # official test written as val
    assert labels(dest, "train", "000001") == [approx([5, 24 / 64, 24 / 48, 32 / 64, 20 / 48])]  # corals = id 5
    assert [r[0] for r in labels(dest, "train", "000002")] == [9]  # jellyfish; the ignored fish is not a label
    assert report["splits"]["train"]["boxes_dropped_by_reason"] == {"ignore_flag": 1}
    assert report["splits"]["unassigned"]["images_skipped_by_reason"] == {"not_in_any_annotation_file": 3}
    assert sum("Environment_pic" in n and "no converted annotation file lists" in n for n in report["notes"]) == 3
    for subset in ("light", "color", "blur"):
        note = next(n for n in report["notes"] if f"instances_{subset}.json" in n)
        assert "environment subset" in note and "1 images (1 of them found" in note and "not converted" in note

    convert_dataset("ruod", [tmp_path / "RUOD"], dest, environment="blur")  # one subset as the test split
    report = load_report(dest)
    assert [p.name for p in (dest / "images" / "test").iterdir()] == ["blur_1.jpg"]
    assert yaml.safe_load((dest / "data.yaml").read_text())["test"] == "images/test"
    assert sum("not converted" in n for n in report["notes"]) == 2  # light and color


def build_utdac(root: Path) -> Path:
    """UTDAC2020 release: train2017/val2017 with 4- and 5-class JSONs, testA/testB without images, known defects."""
    four = [(1, "echinus"), (2, "starfish"), (3, "holothurian"), (4, "scallop")]
    for name in ("000001.jpg", "000002.jpg", "000003.jpg", "000004.jpg"):
        make_image(root / "train2017" / name)
    make_image(root / "val2017" / "000001.jpg")
    make_image(root / "val2017" / "000002.jpg")
    shutil.copyfile(root / "train2017" / "000004.jpg", root / "val2017" / "000001.jpg")  # the audit's train/val copy
    train_images = [(1, "000001.jpg"), (2, "000002.jpg"), (3, "000003.jpg"), (4, "000004.jpg")]
    train = [
        {"image_id": 1, "category_id": 1, "bbox": [4, 4, 10, 10]},
        {"image_id": 2, "category_id": 4, "bbox": [40, 10, -13, 8]},  # negative width, as ann 17748 of the release
        {"image_id": 3, "category_id": 3, "bbox": [10, 10, 20, 20]},
        {"image_id": 4, "category_id": 2, "bbox": [2, 2, 6, 6]},
    ]
    val = [
        {"image_id": 1, "category_id": 2, "bbox": [2, 2, 6, 6]},
        {"image_id": 2, "category_id": 1, "bbox": [1, 1, 5, 5]},
    ]
    val_images = [(1, "000001.jpg"), (2, "000002.jpg")]
    ann = root / "annotations"
    write(ann / "instances_train2017.json", coco(train_images, train, four))
    write(ann / "instances_val2017.json", coco(val_images, val, four))
    weeds = [*train, {"image_id": 3, "category_id": 5, "bbox": [30, 5, 10, 30]}]
    write(ann / "instances_train2017_waterweeds.json", coco(train_images, weeds, [*four, (5, "waterweeds")]))
    write(ann / "instances_val2017_waterweeds.json", coco(val_images, val, [*four, (5, "waterweeds")]))
    for test in ("testA", "instances_testB2017"):  # listed images the release does not contain; a renamed copy
        write(ann / f"{test}.json", coco([(1, "t1.jpg"), (2, "t2.jpg")], [], four))
    return root


def test_utdac2020_release_as_shipped(tmp_path):
    """train/val convert; testA/B reported; negative sizes dropped; the train/val copy reported, optionally left out."""
    src = build_utdac(tmp_path / "UTDAC2020")
    dest = tmp_path / "out"
    convert_dataset("utdac2020", [src], dest)
    report = load_report(dest)
    assert_balanced(report)
    data = yaml.safe_load((dest / "data.yaml").read_text())
    assert data["names"] == {0: "echinus", 1: "starfish", 2: "holothurian", 3: "scallop"}
    assert labels(dest, "train", "000003") == [approx([2, 20 / 64, 20 / 48, 20 / 64, 20 / 48])]
    assert report["splits"]["train"]["boxes_dropped_by_reason"] == {"negative_size": 1}
    notes = "\n".join(report["notes"])
    assert "testA.json: UTDAC2020 competition test set A" in notes and "2 images (0 of them found" in notes
    assert "instances_testB2017.json: UTDAC2020 competition test set B" in notes
    assert "instances_train2017_waterweeds.json: the five-class" in notes
    duplicate = report["issues"]["duplicate_across_splits"]
    assert duplicate["count"] == 1 and "val2017/000001.jpg (val) ==" in duplicate["examples"][0]
    assert duplicate["examples"][0].endswith("train2017/000004.jpg (train)")
    assert (dest / "images" / "val" / "000001.jpg").exists()  # reported, kept by default

    convert_dataset("utdac2020", [src], dest, ConvertOptions(drop_eval_duplicates=True), waterweeds=True)
    report = load_report(dest)
    assert_balanced(report)
    assert sorted(p.name for p in (dest / "images" / "val").iterdir()) == ["000002.jpg"]
    assert report["splits"]["val"]["images_skipped_by_reason"] == {"duplicate_of_earlier_split": 1}
    assert yaml.safe_load((dest / "data.yaml").read_text())["names"][4] == "waterweeds"
    assert [r[0] for r in labels(dest, "train", "000003")] == [2, 4]
    assert "instances_train2017.json: the four-class file" in "\n".join(report["notes"])


def test_pixel_identical_copy_with_other_bytes_is_found_only_by_pixels(tmp_path):
    """val/000002.png has the pixels of train/000003.jpg decoded, in another container: bytes differ, pixels match.
    An image whose header claims a decompression bomb's size is skipped as unusable, in both modes."""
    from PIL import Image

    src = build_utdac(tmp_path / "UTDAC2020")
    make_image(src / "train2017" / "000003.jpg", colour=(200, 30, 30))  # the other fixtures are flat grey
    with Image.open(src / "train2017" / "000003.jpg") as image:
        image.convert("RGB").save(src / "val2017" / "000002.png")
    (src / "val2017" / "000002.jpg").unlink()
    make_oversized_png(src / "train2017" / "000002.jpg")
    val = json.loads((src / "annotations" / "instances_val2017.json").read_text())
    val["images"][1]["file_name"] = "000002.png"
    write(src / "annotations" / "instances_val2017.json", json.dumps(val))
    convert_dataset("utdac2020", [src], tmp_path / "bytes")
    assert load_report(tmp_path / "bytes")["issues"]["duplicate_across_splits"]["count"] == 1  # the byte copy only
    convert_dataset("utdac2020", [src], tmp_path / "pixels", ConvertOptions(pixel_duplicates=True))
    report = load_report(tmp_path / "pixels")
    assert report["splits"]["train"]["images_skipped_by_reason"] == {"unusable_image": 1}
    assert "decompression bomb" in report["issues"]["unusable_image"]["examples"][0]
    examples = report["issues"]["duplicate_across_splits"]["examples"]
    assert len(examples) == 2 and any(
        "val2017/000002.png (val) ==" in e and "000003.jpg (train)" in e for e in examples
    )


def test_urpc_unlabelled_test_folder_is_reported_not_made_background(tmp_path):
    """URPC root with test-B-image/: its images never reach train/val; a lone unlabelled image only with the option."""
    src = tmp_path / "URPC2020"
    for i in range(4):
        make_image(src / "train" / "image" / f"{i:06d}.jpg")
        if i < 3:
            write(src / "train" / "box" / f"{i:06d}.xml", voc_xml(f"{i:06d}.jpg", [("echinus", (2, 2, 20, 20), 0)]))
    for i in range(3):
        make_image(src / "test-B-image" / f"{i:06d}.jpg")
    dest = tmp_path / "out"
    convert_dataset("urpc2020", [src], dest, val_fraction=0.34)
    report = load_report(dest)
    assert_balanced(report)
    written = sorted(p.relative_to(dest / "images").as_posix() for p in (dest / "images").rglob("*.jpg"))
    assert len(written) == 3 and all(Path(w).stem in {"000000", "000001", "000002"} for w in written)
    assert report["splits"]["unassigned"]["images_skipped_by_reason"] == {
        "image_without_annotation": 1, "unlabelled_folder": 3,
    }  # fmt: skip
    assert any("test-B-image: 3 images, none with an annotation" in n for n in report["notes"])
    listed = (dest / "splits" / "train.txt").read_text() + (dest / "splits" / "val.txt").read_text()
    assert "test-B-image" not in listed and "000003" not in listed

    convert_dataset("urpc2020", [src], dest, ConvertOptions(unlabelled_backgrounds=True), val_fraction=0.34)
    report = load_report(dest)
    assert sum(s["background_images"] for s in report["splits"].values()) == 1  # train/image/000003.jpg
    assert report["splits"]["unassigned"]["images_skipped_by_reason"] == {"unlabelled_folder": 3}


def test_voc_xml_never_pairs_with_a_same_stem_image_of_another_folder(tmp_path):
    """A train image is missing: its XML stays unpaired (counted), not attached to test-B-image/'s same-stem image,
    nor to another split's; XML next to its images, and Annotations/ beside JPEGImages/, still pair."""
    src = tmp_path / "URPC2020"
    box = [("echinus", (2, 2, 20, 20), 0)]
    for i in range(3):
        write(src / "train" / "box" / f"{i:06d}.xml", voc_xml(f"{i:06d}.jpg", box))
        make_image(src / "test-B-image" / f"{i:06d}.jpg")
    make_image(src / "train" / "image" / "000001.jpg")  # 000000 and 000002 are missing from train/image
    make_image(src / "val" / "image" / "000002.jpg")  # another split's image, same stem
    write(src / "mixed" / "000005.xml", voc_xml("000005.jpg", box))
    make_image(src / "mixed" / "000005.jpg")
    make_image(src / "other" / "000005.jpg")  # a sibling of a folder that holds its own images: never used
    write(src / "Annotations" / "000006.xml", voc_xml("000006.jpg", box))
    make_image(src / "JPEGImages" / "000006.jpg")
    dest = tmp_path / "out"
    convert_dataset("urpc2020", [src], dest, val_fraction=0)
    report = load_report(dest)
    assert_balanced(report)
    listed = (dest / "splits" / "train.txt").read_text().split()
    assert listed == ["JPEGImages/000006.jpg", "mixed/000005.jpg", "train/image/000001.jpg"]
    unassigned = report["splits"]["unassigned"]
    assert unassigned["annotations_without_image"] == 2
    assert unassigned["boxes_dropped_by_reason"]["annotation_without_image"] == 2
    assert report["issues"]["unpaired_annotation"]["count"] == 2
    assert unassigned["images_skipped_by_reason"]["unlabelled_folder"] == 3 + 1 + 1  # test-B-image, val, other


def test_image_folder_linked_from_other_storage_is_read_once(tmp_path):
    """train/image is a link to another disk (as on shared storage): its images are found, a link loop ends, and a
    second link to the same folder adds no duplicates."""
    store = tmp_path / "disk2" / "image"
    for i in range(3):
        make_image(store / f"{i:06d}.jpg")
        write(
            tmp_path / "URPC2020" / "train" / "box" / f"{i:06d}.xml",
            voc_xml(f"{i:06d}.jpg", [("echinus", (2, 2, 9, 9), 0)]),
        )
    os.symlink(store, tmp_path / "URPC2020" / "train" / "image")
    os.symlink(store, tmp_path / "URPC2020" / "train" / "image_again")
    os.symlink("..", tmp_path / "URPC2020" / "train" / "box" / "loop")
    convert_dataset("urpc2020", [tmp_path / "URPC2020"], tmp_path / "out", val_fraction=0)
    report = load_report(tmp_path / "out")
    assert report["splits"]["train"]["images_out"] == 3 and "unassigned" not in report["splits"]
    listed = (tmp_path / "out" / "splits" / "train.txt").read_text().split()
    assert listed == [f"train/image/{i:06d}.jpg" for i in range(3)]


def test_voc_boxes_follow_the_one_based_pixel_convention(tmp_path):
    """xmin..xmax 1-based as in Ultralytics' VOC conversion: centre (min + max) / 2 - 1, size max - min."""
    src = tmp_path / "src"
    make_image(src / "image" / "a.jpg")
    write(src / "box" / "a.xml", voc_xml("a.jpg", [("starfish", (1, 1, 11, 21), 0)]))
    convert_dataset("urpc2020", [src], tmp_path / "out", val_fraction=0)
    row = labels(tmp_path / "out", "train", "a")[0]
    assert row == approx([3, 5 / 64, 10 / 48, 10 / 64, 20 / 48])
    assert abs(row[1] - 6 / 64) > 0.01  # the 0-based reading would put the centre a pixel further right


@pytest.mark.skipif(not (REAL_SAMPLES / "urpc2020").is_dir(), reason="real URPC2020 samples not present")
def test_real_urpc2020_xml_fits_the_one_based_reading(tmp_path):
    """The owners' XML (ymax = 1081 on 1920x1080 images) converts without a single clipped or dropped box."""
    src = tmp_path / "src"
    for name in ("000001", "000002"):
        make_image(src / "image" / f"{name}.jpg", size=(1920, 1080))
        (src / "box").mkdir(exist_ok=True)
        os.symlink(REAL_SAMPLES / "urpc2020" / f"{name}.xml", src / "box" / f"{name}.xml")  # as in train/box/
    convert_dataset("urpc2020", [src], tmp_path / "out", val_fraction=0)
    train = load_report(tmp_path / "out")["splits"]["train"]
    assert (train["boxes_in"], train["boxes_out"], train["boxes_clipped"]) == (12, 12, 0)
    rows = np.array(labels(tmp_path / "out", "train", "000001") + labels(tmp_path / "out", "train", "000002"))
    assert (rows[:, 2] + rows[:, 4] / 2).max() == pytest.approx(1.0, abs=1e-6)  # a box ends on the last pixel row


@pytest.mark.skipif(not (REAL_SAMPLES / "visdrone").is_dir(), reason="real VisDrone samples not present")
def test_real_visdrone_train_files_convert_line_for_line(tmp_path):
    """The two real train files (213 rows): 206 labels written and 7 ignored regions dropped, as counted by hand."""
    split = tmp_path / "src" / "VisDrone2019-DET-train"
    (split / "annotations").mkdir(parents=True)
    for name in ("0000068_00460_d_0000002", "0000068_00001_d_0000001"):
        make_image(split / "images" / f"{name}.jpg", size=(1360, 765))
        os.symlink(REAL_SAMPLES / "visdrone" / f"{name}.txt", split / "annotations" / f"{name}.txt")
    convert_dataset("visdrone", [tmp_path / "src"], tmp_path / "out")
    train = load_report(tmp_path / "out")["splits"]["train"]
    assert (train["boxes_in"], train["boxes_out"], train["boxes_dropped_by_reason"]) == (
        213,
        206,
        {"ignored_region": 7},
    )


@pytest.mark.skipif(not (REAL_SAMPLES / "exdark").is_dir(), reason="real ExDark samples not present")
def test_real_exdark_split_file_gives_the_official_split():
    """The owners' imageclasslist.txt (CRLF, header row) reads as 3000 / 1800 / 2563 images without a bad row."""
    from collections import Counter

    from scsa_yolo.data.converters.bbgt import read_split_file
    from scsa_yolo.data.converters.report import ConversionReport

    report = ConversionReport("ExDark")
    splits = read_split_file(REAL_SAMPLES / "exdark" / "imageclasslist.txt", report)
    assert Counter(splits.values()) == {"train": 3000, "val": 1800, "test": 2563} and not report.issue_totals
