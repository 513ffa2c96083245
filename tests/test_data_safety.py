"""The earlier output of `prepare` is never worse after a failed run; pairing never crosses folders; the file list
never points a deletion outside --dest (defects 1-3 of issue 20)."""

from __future__ import annotations

import json
import os

import pytest
from test_converters import build_coco, build_urpc, build_visdrone, load_report, make_image, tree_digest, write

from scsa_yolo.data.converters import ConversionError, convert_dataset


@pytest.mark.parametrize("dataset, build", [("visdrone", build_visdrone), ("urpc2020", build_urpc)])
def test_empty_or_wrong_source_keeps_the_earlier_dataset(tmp_path, dataset, build):
    """Defect 1: a wrong or empty --source stops with an error and leaves every file of the earlier run in place."""
    dest = tmp_path / "out"
    convert_dataset(dataset, [build(tmp_path / "src")], dest)
    earlier = tree_digest(dest)
    (tmp_path / "empty").mkdir()
    make_image(tmp_path / "wrong" / "holiday.jpg")  # a folder with a picture, but not the dataset
    for source in (tmp_path / "empty", tmp_path / "wrong"):
        with pytest.raises(ConversionError):
            convert_dataset(dataset, [source], dest)
        assert tree_digest(dest) == earlier


@pytest.mark.parametrize("failure", [MemoryError, KeyboardInterrupt], ids=["exception", "interrupt"])
def test_exception_half_way_through_writing_leaves_dest_as_it_was(tmp_path, monkeypatch, failure):
    """Defect 1: the new output is built aside and swapped in at the end; an error while writing (a disk full, a bug)
    leaves the earlier output byte for byte, and a new --dest is not created."""
    import importlib

    src, dest = build_urpc(tmp_path / "src", n=4), tmp_path / "out"
    convert_dataset("urpc2020", [src], dest)
    earlier = tree_digest(dest)
    try:  # the module that writes the label files (moved by the rebuild of the data package)
        writer = importlib.import_module("scsa_yolo.data.converters.write")
    except ImportError:
        writer = importlib.import_module("scsa_yolo.data.converters.common")
    calls = []

    def failing_probe(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise failure("simulated failure half-way")
        return real_probe(path, *args, **kwargs)

    real_probe = writer.probe_image
    monkeypatch.setattr(writer, "probe_image", failing_probe)
    with pytest.raises(failure):
        convert_dataset("urpc2020", [src], dest, seed=5)
    assert tree_digest(dest) == earlier
    calls.clear()
    with pytest.raises(failure):
        convert_dataset("urpc2020", [src], tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_coco_listed_image_missing_from_its_folder_is_not_taken_from_another_split(tmp_path):
    """Defect 2: train lists x.jpg, images/train/x.jpg is missing and images/test/x.jpg exists: the test picture is
    never written to train; the missing image is counted and named."""
    src = build_coco(tmp_path / "src")
    (src / "images" / "train" / "b.jpg").unlink()  # listed in train; test has no b.jpg, so make one there
    make_image(src / "images" / "test" / "b.jpg", colour=(200, 0, 0))
    convert_dataset("duo", [src], tmp_path / "out")
    report = load_report(tmp_path / "out")
    train_images = sorted(p.name for p in (tmp_path / "out" / "images" / "train").iterdir())
    assert "b.jpg" not in train_images
    assert report["splits"]["train"]["annotations_without_image"] == 2  # b.jpg and missing.jpg


def test_coco_without_its_train_folder_never_trains_on_test_images(tmp_path):
    """Defect 2: DUO without images/train: the train JSON's file names all exist in images/test; nothing of test is
    written to train, and the run stops because no train image is left."""
    src = build_coco(tmp_path / "src")
    for name in ("a.jpg", "b.jpg", "c.jpg", "extra.jpg"):
        (src / "images" / "train" / name).unlink()
        make_image(src / "images" / "test" / name)
    (src / "images" / "train").rmdir()
    with pytest.raises(ConversionError) as caught:
        convert_dataset("duo", [src], tmp_path / "out")
    assert "train" in str(caught.value)
    assert not (tmp_path / "out" / "images" / "train").exists()


def test_file_list_entry_through_a_link_cannot_delete_outside_dest(tmp_path):
    """Defect 3: a prepare_files.txt entry ./lnk/victim.txt, lnk a link inside --dest to a folder outside: the run
    is refused and the file the link points to survives."""
    src, dest = build_urpc(tmp_path / "src", n=3), tmp_path / "out"
    convert_dataset("urpc2020", [src], dest)
    victim = write(tmp_path / "elsewhere" / "victim.txt", "mine")
    os.symlink(tmp_path / "elsewhere", dest / "lnk")
    with open(dest / "prepare_files.txt", "a") as manifest:
        manifest.write("lnk\n./lnk/victim.txt\n")
    with pytest.raises(ConversionError, match="victim.txt"):
        convert_dataset("urpc2020", [src], dest)
    assert victim.read_text() == "mine"
    with open(dest / "prepare_files.txt", "w") as manifest:  # a clean name through the link is refused too
        manifest.write("prepare_files.txt\nlnk\nlnk/victim.txt\n")
    with pytest.raises(ConversionError, match="victim.txt"):
        convert_dataset("urpc2020", [src], dest)
    assert victim.read_text() == "mine"


def test_file_list_is_written_from_paths_inside_dest_without_following_links(tmp_path):
    """Defect 3: every name in prepare_files.txt is a plain relative path inside --dest: no '.', '..' or link."""
    src = build_urpc(tmp_path / "src", n=3)
    os.symlink(tmp_path / "src", tmp_path / "via")  # --dest given through a link: names stay relative to it
    convert_dataset("urpc2020", [src], tmp_path / "via" / "out")
    names = (src / "out" / "prepare_files.txt").read_text().splitlines()
    assert names and all(not n.startswith(("/", "./")) and ".." not in n.split("/") for n in names)
    assert json.loads((src / "out" / "prepare_report.json").read_text())["splits"]["train"]["images_out"] > 0


KILL_SCRIPT = """
import os, sys
sys.path.insert(0, {tests!r})
from test_converters import build_urpc
from scsa_yolo.data.converters import convert_dataset

real_replace, calls = os.replace, []


def replace(a, b, *args, **kwargs):  # the swap moves entries with os.replace; die at the chosen one
    if ".prepare-work" in str(a) + str(b):
        calls.append(a)
        if len(calls) == {kill_at}:
            os._exit(9)
    return real_replace(a, b, *args, **kwargs)


os.replace = replace
convert_dataset("urpc2020", [{src!r}], {dest!r}, seed=5)
"""


@pytest.mark.parametrize("kill_at, expected", [(2, "earlier"), (8, "new")], ids=["before-commit", "after-commit"])
def test_run_killed_during_the_swap_is_undone_or_finished_by_the_next_run(tmp_path, kill_at, expected):
    """A kill while the earlier output is moved aside is rolled back; a kill after the commit marker, while the new
    output is moved in, is finished. Either way the next run into --dest starts from a whole dataset."""
    import subprocess
    import sys
    from pathlib import Path

    from scsa_yolo.data.dest import DestSession

    src = build_urpc(tmp_path / "src", n=4)
    convert_dataset("urpc2020", [src], tmp_path / "earlier")
    convert_dataset("urpc2020", [src], tmp_path / "new", seed=5)
    dest = tmp_path / "out"
    convert_dataset("urpc2020", [src], dest)
    tests = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(tests).parent), os.environ.get("PYTHONPATH", "")])}
    script = KILL_SCRIPT.format(tests=tests, kill_at=kill_at, src=str(src), dest=str(dest))
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert killed.returncode == 9, killed.stderr
    assert (dest / ".prepare-work").is_dir()  # the kill left the swap half-way
    with DestSession(dest):  # what every next run does first, under the lock
        pass
    assert tree_digest(dest) == tree_digest(tmp_path / expected)
