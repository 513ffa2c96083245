"""The benchmark's results folder is its own: nothing it did not write is loaded, trained into or deleted; damaged
records are named; a moved folder re-reports offline; every argument is checked before anything trains.

Each test here failed on main at 441b05f (see the notes of issue 21): a planted pickle ran, a user folder was
deleted, bad seeds were found after training, a moved folder could not be re-reported and asked the network for a
font, a damaged record gave an unnamed JSON error, a file that is not a checkpoint failed after training,
``./x.yaml`` and ``x.yaml`` were "other settings", and a resumed run logged an epoch twice.
"""

import csv
import json
import pickle
import shutil
import socket
from pathlib import Path

import pytest
from conftest import write_tiny_detection_dataset
from ultralytics import YOLO
from ultralytics.engine.trainer import BaseTrainer
from ultralytics.utils import USER_CONFIG_DIR

from scsa_yolo.benchmark import BenchmarkRequest, TrainSettings, run_benchmark
from scsa_yolo.benchmark.image_stats import load_image_stats
from scsa_yolo.benchmark.plan import OUT_OWNER_FILE, plan_benchmark
from scsa_yolo.benchmark.records import OWNER, OWNER_FILE, RUN_RECORD, ResultsFolderError, RunRecord
from scsa_yolo.data.images import file_digest
from scsa_yolo.errors import UsageError

MODELS = ("yolov8n.yaml", "yolov8n-scsa.yaml")


def request(data, out, models=MODELS, epochs=1, seeds=(0,), datasets=None):
    settings = TrainSettings(data=str(data), epochs=epochs, imgsz=64, batch=4, workers=0, device="cpu")
    return BenchmarkRequest(
        models=tuple(models), settings=settings, seeds=seeds, out=out, datasets=datasets or (), latency_repeats=2
    )


class NetworkBlocked:
    """Replaces the socket entry points: every attempt to reach a host is recorded and fails."""

    def __init__(self, monkeypatch):
        self.attempts = []

        def refuse(*args, **kwargs):
            self.attempts.append(args[:2])
            raise OSError("network blocked by the test")

        monkeypatch.setattr(socket, "getaddrinfo", refuse)
        monkeypatch.setattr(socket, "create_connection", refuse)
        monkeypatch.setattr(socket.socket, "connect", lambda self, *a: refuse(*a))


class NoTraining:
    def __init__(self, monkeypatch):
        self.calls = []

        def train(model, *args, **kwargs):
            self.calls.append(kwargs)
            raise AssertionError(f"training was started: {kwargs}")

        monkeypatch.setattr(YOLO, "train", train)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tiny_detection_dataset(tmp_path_factory.mktemp("safety") / "boxes", images=4, size=64)


@pytest.fixture(scope="module")
def done(data, tmp_path_factory):
    """A finished two-model benchmark, trained with the network blocked (no font request, no other)."""
    assert not (USER_CONFIG_DIR / "Arial.ttf").exists()  # the dataset check would ask the network for it
    out = tmp_path_factory.mktemp("done") / "out"
    with pytest.MonkeyPatch.context() as patch:
        network = NetworkBlocked(patch)
        run_benchmark(request(data, out))
    assert network.attempts == []
    return out


class Planted:
    """A pickle that creates a marker file when it is unpickled in full."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def results_folder(tmp_path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / OUT_OWNER_FILE).write_text(json.dumps({"owner": OWNER}))
    return out


def test_planted_pickle_is_never_unpickled(data, tmp_path, monkeypatch):
    marker = tmp_path / "code-ran"
    out = results_folder(tmp_path)
    last = out / "runs" / "yolov8n-seed0" / "weights" / "last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(pickle.dumps(Planted(marker)))
    spy = NoTraining(monkeypatch)
    with pytest.raises(UsageError, match="not made by this benchmark"):  # a folder that is not the benchmark's
        plan_benchmark(request(data, out))
    # a forged ownership file with the right hash: the restricted loader still refuses the pickle's code
    (last.parent.parent / OWNER_FILE).write_text(
        json.dumps({"owner": OWNER, "run": "yolov8n-seed0", "files": {"weights/last.pt": file_digest(last)}})
    )
    with pytest.raises(UsageError, match="restricted loader"):
        plan_benchmark(request(data, out))
    assert not marker.exists() and spy.calls == []
    pickle.loads(last.read_bytes()).close()  # the payload is real: a full unpickle runs it
    assert marker.exists()


def test_a_folder_the_benchmark_did_not_make_is_never_deleted_or_written(data, tmp_path, monkeypatch):
    out = results_folder(tmp_path)
    run_dir = out / "runs" / "yolov8n-seed0"
    (run_dir / "weights").mkdir(parents=True)
    (run_dir / "notes.txt").write_text("mine")
    (run_dir / "weights" / "best.pt").write_bytes(b"my weights")
    spy = NoTraining(monkeypatch)
    with pytest.raises(UsageError, match=f"{run_dir} was not made by this benchmark"):
        run_benchmark(request(data, out))
    assert (run_dir / "notes.txt").read_text() == "mine" and (run_dir / "weights" / "best.pt").is_file()
    user = tmp_path / "user"
    user.mkdir()
    (user / "results.csv").write_text("mine")
    with pytest.raises(UsageError, match="not a benchmark results folder"):
        run_benchmark(request(data, user))
    assert [p.name for p in user.iterdir()] == ["results.csv"] and spy.calls == []


def test_every_argument_is_checked_before_training(data, tmp_path, monkeypatch):
    spy = NoTraining(monkeypatch)
    for seeds in ((0, -2), (4294967296,)):
        with pytest.raises(UsageError, match=r"--seeds \[(-2|4294967296)\] outside 0\.\.4294967295"):
            run_benchmark(request(data, tmp_path / "a", seeds=seeds))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="--out .* is a file"):
        run_benchmark(request(data, tmp_path / "file"))
    not_a_checkpoint = tmp_path / "weights.pt"
    not_a_checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match=f"{not_a_checkpoint} is not an Ultralytics checkpoint"):
        run_benchmark(request(data, tmp_path / "b", models=("yolov8n.yaml", str(not_a_checkpoint))))
    assert spy.calls == [] and not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_moved_results_folder_re_reports_offline(done, tmp_path, monkeypatch):
    moved = tmp_path / "moved"
    shutil.copytree(done, moved)
    shutil.move(done, tmp_path / "away")  # the original location is gone: nothing may point there
    try:
        network, spy = NetworkBlocked(monkeypatch), NoTraining(monkeypatch)
        rows = run_benchmark(request(_data_of(moved), moved))
        assert network.attempts == [] and spy.calls == [] and len(rows) == 2
        assert (moved / "comparisons.csv").read_text() == (tmp_path / "away" / "comparisons.csv").read_text()
    finally:
        shutil.move(tmp_path / "away", done)


def _data_of(out: Path) -> str:
    return RunRecord.read(next(out.glob(f"runs/*/{RUN_RECORD}"))).settings.data


def test_damaged_files_are_named_and_statistics_redone(done, tmp_path, monkeypatch):
    out = tmp_path / "copy"
    shutil.copytree(done, out)
    data = _data_of(out)
    run_dir = out / "runs" / "yolov8n-scsa-seed0"
    record = run_dir / RUN_RECORD
    good = record.read_text()
    record.write_text("{\n")
    with pytest.raises(UsageError, match=f"{record}: the run record is unreadable"):
        plan_benchmark(request(data, out))
    record.write_text(good)

    stats = run_dir / RunRecord.read(record).image_stats
    stats.write_bytes(b"PK\x03\x04 damaged")
    with pytest.raises(ResultsFolderError, match=f"{stats} is not a per-image statistics file"):
        load_image_stats(stats)
    spy = NoTraining(monkeypatch)
    run_benchmark(request(data, out))  # the damaged statistics are recomputed from the checkpoint, not used
    assert spy.calls == [] and file_digest(stats) == RunRecord.read(record).image_stats_sha256
    assert load_image_stats(stats)["all"].images

    (run_dir / "weights" / "last.pt").unlink()
    with pytest.raises(UsageError, match="last.pt is missing although this benchmark wrote it"):
        plan_benchmark(request(data, out))


def test_dataset_spellings_are_one_setting(done, tmp_path, monkeypatch):
    out = tmp_path / "copy"
    shutil.copytree(done, out)
    data = Path(_data_of(out))
    monkeypatch.chdir(data.parent)
    plans = [plan_benchmark(request(spelling, out)) for spelling in (f"./{data.name}", data.name, str(data))]
    assert {plan.settings[0].data for plan in plans} == {str(data)}
    assert all(state.kind == "finished" for plan in plans for state in plan.states.values())


class SimulatedCrash(Exception):
    """Stands for a process killed after an epoch's row was logged, before its checkpoint was saved."""


def test_resumed_run_logs_each_epoch_once(data, tmp_path, monkeypatch):
    save_model = BaseTrainer.save_model

    def crash_before_second_checkpoint(trainer):
        if trainer.epoch == 1:
            raise SimulatedCrash
        return save_model(trainer)

    with monkeypatch.context() as patch:
        patch.setattr(BaseTrainer, "save_model", crash_before_second_checkpoint)
        with pytest.raises(SimulatedCrash):
            run_benchmark(request(data, tmp_path, models=MODELS[:1], epochs=2))
    results = tmp_path / "runs" / "yolov8n-seed0" / "results.csv"
    run_benchmark(request(data, tmp_path, models=MODELS[:1], epochs=2))
    with open(results, newline="") as handle:
        epochs = [int(float(row["epoch"])) for row in csv.DictReader(handle)]
    assert epochs == [1, 2]
