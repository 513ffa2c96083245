"""The Ray Tune engine of the benchmark on a local Ray instance: CPU trials of one CPU each.

One Ray instance serves the module (its start-up is the expensive part); it is shut down at the end, with a check
that none of its processes outlives it. The runs have two epochs so that a trial can be stopped between its first
checkpoint and its end. The kill is deterministic: the chosen trial writes its process id and waits after its first
epoch (checkpoint saved and recorded); the test kills exactly that process. No timing decides what is killed.
"""

import csv
import os
import signal
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from scsa_yolo.benchmark import BenchmarkRequest, TrainSettings, run_benchmark
from scsa_yolo.benchmark import runner as benchmark_runner
from scsa_yolo.benchmark.engines import RayOptions, RunsFailedError
from scsa_yolo.benchmark.records import RUN_RECORD
from scsa_yolo.nn.kernels.cpu import ENV_SWITCH
from scsa_yolo.nn.scsa_fused import fused_kernel_disabled

ray = pytest.importorskip("ray", reason="the Ray engine needs the cluster extra (ray[tune])")

MODELS = ("yolov8n.yaml", "yolov8n-scsa.yaml")
# Columns that depend on the process or the clock, not on the run: timings,
# and the resume record: the killed trial resumed, its sequential twin did not
VOLATILE = {"train_s", "latency_ms", "latency_gpu_ms", "latency_ratio", "latency_ratio_low"}
VOLATILE |= {"latency_ratio_high", "resumed_at_epochs"}
ONE_CPU = RayOptions(cpus_per_run=1)
TARGET = "yolov8n-scsa-seed1"  # the trial that is stopped after its first epoch and killed


def pausing_run_task(spec, state):
    """The runner's task, except that run TARGET, when new, waits after its first epoch until it is killed.

    This function is sent to the Ray workers by value (the test module is not importable there). The wait starts
    in ``on_fit_epoch_end``, after that epoch's ``last.pt`` was saved and its hash recorded; the process id is
    written to ``OUT/pause.pid`` first, so that the test kills exactly this trial's process.
    """
    from ultralytics.utils.callbacks import base

    from scsa_yolo.benchmark.run import run_once

    if spec.name != TARGET or state.kind != "new":
        return run_once(spec, state).to_json()

    def wait_to_be_killed(trainer):
        if trainer.epoch == 0:
            pid_file = spec.run_dir.parent.parent / "pause.pid"
            pid_file.with_suffix(".tmp").write_text(str(os.getpid()))
            pid_file.with_suffix(".tmp").replace(pid_file)
            threading.Event().wait()  # until SIGKILL

    base.default_callbacks["on_fit_epoch_end"].append(wait_to_be_killed)
    try:
        return run_once(spec, state).to_json()
    finally:
        base.default_callbacks["on_fit_epoch_end"].remove(wait_to_be_killed)


def ray_processes() -> list[psutil.Process]:
    """This test process's descendants that belong to Ray (its servers, agents and workers)."""
    found = []
    for process in psutil.Process().children(recursive=True):
        try:
            if "ray" in " ".join(process.cmdline()):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture(scope="module")
def local_ray(torch_single_thread):
    """A local two-CPU Ray instance; the in-process runs use one thread, like the one-CPU trials.

    SCSA runs its PyTorch-op path everywhere here: the fused CPU kernel's build is redone whenever another checkout's
    copy of its source was built last, which would add a minute's compile at random. The Ray workers inherit the
    environment switch; this process read it at import, so its runs and its latency measurements (after every
    benchmark call) are switched in the context.
    """
    os.environ.pop("RAY_ADDRESS", None)
    fused = os.environ.get(ENV_SWITCH)
    os.environ[ENV_SWITCH] = "0"
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False)
    with fused_kernel_disabled():
        yield
    ray.shutdown()
    if fused is None:
        os.environ.pop(ENV_SWITCH)
    else:
        os.environ[ENV_SWITCH] = fused
    _, alive = psutil.wait_procs(ray_processes(), timeout=20)
    assert alive == [], f"Ray processes outlived the test: {[p.cmdline() for p in alive]}"


def _rows(path):
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k not in VOLATILE} for row in csv.DictReader(handle)]


def _train_losses(runs: Path) -> dict[str, list[tuple[str, ...]]]:
    """Each run's per-epoch training losses, as Ultralytics wrote them in the run's ``results.csv``."""
    losses = {}
    for path in sorted(runs.glob("*/results.csv")):
        with open(path, newline="") as handle:
            rows = [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(handle)]
        losses[path.parent.name] = [tuple(row[f"train/{name}_loss"] for name in ("box", "cls", "dfl")) for row in rows]
    return losses


def _kill_paused_trial(out: Path, killed: list) -> None:
    """Kill the trial that wrote ``OUT/pause.pid`` (it waits for this), and only it."""
    pid_file = out / "pause.pid"
    deadline = time.monotonic() + 600  # a bound for a broken run only: the kill itself waits for the file
    while not pid_file.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_file.is_file():
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)


@pytest.mark.slow
def test_ray_engine_matches_sequential_names_a_killed_trial_resumes_it_and_skips_finished_runs(
    local_ray, tiny_dataset, tmp_path, monkeypatch
):
    settings = TrainSettings(data=str(tiny_dataset), epochs=2, imgsz=64, batch=2, workers=0, device="cpu")

    def request(out, **options):
        return BenchmarkRequest(models=MODELS, settings=settings, seeds=(0, 1), out=out, latency_repeats=2, **options)

    run_benchmark(request(tmp_path / "seq"))
    out = tmp_path / "ray"

    def on_ray():
        return run_benchmark(request(out, engine="ray", ray_options=ONE_CPU))

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.setattr(benchmark_runner, "run_task", pausing_run_task)
    killed = []
    killer = threading.Thread(target=_kill_paused_trial, args=(out, killed), daemon=True)
    killer.start()
    with pytest.raises(RunsFailedError, match=rf"1 of 4 runs failed:\n  {TARGET}: ") as failure:
        on_ray()
    killer.join()
    assert len(killed) == 1
    assert not (out / "runs" / TARGET / RUN_RECORD).exists()
    for name in ("yolov8n-seed0", "yolov8n-scsa-seed0", "yolov8n-seed1"):  # every other trial finished
        assert (out / "runs" / name / RUN_RECORD).is_file() and f"  {name}: " not in str(failure.value)

    finished = {path: path.stat().st_mtime_ns for path in (out / "runs").glob("*seed0/weights/last.pt")}
    on_ray()
    with open(out / "runs" / TARGET / "results.csv", newline="") as handle:
        epochs = [int(float(row["epoch"])) for row in csv.DictReader(handle)]
    assert epochs == [1, 2]  # epoch 1 from the killed trial, epoch 2 from the resumed one
    assert finished == {path: path.stat().st_mtime_ns for path in finished}  # finished runs not trained again

    # Each trial reported one result, its run record: Ultralytics' own Ray Tune callback (on by default in its
    # settings) reported nothing per epoch. (Tune's result.json of a trial holds one line per report; the killed
    # trial reported nothing.)
    reports = [path.read_text().splitlines() for path in (out / "ray").glob("benchmark/*/result.json")]
    assert sorted(map(len, reports)) == [0, 1, 1, 1, 1]
    assert all(line.startswith('{"record": ') for lines in reports for line in lines)
    rows = _rows(out / "results.csv")
    assert [(row["model_file"], row["seed"]) for row in rows] == [(m, s) for s in "01" for m in MODELS]
    assert rows == _rows(tmp_path / "seq" / "results.csv")
    # At this size every mAP is 0, so the rows above mostly compare architectures; the training losses tell the runs
    # apart. They must be equal as Ultralytics wrote them (5 decimals), with no tolerance: same seed, same machine, and
    # one thread in both engines (Ray sets a one-CPU trial's OMP_NUM_THREADS to 1; the in-process runs use one torch
    # thread). The resumed run is equal up to its kill only: a resume is not bit-identical to an unbroken run.
    losses, sequential = _train_losses(out / "runs"), _train_losses(tmp_path / "seq" / "runs")
    assert sorted(losses) == sorted(f"{Path(m).stem}-seed{s}" for m in MODELS for s in "01")
    assert losses[TARGET][:1] == sequential[TARGET][:1]
    assert {k: v for k, v in losses.items() if k != TARGET} == {k: v for k, v in sequential.items() if k != TARGET}
    assert losses["yolov8n-seed0"] != losses["yolov8n-seed1"]  # the comparison could fail: seeds give other losses
    for name in ("results.md", "accuracy_vs_latency.png", "training_curves.png"):
        assert (out / name).stat().st_size > 0

    stamps = {path: path.stat().st_mtime_ns for path in (out / "runs").glob("*/*.*")}
    on_ray()  # everything recorded: read in this process, no trial started
    assert stamps == {path: path.stat().st_mtime_ns for path in stamps}
    assert _rows(out / "results.csv") == rows
