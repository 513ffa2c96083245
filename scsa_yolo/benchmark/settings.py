"""What a benchmark call is asked to do, as typed settings.

This module imports nothing heavy: the CLI's parser reads its defaults without loading torch or Ultralytics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PRESET = "scsa"
DEFAULT_OUT = Path("runs") / "benchmark"
ENGINES = ("sequential", "ray")
# Ultralytics seeds Python's, numpy's and torch's generators with the training seed; numpy accepts 0 .. 2**32 - 1.
SEED_RANGE = (0, 2**32 - 1)
DEFAULT_RESAMPLES = 1000
DEFAULT_BOOTSTRAP_SEED = 0
# The command-line flag of each setting, so that a refusal names what the user typed.
FLAGS = {
    "data": "--data",
    "epochs": "--epochs",
    "imgsz": "--imgsz",
    "batch": "--batch",
    "workers": "--workers",
    "device": "--device",
    "seed": "--seeds",
    "seeds": "--seeds",
    "out": "--out",
    "models": "--models",
    "engine": "--engine",
    "address": "--ray-address",
    "gpus_per_run": "--gpus-per-run",
    "cpus_per_run": "--cpus-per-run",
}


@dataclass(frozen=True)
class TrainSettings:
    """What every run of one benchmark shares; the defaults fit a ~12-minute two-model run on a 2-core CPU.

    Attributes:
        data: Dataset YAML (after planning: its resolved absolute path, so ``./x.yaml`` and ``x.yaml`` are one
            setting); ``None`` builds (or reuses) the embedded deepforest tree-crown dataset.
        epochs: Training epochs.
        imgsz: Training, validation and latency input size.
        batch: Batch size; also the nominal batch size, so every batch is an optimizer step (Ultralytics' default
            of 64 would accumulate a whole epoch of this small dataset into one step).
        workers: Dataloader workers (Ultralytics uses none on CPU anyway).
        device: Training device as Ultralytics takes it (``""`` = first GPU if present, else CPU).
    """

    data: str | None = None
    epochs: int = 20
    imgsz: int = 320
    batch: int = 8
    workers: int = 0
    device: str = ""

    def ultralytics_args(self, seed: int) -> dict:
        """Keyword arguments for ``YOLO.train`` for one seed.

        Training starts from random weights (no pretrained checkpoint is fetched), is deterministic, and runs in
        fp32 everywhere: ``amp=False`` keeps CPU and GPU numerics alike and skips Ultralytics' AMP self-check, which
        would download a checkpoint. ``plots=False`` skips Ultralytics' label plots, which want to download a font.
        """
        return {
            "data": self.data,
            "epochs": self.epochs,
            "imgsz": self.imgsz,
            "batch": self.batch,
            "nbs": self.batch,
            "workers": self.workers,
            "device": self.device,
            "seed": seed,
            "deterministic": True,
            "pretrained": False,
            "amp": False,
            "plots": False,
            "val": True,  # per-epoch validation gives the mAP curves in results.csv
        }


@dataclass(frozen=True)
class RayOptions:
    """Where and with what resources the Ray engine runs trials.

    Attributes:
        address: Ray cluster address (``ray start --head`` prints it); None uses ``RAY_ADDRESS`` if set, otherwise a
            Ray instance this process starts and stops (or the one it has already joined).
        gpus_per_run: GPUs per trial; None: 1 when the cluster has GPUs, else 0. More than 1 trains with DDP.
        cpus_per_run: CPUs per trial; None: 1 on CPU-only trials, else the cluster's CPUs per GPU times the trial's
            GPUs. Ray sets a trial's thread count (``OMP_NUM_THREADS``) to it.
        storage: Folder for Tune's experiment state (the benchmark puts it in its output folder).
    """

    address: str | None = None
    gpus_per_run: int | None = None
    cpus_per_run: float | None = None
    storage: Path | None = field(default=None)


@dataclass(frozen=True)
class BenchmarkRequest:
    """Everything a benchmark call was asked for, before any check (the CLI's flags, or a Python caller's values).

    Attributes:
        models: Model YAMLs/checkpoints, reference first (empty: the preset).
        preset: Named model list (used when ``models`` is empty).
        datasets: Dataset YAMLs (empty: ``settings.data``).
        settings: Settings shared by every run.
        seeds: Training seeds.
        out: Output folder.
        engine: ``"sequential"`` or ``"ray"``.
        ray_options: Ray engine options.
        latency_repeats: Timed CPU rounds per model.
        gpu_latency_repeats: Timed GPU rounds per model (only with CUDA).
        resamples: Bootstrap replicates of the paired comparisons.
        bootstrap_seed: Seed of the bootstrap.
    """

    models: tuple[str, ...] = ()
    preset: str | None = None
    datasets: tuple[str | None, ...] = ()
    settings: TrainSettings = field(default_factory=TrainSettings)
    seeds: tuple[int, ...] = (0,)
    out: Path | str = DEFAULT_OUT
    engine: str = "sequential"
    ray_options: RayOptions = field(default_factory=RayOptions)
    latency_repeats: int = 30
    gpu_latency_repeats: int = 100
    resamples: int = DEFAULT_RESAMPLES
    bootstrap_seed: int = DEFAULT_BOOTSTRAP_SEED
