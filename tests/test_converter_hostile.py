"""Converters on hostile and broken input: archives that escape, non-finite numbers, clashing ids, fake images."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml
from test_converters import (
    HEADER,
    ZEROS,
    assert_balanced,
    build_coco,
    build_urpc,
    load_report,
    make_image,
    tree_digest,
    voc_xml,
    write,
)

from scsa_yolo.data.converters import ConversionError, convert_dataset
from scsa_yolo.data.converters.archives import unsafe_tar_members


def add_member(archive: tarfile.TarFile, name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = ""):
    """Add one member of any kind to an open tar archive."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize(
    "members",
    [
        [("../../../../../escaped.txt",)],  # from out/.prepare-work/extracted/0_bad.tar up to tmp_path/deep
        [("/tmp/scsa_yolo_absolute_escape.txt",)],
        [("evil", b"", tarfile.SYMTYPE, "../../../../.."), ("evil/escaped.txt",)],  # a file written through a link
        [("ok", b"", tarfile.SYMTYPE, "."), ("ok/up", b"", tarfile.SYMTYPE, "..")],  # a chain that climbs out
        [("d", b"", tarfile.SYMTYPE, "."), ("sub/l", b"", tarfile.SYMTYPE, "../d/..")],  # '..' after a link
        [("hard", b"", tarfile.LNKTYPE, "../outside.txt")],
        # y is the extraction folder; five '..' after it reach tmp_path, while the name alone looks like "escaped.txt"
        [("a/b/c/d/y", b"", tarfile.SYMTYPE, "../../../.."), ("a/b/c/d/y/../../../../../escaped.txt",)],
        [
            ("x", b"", tarfile.SYMTYPE, "a/b/c/d/y/../../../../../escaped.txt"),
            ("a/b/c/d/y", b"", tarfile.SYMTYPE, "../../../.."),
            ("x",),
        ],  # a link through a link stored after it, then a file written over the link
        [
            ("hard", b"", tarfile.LNKTYPE, "a/b/c/d/y/../../../../../escaped.txt"),
            ("a/b/c/d/y", b"", tarfile.SYMTYPE, "../../../.."),
            ("hard",),
        ],
        [
            ("a/b/c/d/y", b"", tarfile.SYMTYPE, "../../../.."),
            ("x", b"", tarfile.SYMTYPE, "A/B/C/D/Y/../../../../../escaped.txt"),
            ("x",),
        ],  # Y is y on macOS and Windows
    ],
    ids=[
        "dotdot",
        "absolute",
        "file-through-link",
        "link-chain",
        "dotdot-after-link",
        "hardlink",
        "dotdot-in-name-after-link",
        "link-through-later-link",
        "hardlink-through-later-link",
        "case-folded-link",
    ],
)
@pytest.mark.parametrize("data_filter", [True, False], ids=["data-filter", "python-without-data-filter"])
def test_tar_members_leaving_the_scratch_folder_are_refused(tmp_path, monkeypatch, members, data_filter):
    """Nothing is extracted, the error names the member, and no file appears outside --dest, with or without
    tarfile's data filter (absent before Python 3.9.17 / 3.10.12 / 3.11.4)."""
    if not data_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    archive_path = tmp_path / "deep" / "er" / "bad.tar"
    archive_path.parent.mkdir(parents=True)
    with tarfile.open(archive_path, "w") as archive:
        for member in members:
            add_member(archive, *member)
    before = {p for p in tmp_path.rglob("*")}
    dest = tmp_path / "deep" / "er" / "out"
    with pytest.raises(ConversionError, match="refused to extract") as error:
        convert_dataset("duo", [archive_path], dest)
    assert members[-1][0] in str(error.value)
    assert {p for p in tmp_path.rglob("*") if dest not in p.parents and p != dest} == before
    assert not Path("/tmp/scsa_yolo_absolute_escape.txt").exists()


@pytest.mark.parametrize("data_filter", [True, False], ids=["data-filter", "python-without-data-filter"])
def test_safe_tar_with_internal_link_is_extracted(tmp_path, monkeypatch, data_filter):
    """A link that stays inside is fine, with or without tarfile's data filter; devices are refused lexically; the
    report names files as paths inside the archive."""
    if not data_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)  # as on Python 3.9.16 / 3.10.11 / 3.11.3
    src = build_urpc(tmp_path / "src", n=3)
    archive_path = tmp_path / "urpc.tar.gz"
    with tarfile.open(archive_path, "w:gz") as archive:
        archive.add(src, arcname="URPC2020")
        add_member(archive, "URPC2020/box/readme_link", b"", tarfile.SYMTYPE, "../box/000000.xml")  # stays inside
        add_member(archive, "URPC2020/notes_hard", b"", tarfile.LNKTYPE, "URPC2020/box/000000.xml")  # as GNU tar
        add_member(archive, "URPC2020/notes_link", b"", tarfile.SYMTYPE, "notes_hard")  # to a hard link: a file
    convert_dataset("urpc2020", [archive_path], tmp_path / "out", val_fraction=0)
    report = load_report(tmp_path / "out")
    assert report["splits"]["train"]["images_out"] == 2
    # the scratch folder is gone after the run: files are named inside the archive
    assert report["issues"]["unreadable_annotation"]["examples"][0].startswith(
        f"{archive_path}/URPC2020/box/broken.xml"
    )
    assert ".prepare-work" not in (tmp_path / "out" / "prepare_report.json").read_text()
    device = tarfile.TarInfo("dev")
    device.type = tarfile.CHRTYPE
    assert unsafe_tar_members([device]) == ["dev: device or FIFO member"]


def test_zip_members_with_dotdot_are_refused(tmp_path):
    """zipfile would silently rename '../x'; the converter refuses the archive and names the member. Errors about a
    file inside a sound archive name it inside the archive, not in the scratch folder removed after the run."""
    archive_path = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive_path, "w") as archive:
        archive.writestr("annotations/instances_train.json", "{}")
        archive.writestr("../../escaped.txt", "x")
    with pytest.raises(ConversionError, match=r"\.\./\.\./escaped\.txt"):
        convert_dataset("duo", [archive_path], tmp_path / "out")

    coco = json.dumps({"images": [], "annotations": [], "categories": []})
    with zipfile.ZipFile(archive_path, "w") as archive:  # a sound archive; errors name files inside it
        archive.writestr("DUO/annotations/instances_extra.json", coco)
    with pytest.raises(
        ConversionError,
        match=f"cannot tell the split of {re.escape(str(archive_path))}/DUO/annotations/instances_extra",
    ):
        convert_dataset("duo", [archive_path], tmp_path / "out")


@pytest.mark.parametrize("suffix", ["tar.gz", "tar", "zip"])
def test_truncated_archive_is_a_clear_error_not_a_partial_dataset(tmp_path, suffix):
    """A download cut short: the error names the archive and says so; nothing half-extracted stays behind."""
    src = build_urpc(tmp_path / "src", n=3)
    (src / "padding.bin").write_bytes(os.urandom(200_000))  # incompressible, so the cut falls inside a member
    archive_path = tmp_path / f"urpc.{suffix}"
    if suffix == "zip":
        with zipfile.ZipFile(archive_path, "w") as archive:
            for path in sorted(src.rglob("*")):
                archive.write(path, path.relative_to(tmp_path).as_posix())
    else:
        with tarfile.open(archive_path, "w:gz" if suffix == "tar.gz" else "w") as archive:
            archive.add(src, arcname="src")
    archive_path.write_bytes(archive_path.read_bytes()[: archive_path.stat().st_size * 2 // 3])
    with pytest.raises(ConversionError, match=r"urpc\.(zip|tar).*truncated or damaged"):
        convert_dataset("urpc2020", [archive_path], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_finite_and_boolean_coordinates_are_dropped_never_written(tmp_path):
    """NaN/inf in COCO, VOC, bbGt and VisDrone rows: own drop reason; [0, 0, inf, inf] is no full-image box."""
    coco_src = tmp_path / "coco"
    make_image(coco_src / "images" / "train" / "a.jpg")
    bboxes = [[float("nan"), 5, 20, 20], [0, 0, float("inf"), float("inf")], [True, 1, 5, 5], [1, 1, 10, 10]]
    train = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
        "annotations": [{"id": i, "image_id": 1, "category_id": 1, "bbox": b} for i, b in enumerate(bboxes)],
        "categories": [{"id": 1, "name": "echinus"}],
    }
    write(coco_src / "annotations" / "instances_train.json", json.dumps(train))  # NaN / Infinity as Python writes
    convert_dataset("duo", [coco_src], tmp_path / "o1")
    drops = load_report(tmp_path / "o1")["splits"]["train"]["boxes_dropped_by_reason"]
    assert drops == {"malformed_line": 1, "non_finite": 2}

    voc_src = build_urpc(tmp_path / "voc", n=3)
    write(voc_src / "box" / "000000.xml", voc_xml("000000.jpg", [("echinus", ("nan", 2, 9, 9), 0)]))
    convert_dataset("urpc2020", [voc_src], tmp_path / "o2", val_fraction=0)
    assert load_report(tmp_path / "o2")["splits"]["train"]["boxes_dropped_by_reason"]["non_finite"] == 1

    exdark = tmp_path / "exdark"
    make_image(exdark / "ExDark" / "Car" / "1.jpg")
    write(exdark / "ExDark_Annno" / "Car" / "1.jpg.txt", HEADER + f"Car nan 1 5 5{ZEROS}\nCar 1 1 inf 5{ZEROS}\n"
          f"Car 1 1 5 5{ZEROS}\n")  # fmt: skip
    write(exdark / "imageclasslist.txt", "1.jpg 5 1 1 1\n")
    convert_dataset("exdark", [exdark], tmp_path / "o3")
    assert load_report(tmp_path / "o3")["splits"]["train"]["boxes_dropped_by_reason"] == {"non_finite": 2}

    visdrone = tmp_path / "visdrone" / "VisDrone2019-DET-train"
    make_image(visdrone / "images" / "1.jpg")
    write(visdrone / "annotations" / "1.txt", "1,1,inf,5,1,4,0,0\nnan,1,5,5,1,4,0,0\n1,1,5,5,1,4,0,0\n")
    convert_dataset("visdrone", [tmp_path / "visdrone"], tmp_path / "o4")
    assert load_report(tmp_path / "o4")["splits"]["train"]["boxes_dropped_by_reason"] == {"malformed_line": 2}

    for out in ("o1", "o2", "o3", "o4"):
        assert_balanced(load_report(tmp_path / out))
        for label in (tmp_path / out / "labels").rglob("*.txt"):
            text = label.read_text()
            assert "nan" not in text and "inf" not in text and "1.000000 1.000000" not in text, label


def test_duplicate_coco_image_ids_stop_with_both_file_names(tmp_path):
    """Two images with one id: no box is moved onto the wrong image; the error names the file, the id, both names."""
    make_image(tmp_path / "src" / "images" / "train" / "a.jpg")
    make_image(tmp_path / "src" / "images" / "train" / "b.jpg")
    train = {
        "images": [{"id": 7, "file_name": "a.jpg"}, {"id": 7, "file_name": "b.jpg"}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 1, "name": "echinus"}],
    }
    write(tmp_path / "src" / "annotations" / "instances_train.json", json.dumps(train))
    with pytest.raises(
        ConversionError, match=r"instances_train\.json: image id 7 is used by both 'a\.jpg' and 'b\.jpg'"
    ):
        convert_dataset("duo", [tmp_path / "src"], tmp_path / "out")


def test_split_with_no_image_written_is_not_named_in_data_yaml(tmp_path):
    """Every val image unreadable: data.yaml's val is no empty folder (Ultralytics stops on one) and the fallback to
    train, whose scores are training scores, is said in the report; the same note when the user asks for no val."""
    make_image(tmp_path / "src" / "images" / "train" / "a.jpg")
    write(tmp_path / "src" / "images" / "test" / "b.jpg", "not an image\n")
    for split, name in (("train", "a.jpg"), ("test", "b.jpg")):
        anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}]
        data = {
            "images": [{"id": 1, "file_name": name}],
            "annotations": anns,
            "categories": [{"id": 1, "name": "echinus"}],
        }
        write(tmp_path / "src" / "annotations" / f"instances_{split}.json", json.dumps(data))
    convert_dataset("duo", [tmp_path / "src"], tmp_path / "out")
    assert yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())["val"] == "images/train"
    assert any("val scores are training scores" in note for note in load_report(tmp_path / "out")["notes"])

    convert_dataset("urpc2020", [build_urpc(tmp_path / "urpc", n=3)], tmp_path / "o2", val_fraction=0)
    assert any("val scores are training scores" in note for note in load_report(tmp_path / "o2")["notes"])


def test_duplicate_coco_category_ids_stop_with_both_names(tmp_path):
    """One category id with two names: no box is given a class by guess (a dict would keep the last name)."""
    make_image(tmp_path / "src" / "images" / "train" / "a.jpg")
    train = {
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 1, "name": "echinus"}, {"id": 1, "name": "starfish"}, {"id": 2, "name": "scallop"}],
    }
    write(tmp_path / "src" / "annotations" / "instances_train.json", json.dumps(train))
    with pytest.raises(ConversionError, match=r"category id 1 is used by both 'echinus' and 'starfish'"):
        convert_dataset("duo", [tmp_path / "src"], tmp_path / "out")


def test_coco_values_of_the_wrong_type_are_counted_never_a_traceback(tmp_path):
    """Lists as ids, an integer beyond the float range, a non-object entry: each counted under its reason."""
    make_image(tmp_path / "src" / "images" / "train" / "a.jpg")
    ann = {"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}
    train = {
        "images": [{"id": 1, "file_name": "a.jpg"}, "junk"],
        "annotations": [
            ann,
            {**ann, "bbox": [10**400, 1, 5, 5]},
            {**ann, "image_id": [1]},
            {**ann, "category_id": {"id": 1}},
            {**ann, "category_id": 2},
        ],
        "categories": [{"id": 1, "name": "echinus"}, {"id": [2], "name": "starfish"}],
    }
    write(tmp_path / "src" / "annotations" / "instances_train.json", json.dumps(train))
    convert_dataset("duo", [tmp_path / "src"], tmp_path / "out")
    report = load_report(tmp_path / "out")
    drops = report["splits"]["train"]["boxes_dropped_by_reason"]
    assert drops == {"annotation_without_image": 1, "malformed_line": 1, "unknown_class": 2}
    assert report["issues"]["malformed_image_entry"]["count"] == 1
    assert report["issues"]["malformed_category_entry"]["count"] == 1
    assert_balanced(report)

    write(tmp_path / "src" / "annotations" / "instances_train.json", '{"images": [1%s]}' % ("0" * 5000))
    with pytest.raises(ConversionError, match=r"instances_train\.json is not valid JSON: Exceeds the limit"):
        convert_dataset("duo", [tmp_path / "src"], tmp_path / "out")

    visdrone = tmp_path / "visdrone" / "VisDrone2019-DET-train"
    make_image(visdrone / "images" / "1.jpg")
    write(visdrone / "annotations" / "1.txt", "1e308,1,1e308,5,1,4,0,0\n1,1,5,5,1,4,0,0\n")  # int sum > float max
    convert_dataset("visdrone", [tmp_path / "visdrone"], tmp_path / "o2")
    assert load_report(tmp_path / "o2")["splits"]["train"]["boxes_dropped_by_reason"] == {"non_finite": 1}


def test_text_file_named_jpg_is_reported_plainly_and_installs_nothing(tmp_path, monkeypatch):
    """A symlink to a text file named .jpg: skipped with what is wrong with it; Ultralytics' pip fallback never runs.
    A dangling link is no file: named as such, its XML counted as an annotation without image."""
    import ultralytics.utils.checks

    def no_install(*args, **kwargs):
        raise AssertionError(f"check_requirements{args} called: an install would be attempted")

    monkeypatch.setattr(ultralytics.utils.checks, "check_requirements", no_install)
    src = build_urpc(tmp_path / "src", n=3)  # 000000 and 000001 have XML files
    write(tmp_path / "notes.txt", "not an image\n")
    (src / "image" / "000001.jpg").unlink()
    os.symlink(tmp_path / "notes.txt", src / "image" / "000001.jpg")
    (src / "image" / "000000.jpg").unlink()
    os.symlink(tmp_path / "gone.jpg", src / "image" / "000000.jpg")  # dangling link
    make_image(src / "image" / "000002.jpg")
    write(src / "box" / "000002.xml", voc_xml("000002.jpg", [("echinus", (2, 2, 20, 20), 0)]))
    convert_dataset("urpc2020", [src], tmp_path / "out", val_fraction=0)
    report = load_report(tmp_path / "out")
    assert report["splits"]["train"]["images_skipped_by_reason"] == {"unusable_image": 1}
    assert "000000.jpg: a dangling link; skipped" in report["issues"]["not_a_regular_file"]["examples"][0]
    assert report["splits"]["unassigned"]["annotations_without_image"] == 2  # 000000.xml and orphan.xml
    example = report["issues"]["unusable_image"]["examples"][0]
    assert "not an image: content starting with b'not an image" in example and "pi_heif" not in example


def test_edited_file_list_cannot_point_a_deletion_outside_dest(tmp_path):
    """prepare_files.txt is plain text: a name leaving --dest stops the run, and the file it names survives."""
    src, dest = build_urpc(tmp_path / "src", n=3), tmp_path / "out"
    convert_dataset("urpc2020", [src], dest)
    victim = write(tmp_path / "precious.txt", "mine")
    with open(dest / "prepare_files.txt", "a") as manifest:
        manifest.write("../precious.txt\n")
    with pytest.raises(
        ConversionError, match=r"names files outside --dest.*'\.\./precious\.txt' has an empty, '\.' or '\.\.' comp"
    ):
        convert_dataset("urpc2020", [src], dest)
    assert victim.read_text() == "mine"


def _unsplittable_coco(tmp_path: Path) -> Path:
    """A DUO-like download with one more annotation file whose split cannot be told from its name."""
    src = build_coco(tmp_path / "coco")
    write(src / "annotations" / "instances_light.json", (src / "annotations" / "instances_test.json").read_text())
    return src


def _truncated_archive(tmp_path: Path) -> Path:
    """A zip cut off half-way, as an interrupted download leaves it."""
    archive = tmp_path / "urpc.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("box/a.xml", "x" * 4000)
    archive.write_bytes(archive.read_bytes()[:-60])
    return archive


@pytest.mark.parametrize(
    "dataset, source, format_options, error",
    [
        ("urpc2020", lambda tmp: tmp / "urpc", {"val_fraction": 2}, ValueError),
        ("urpc2020", lambda tmp: tmp / "urpc", {"seed": "seven"}, ValueError),
        ("exdark", lambda tmp: tmp / "urpc", {"split_file": "no/such/imageclasslist.txt"}, ConversionError),
        ("duo", _unsplittable_coco, {}, ConversionError),
        ("urpc2020", lambda tmp: tmp / "typo", {}, ConversionError),
        ("urpc2020", _truncated_archive, {}, ConversionError),
    ],
    ids=["val-fraction", "seed", "split-file", "coco-split", "missing-source", "truncated-archive"],
)
def test_bad_option_or_source_fails_before_the_earlier_output_is_touched(
    tmp_path, dataset, source, format_options, error
):
    """Options, sources and annotation files are checked before anything of the earlier run in --dest is deleted; a
    new --dest is left as it was (not created)."""
    build_urpc(tmp_path / "urpc", n=3)
    dest = tmp_path / "out"
    convert_dataset("urpc2020", [tmp_path / "urpc"], dest)
    earlier = tree_digest(dest)
    with pytest.raises(error):
        convert_dataset(dataset, [source(tmp_path)], dest, **format_options)
    assert tree_digest(dest) == earlier and not (dest / ".prepare-work").exists()
    with pytest.raises(error):
        convert_dataset(dataset, [source(tmp_path)], tmp_path / "new", **format_options)
    assert not (tmp_path / "new").exists()


def test_coco_flags_other_than_0_1_or_true_false_are_malformed_never_guessed(tmp_path):
    """iscrowd / ignore as "0", "1", 2, 1.0 or null are counted as malformed_flag; 0/1 and true/false are read."""
    make_image(tmp_path / "src" / "images" / "train" / "a.jpg")
    ann = {"image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]}
    flags = [
        {"iscrowd": 0, "ignore": 0},
        {"ignore": False},
        {"iscrowd": True},
        {"ignore": 1},
        {"iscrowd": "0"},
        {"ignore": "1"},
        {"iscrowd": 2},
        {"iscrowd": 1.0},
        {"ignore": None},
    ]
    train = {
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "annotations": [{**ann, **f} for f in flags],
        "categories": [{"id": 1, "name": "echinus"}],
    }
    write(tmp_path / "src" / "annotations" / "instances_train.json", json.dumps(train))
    convert_dataset("duo", [tmp_path / "src"], tmp_path / "out")
    report = load_report(tmp_path / "out")
    assert_balanced(report)
    split = report["splits"]["train"]
    assert split["boxes_out"] == 2
    assert split["boxes_dropped_by_reason"] == {"crowd": 1, "ignore_flag": 1, "malformed_flag": 5}
    assert any("iscrowd '0'" in e for e in report["issues"]["malformed_flag"]["examples"])


@pytest.mark.parametrize("line_break", ["\n", "\r", "\u2028"], ids=["LF", "CR", "LINE-SEPARATOR"])
def test_file_name_with_a_line_break_is_refused_before_anything_is_touched(tmp_path, line_break):
    """prepare_files.txt and splits/*.txt list one name a line: a name with a line break stops the run with its name,
    before the earlier output is deleted; profile refuses an output folder whose name would break the list."""
    from scsa_yolo.data.profile import profile_dataset

    src, dest = build_urpc(tmp_path / "src", n=3), tmp_path / "out"
    convert_dataset("urpc2020", [src], dest)
    earlier = tree_digest(dest)
    name = f"a{line_break}b"
    make_image(src / "image" / f"{name}.jpg")
    write(src / "box" / f"{name}.xml", voc_xml(f"{name}.jpg", [("echinus", (2, 2, 20, 20), 0)]))
    with pytest.raises(ConversionError, match=re.escape(repr(f"{name}.jpg"))):
        convert_dataset("urpc2020", [src], dest)
    assert tree_digest(dest) == earlier
    with pytest.raises(ConversionError, match="contains a line break"):
        profile_dataset(dest / "data.yaml", dest / f"prof{line_break}ile", preview=0)
    assert tree_digest(dest) == earlier and not (dest / f"prof{line_break}ile").exists()
