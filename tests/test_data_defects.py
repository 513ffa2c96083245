"""Defects 4-8 of issue 20: TIFF orientation, concurrent runs, pairing across folders and names, splits and odd
files, and input errors that must be one line (exit 2), never a traceback."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_converters import (
    HEADER,
    ZEROS,
    build_coco,
    build_exdark,
    build_urpc,
    build_visdrone,
    labels,
    load_report,
    make_image,
    tree_digest,
    voc_xml,
    write,
)

from scsa_yolo.data.converters import ConversionError, convert_dataset

REPO = Path(__file__).resolve().parents[1]


def writer_module():
    """The module whose probe_image the writer calls (moved by the rebuild of the data package)."""
    try:
        return importlib.import_module("scsa_yolo.data.converters.write")
    except ImportError:
        return importlib.import_module("scsa_yolo.data.converters.common")


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run ``scsa-yolo ARGV`` in-process; return the exit status and stderr."""
    from scsa_yolo.cli import main

    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    return status, capsys.readouterr().err


def assert_one_line_error(status: int, err: str, *words: str) -> None:
    """Exit 2, one error line naming ``words``, no traceback."""
    assert status == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], err


# ---------------------------------------------------------------------------------------------------------------------
# 4. TIFF EXIF orientation


def _rotated_pair(root: Path, suffix: str, orientation: int) -> Path:
    """URPC-like source: one 64x48 (stored) image with an EXIF orientation and a VOC box in stored pixels."""
    image = Image.new("RGB", (64, 48), (30, 30, 30))
    image.paste((250, 250, 250), (5, 5, 25, 15))
    exif = image.getexif()
    exif[274] = orientation
    (root / "image").mkdir(parents=True)
    image.save(root / "image" / f"a{suffix}", exif=exif, **({"quality": 100} if suffix == ".jpg" else {}))
    write(root / "box" / "a.xml", voc_xml(f"a{suffix}", [("echinus", (6, 6, 25, 15), 0)], size=(64, 48)))
    return root


@pytest.mark.parametrize("orientation", [6, 7, 8])
def test_exif_rotated_tiff_gets_the_same_labels_as_the_same_jpeg(tmp_path, orientation):
    """Defect 4: Pillow opens TIFFs already rotated; the labels of a rotated TIFF equal those of the same JPEG (and
    sit where Ultralytics' loader shows the object), instead of being dropped (6, 7) or misplaced (8)."""
    from ultralytics.utils.patches import imread

    rows = {}
    for suffix in (".jpg", ".tif"):
        src = _rotated_pair(tmp_path / f"src{suffix}", suffix, orientation)
        dest = tmp_path / f"out{suffix}"
        convert_dataset("urpc2020", [src], dest, val_fraction=0)
        assert load_report(dest)["splits"]["train"]["boxes_out"] == 1, suffix
        rows[suffix] = labels(dest, "train", "a")
        loaded = imread(str(dest / "images" / "train" / f"a{suffix}"))  # as Ultralytics loads it: BGR, rotated
        ((_, x, y, w, h),) = rows[suffix]
        height, width = loaded.shape[:2]
        centre = loaded[int(y * height), int(x * width)]
        assert centre.min() > 200, (suffix, centre)  # the label's centre lies on the white object
    assert rows[".tif"][0] == pytest.approx(rows[".jpg"][0], abs=2e-6)


# ---------------------------------------------------------------------------------------------------------------------
# 5. Concurrent runs


def test_second_run_into_a_busy_dest_is_refused_and_the_first_completes(tmp_path, monkeypatch):
    """Defect 5: a run into a --dest that another run is writing is refused at once with a message; the first run's
    output is complete and identical to a run alone."""
    src = build_urpc(tmp_path / "src", n=4)
    convert_dataset("urpc2020", [src], tmp_path / "alone")
    module = writer_module()
    real_probe, outcome = module.probe_image, []

    def probe_and_interfere(path, *args, **kwargs):
        if not outcome:  # while the first run writes, a second one starts into the same folder
            try:
                convert_dataset("urpc2020", [src], tmp_path / "out", seed=9)
                outcome.append("second run finished")
            except ConversionError as e:
                outcome.append(str(e))
        return real_probe(path, *args, **kwargs)

    monkeypatch.setattr(module, "probe_image", probe_and_interfere)
    convert_dataset("urpc2020", [src], tmp_path / "out")
    assert "in use by another" in outcome[0]
    assert tree_digest(tmp_path / "out") == tree_digest(tmp_path / "alone")


# ---------------------------------------------------------------------------------------------------------------------
# 6. Pairing across folders and near-equal names


def test_exdark_annotation_never_pairs_with_an_image_of_another_class_folder(tmp_path):
    """Defect 6: Bicycle/x.jpg.txt and only Car/x.jpg: another picture; the bicycle boxes are not written onto it."""
    src = build_exdark(tmp_path / "src")
    make_image(src / "ExDark" / "Car" / "2015_00050.jpg")
    write(src / "ExDark_Annno" / "Bicycle" / "2015_00050.jpg.txt", HEADER + f"Bicycle 1 1 20 20{ZEROS}\n")
    split_file = src / "Groundtruth" / "imageclasslist.txt"
    split_file.write_text(split_file.read_text() + "2015_00050.jpg 1 2 1 1\n")
    convert_dataset("exdark", [src], tmp_path / "out")
    assert not (tmp_path / "out" / "labels" / "train" / "2015_00050.txt").exists()
    report = load_report(tmp_path / "out")
    assert any("Bicycle/2015_00050.jpg.txt" in e for e in report["issues"]["annotation_without_image"]["examples"])


def test_voc_filename_decides_between_two_images_of_one_stem(tmp_path):
    """Defect 6: d.xml says <filename>d.png</filename>, d.jpg and d.png exist: the boxes land on d.png."""
    src = tmp_path / "src"
    make_image(src / "image" / "d.jpg")
    make_image(src / "image" / "d.png", colour=(90, 90, 90))
    write(src / "box" / "d.xml", voc_xml("d.png", [("starfish", (2, 2, 20, 20), 0)]))
    convert_dataset("urpc2020", [src], tmp_path / "out", val_fraction=0)
    out = tmp_path / "out"
    written = {p.name for p in (out / "images" / "train").iterdir()}
    assert written == {"d.png"}  # d.jpg has no XML: left out, reported
    assert (out / "images" / "train" / "d.png").read_bytes() == (src / "image" / "d.png").read_bytes()
    assert labels(out, "train", "d")[0][0] == 3  # starfish


def test_coco_name_is_matched_exactly_before_ignoring_case(tmp_path):
    """Defect 6: the JSON lists a.jpg, the folder holds a.jpg and A.jpg: a.jpg gets the labels, A.jpg none."""
    src = tmp_path / "src"
    make_image(src / "images" / "train" / "a.jpg")
    make_image(src / "images" / "train" / "A.jpg", colour=(200, 200, 200))
    data = {
        "images": [{"id": 1, "file_name": "a.jpg"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 10, 10]}],
        "categories": [{"id": 1, "name": "echinus"}],
    }
    write(src / "annotations" / "instances_train.json", json.dumps(data))
    convert_dataset("duo", [src], tmp_path / "out")
    out = tmp_path / "out" / "images" / "train"
    assert [p.name for p in out.iterdir()] == ["a.jpg"]
    assert (out / "a.jpg").read_bytes() == (src / "images" / "train" / "a.jpg").read_bytes()


def test_image_with_an_empty_stem_keeps_its_label_where_ultralytics_looks(tmp_path):
    """Defect 6: an image called '.jpg' (empty stem) is written under a visible name with its label beside it."""
    from ultralytics.data.utils import img2label_paths

    src = build_urpc(tmp_path / "src", n=2)
    Image.new("RGB", (64, 48), (70, 70, 70)).save(src / "image" / ".jpg", "JPEG")
    write(src / "box" / ".xml", voc_xml(".jpg", [("scallop", (3, 3, 30, 30), 0)]))
    out = tmp_path / "out"
    convert_dataset("urpc2020", [src], out, val_fraction=0)
    images = sorted(str(p) for p in (out / "images" / "train").iterdir())
    assert not any(Path(p).name.startswith(".") for p in images)  # Ultralytics' file search skips hidden names
    for image, label in zip(images, img2label_paths(images)):
        assert Path(label).is_file(), image
    assert any(row[0] == 2 for p in images for row in labels(out, "train", Path(p).stem))  # the scallop is there


# ---------------------------------------------------------------------------------------------------------------------
# 7. Splits and odd files


def test_val_fraction_that_leaves_no_train_image_is_refused(tmp_path):
    """Defect 7: --val-fraction 0.95 on three images would write a data.yaml without train: refused, nothing made."""
    src = build_urpc(tmp_path / "src", n=4)
    with pytest.raises(ConversionError, match="--val-fraction 0.95"):
        convert_dataset("urpc2020", [src], tmp_path / "out", val_fraction=0.95)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("mode, dtype", [("F", np.float32), ("I", np.int32)])
def test_32_bit_tiff_that_opencv_cannot_read_is_skipped(tmp_path, mode, dtype):
    """Defect 7: a 32-bit float/int TIFF (Ultralytics' imread returns None) is skipped with a reason, not kept."""
    src = build_urpc(tmp_path / "src", n=3)
    (src / "image" / "000001.jpg").unlink()
    Image.fromarray((np.random.default_rng(0).random((48, 64)) * 200).astype(dtype), mode).save(
        src / "image" / "000001.tif"
    )
    convert_dataset("urpc2020", [src], tmp_path / "out", val_fraction=0)
    report = load_report(tmp_path / "out")
    assert report["splits"]["train"]["images_skipped_by_reason"].get("unusable_image") == 1
    assert "OpenCV cannot decode" in report["issues"]["unusable_image"]["examples"][0]
    assert not (tmp_path / "out" / "images" / "train" / "000001.tif").exists()


def test_fifo_named_like_an_annotation_is_skipped_not_read(tmp_path):
    """Defect 7: a FIFO called x.xml under --source is never opened (opening it blocks until a writer comes); it is
    named in the report."""
    src = build_urpc(tmp_path / "src", n=3)
    fifo = src / "box" / "pipe.xml"
    os.mkfifo(fifo)
    opened = threading.Event()

    def writer():  # lets a reader that does open the FIFO finish (so the old behaviour fails instead of hanging)
        fd = os.open(fifo, os.O_WRONLY)
        opened.set()
        os.close(fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    convert_dataset("urpc2020", [src], tmp_path / "out")
    read_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # releases the writer thread if nobody read the FIFO
    thread.join()
    os.close(read_fd)
    report = load_report(tmp_path / "out")
    assert any("pipe.xml: a FIFO" in e for e in report["issues"]["not_a_regular_file"]["examples"])


def test_empty_source_argument_is_refused_not_read_as_the_current_folder(tmp_path, monkeypatch):
    """Defect 7: --source "" is refused (it used to convert the current folder)."""
    build_urpc(tmp_path / "cwd", n=3)
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(ConversionError, match="--source is empty"):
        convert_dataset("urpc2020", [""], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_visdrone_fractional_category_or_pixel_is_malformed_never_rounded(tmp_path):
    """Defect 7: category 4.7 is not 'car' and 10.9 is not 'motor'; a fractional pixel is not cut: malformed_line."""
    src = build_visdrone(tmp_path / "src")
    with open(src / "VisDrone2019-DET-val" / "annotations" / "0000010.txt", "a") as f:
        f.write("1,1,10,10,1,4.7,0,0\n1,1,10,10,1,10.9,0,0\n1,1,10.5,10,1,4,0,0\n")
    convert_dataset("visdrone", [src], tmp_path / "out")
    val = load_report(tmp_path / "out")["splits"]["val"]
    assert val["boxes_dropped_by_reason"] == {"malformed_line": 3}
    assert val["boxes_per_class"] == {"motor": 1}  # only the original row


# ---------------------------------------------------------------------------------------------------------------------
# 8. One line for bad input


def test_prepare_dest_below_a_file_or_in_proc_is_one_line(tmp_path, capsys):
    """Defect 8: --dest below a file, or where nothing can be created (/proc): one line, exit 2."""
    src = build_urpc(tmp_path / "src", n=3)
    write(tmp_path / "file", "x")
    for dest in (tmp_path / "file" / "sub", Path("/proc/scsa-yolo-test/out")):
        status, err = run_cli(["prepare", "urpc2020", "--source", str(src), "--dest", str(dest)], capsys)
        assert_one_line_error(status, err, "--dest")


@pytest.mark.parametrize("fmt", ["exdark", "visdrone", "duo", "urpc2020"])
def test_dangling_annotation_link_is_reported_not_a_traceback(tmp_path, fmt):
    """Defect 8: a dangling symbolic link named like an annotation is skipped and named, in all four formats."""
    src = tmp_path / "src"
    if fmt == "exdark":
        build_exdark(src)
        link = src / "ExDark_Annno" / "Car" / "2015_00006.jpg.txt"
    elif fmt == "visdrone":
        build_visdrone(src)
        link = src / "VisDrone2019-DET-train" / "annotations" / "0000003.txt"
    elif fmt == "duo":
        build_coco(src)
        link = src / "annotations" / "instances_val.json"
    else:
        build_urpc(src)
        link = src / "box" / "000009.xml"
    os.symlink(tmp_path / "nowhere", link)
    convert_dataset(fmt, [src], tmp_path / "out", **({"val_fraction": 0} if fmt == "urpc2020" else {}))
    examples = load_report(tmp_path / "out")["issues"]["not_a_regular_file"]["examples"]
    assert any(f"{link.name}: a dangling link" in e for e in examples)


def test_reasons_name_what_is_wrong_with_the_box(tmp_path):
    """Defect 8: VOC corners given max-before-min are 'swapped_corners' (not 'degenerate'); a VisDrone negative width
    is 'negative_size' (not 'outside_image')."""
    src = build_urpc(tmp_path / "voc", n=2)
    write(
        src / "box" / "000000.xml",
        voc_xml("000000.jpg", [("echinus", (30, 30, 10, 10), 0), ("echinus", (2, 2, 9, 9), 0)]),
    )
    convert_dataset("urpc2020", [src], tmp_path / "out1", val_fraction=0)
    assert load_report(tmp_path / "out1")["splits"]["train"]["boxes_dropped_by_reason"]["swapped_corners"] == 1
    src = build_visdrone(tmp_path / "vis")
    with open(src / "VisDrone2019-DET-val" / "annotations" / "0000010.txt", "a") as f:
        f.write("30,30,-10,5,1,4,0,0\n")
    convert_dataset("visdrone", [src], tmp_path / "out2")
    assert load_report(tmp_path / "out2")["splits"]["val"]["boxes_dropped_by_reason"] == {"negative_size": 1}


def test_archive_inside_an_archive_is_named_in_the_error(tmp_path):
    """Defect 8: a zip that only holds the real zip says so, instead of only "nothing usable found"."""
    inner = tmp_path / "VisDrone2019-DET-train.zip"
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("VisDrone2019-DET-train/annotations/a.txt", "1,1,5,5,1,1,0,0\n")
    outer = tmp_path / "download.zip"
    with zipfile.ZipFile(outer, "w") as z:
        z.write(inner, "VisDrone2019-DET-train.zip")
    with pytest.raises(ConversionError, match=r"not unpacked .*VisDrone2019-DET-train\.zip.*pass each as --source"):
        convert_dataset("visdrone", [outer], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_profile_bad_input_is_one_line(tmp_path, capsys):
    """Defect 8: profile with a missing YAML, a YAML whose folders are missing, --out a file or not creatable."""
    src = build_urpc(tmp_path / "src", n=3)
    convert_dataset("urpc2020", [src], tmp_path / "ds")
    write(tmp_path / "bad.yaml", "path: /nonexistent/scsa\ntrain: images/train\nval: images/val\nnames: {0: a}\n")
    write(tmp_path / "a-file", "x")
    cases = [
        (["profile", str(tmp_path / "missing.yaml")], "missing.yaml"),
        (["profile", str(tmp_path / "bad.yaml")], "bad.yaml"),
        (["profile", str(tmp_path / "ds" / "data.yaml"), "--out", str(tmp_path / "a-file")], "--out"),
        (["profile", str(tmp_path / "ds" / "data.yaml"), "--out", "/proc/scsa-yolo-test"], "--out"),
    ]
    for argv, word in cases:
        status, err = run_cli(argv, capsys)
        assert_one_line_error(status, err, word)


def test_misspelled_option_raises_and_prepare_flags_are_derived(tmp_path):
    """Options are declared once per dataset: a misspelled one raises instead of being ignored."""
    src = build_coco(tmp_path / "src")
    with pytest.raises(ConversionError, match="duo has no option 'waterweed'"):  # an OptionError
        convert_dataset("duo", [src], tmp_path / "out", waterweed=True)
    with pytest.raises(ConversionError, match="utdac2020 has no option 'waterweed'; its options: waterweeds"):
        convert_dataset("utdac2020", [src], tmp_path / "out", waterweed=True)
    assert not (tmp_path / "out").exists()


def test_demo_data_bad_arguments_are_one_line(tmp_path, capsys):
    """Issue 21's demo-data item: a tile size or fraction out of range is one line, exit 2, before any work."""
    for flags, word in ((["--tile-size", "0"], "--tile-size"), (["--val-fraction", "2"], "--val-fraction")):
        status, err = run_cli(["demo-data", "--out", str(tmp_path / "demo"), *flags], capsys)
        assert_one_line_error(status, err, word)
    assert not (tmp_path / "demo").exists()
    write(tmp_path / "a-file", "x")
    for out in (tmp_path / "a-file", Path("/proc/scsa-yolo-test/demo")):  # checked once the wheel is found
        try:
            from scsa_yolo.data import deepforest

            deepforest.find_wheel()
        except deepforest.MissingWheelError:
            pytest.skip("the deepforest wheel is not in ./data_cache")
        status, err = run_cli(["demo-data", "--out", str(out), "--tile-size", "64"], capsys)
        assert_one_line_error(status, err, "--out")


@pytest.mark.parametrize("subcommand", ["prepare", "profile", "demo-data"])
def test_help_of_the_data_subcommands_loads_neither_torch_nor_ultralytics(subcommand):
    """The parsers of prepare/profile/demo-data are built without torch or Ultralytics (the package's own import,
    which registers the SCSA blocks, is replaced by an empty package here: it is not part of the data path)."""
    code = (
        "import sys, types, importlib.util\n"
        f"package = types.ModuleType('scsa_yolo'); package.__path__ = [{str(REPO / 'scsa_yolo')!r}]\n"
        "sys.modules['scsa_yolo'] = package\n"
        "from scsa_yolo.cli import build_parser\n"
        f"build_parser(chosen={subcommand!r})\n"
        "print(sorted(m for m in ('torch', 'ultralytics', 'cv2') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stderr
