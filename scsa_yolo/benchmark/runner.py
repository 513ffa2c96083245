"""Train several models on the same data with the same settings and seeds, then compare accuracy and cost.

Each (model, seed) pair is one Ultralytics training run in ``OUT/runs/<model stem>-seed<seed>/``. When a run is
finished, its numbers go to ``benchmark_run.json`` in that folder; a later call with the same settings reads them
instead of training again, and a run interrupted mid-training resumes from its ``weights/last.pt``. Costs (parameters,
GFLOPs, latency) belong to the architecture, so they are measured once per model, in this process, at the end.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from ultralytics import YOLO
from ultralytics.utils import LOGGER, NUM_THREADS
from ultralytics.utils.patches import torch_load
from ultralytics.utils.torch_utils import select_device

import scsa_yolo  # noqa: F401  (registers SCSA so its model YAMLs and checkpoints load)
from scsa_yolo.benchmark.engines import (
    RAY_RESULTS_DIR,
    RayOptions,
    RunTask,
    import_ray,
    run_sequential,
    run_with_ray,
)
from scsa_yolo.benchmark.measure import device_name, measure_latency, model_cost
from scsa_yolo.benchmark.plots import plot_accuracy_vs_latency, plot_training_curves, read_training_curves
from scsa_yolo.benchmark.report import markdown_table, write_results_csv
from scsa_yolo.data.deepforest import build_deepforest_dataset
from scsa_yolo.models import FAMILIES, block_names


# Named model lists; the first model of each is the reference the others are compared with.
def _plain_and_blocks(stem: str) -> tuple[str, ...]:
    """The plain model, then the same model with each registered block at the neck places (SCSA first)."""
    return (f"{stem}.yaml", *(f"{stem}-{block}.yaml" for block in block_names()))


_SMALLEST = [f"{family}n" for family in FAMILIES]  # yolov8n, yolo11n, yolo26n
PRESETS: dict[str, tuple[str, ...]] = {
    "scsa": ("yolov8n.yaml", "yolov8n-scsa.yaml"),
    # Every attention block at the SCSA places (the neck rule, scsa_yolo.models), per family.
    "attention": _plain_and_blocks("yolov8n"),
    **{f"attention-{stem}": _plain_and_blocks(stem) for stem in _SMALLEST},
    # Each family plain and with SCSA at the neck places.
    "families": tuple(name for stem in _SMALLEST for name in (f"{stem}.yaml", f"{stem}-scsa.yaml")),
    # The three placements of SCSA in Ultralytics' default family.
    "placements": ("yolo26n.yaml", "yolo26n-scsa.yaml", "yolo26n-scsa-backbone.yaml", "yolo26n-scsa-both.yaml"),
}
DEFAULT_PRESET = "scsa"
DEFAULT_OUT = Path("runs") / "benchmark"
ENGINES = ("sequential", "ray")
RUN_RECORD = "benchmark_run.json"
# Settings that must match between a checkpoint and the requested run for it to be resumed.
RESUME_KEYS = ("epochs", "imgsz", "batch", "seed")


@dataclass(frozen=True)
class TrainSettings:
    """What every run of one benchmark shares; the defaults fit a ~12-minute two-model run on a 2-core CPU.

    Attributes:
        data: Dataset YAML; ``None`` builds (or reuses) the embedded deepforest tree-crown dataset.
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


class SettingsMismatchError(RuntimeError):
    """An output folder already holds a run made with other settings."""


def resolve_models(models: str | Sequence[str] | None = None, preset: str | None = None) -> list[str]:
    """Turn ``--models`` / ``--preset`` into the list of model names to compare.

    Args:
        models: Comma-separated string or sequence of model YAMLs/checkpoints.
        preset: Name in :data:`PRESETS`; used when ``models`` is empty (``DEFAULT_PRESET`` when both are empty).

    Returns:
        Model names, reference first.

    Raises:
        ValueError: For an unknown preset, both arguments at once, or two models with the same file stem.
    """
    if models and preset:
        raise ValueError("Give either models or a preset, not both.")
    if isinstance(models, str):
        models = [name.strip() for name in models.split(",") if name.strip()]
    if not models:
        preset = preset or DEFAULT_PRESET
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; choose from {sorted(PRESETS)}")
        models = PRESETS[preset]
    stems = [Path(name).stem for name in models]
    if len(set(stems)) != len(stems):
        raise ValueError(f"Model names must have distinct file stems (run folders are named after them): {models}")
    return list(models)


def run_benchmark(
    models: Sequence[str],
    settings: TrainSettings | None = None,
    seeds: Sequence[int] = (0,),
    out: Path | str = DEFAULT_OUT,
    latency_repeats: int = 30,
    gpu_latency_repeats: int = 100,
    engine: str = "sequential",
    ray_options: RayOptions | None = None,
) -> list[dict]:
    """Train and validate every model with every seed, measure costs, and write the report.

    Args:
        models: Model YAMLs or checkpoints, reference first (see :func:`resolve_models`).
        settings: Settings shared by every run (the :class:`TrainSettings` defaults when ``None``).
        seeds: Training seeds; each model is trained once per seed.
        out: Output folder: ``results.csv``, ``results.md``, ``accuracy_vs_latency.png``,
            ``training_curves.png`` and one Ultralytics run folder per (model, seed) under ``runs/``.
        latency_repeats: Timed CPU forwards per model.
        gpu_latency_repeats: Timed GPU forwards per model (only when CUDA is available).
        engine: Where the runs happen: ``"sequential"`` (one after another in this process) or ``"ray"`` (one Ray
            Tune trial each, see :mod:`scsa_yolo.benchmark.engines`). Both call :func:`_run_once` per run.
        ray_options: Cluster address and per-trial resources of the Ray engine.

    Returns:
        One result dict per run, with the columns of :data:`scsa_yolo.benchmark.report.RESULT_COLUMNS`.
    """
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine {engine!r}; choose from {sorted(ENGINES)}")
    if engine == "ray":
        import_ray()  # says how to install it, before any work
    out = Path(out).resolve()
    settings = settings or TrainSettings()
    if settings.data is None:
        dataset = build_deepforest_dataset()
        LOGGER.info(dataset.summary())
        settings = replace(settings, data=dataset.yaml_path)
    plan = [(model, seed) for seed in seeds for model in models]
    tasks = []
    for model, seed in plan:
        run_dir = out / "runs" / f"{Path(model).stem}-seed{seed}"
        kwargs = {"model": model, "seed": seed, "settings": settings, "run_dir": run_dir}
        description = f"{model} seed {seed} -> {run_dir}"
        tasks.append(RunTask(run_dir.name, _run_once, kwargs, description, (run_dir / RUN_RECORD).is_file()))
    if engine == "ray":
        options = replace(ray_options or RayOptions(), storage=out / RAY_RESULTS_DIR)
        records = run_with_ray(tasks, options, settings.device)
    else:
        records = run_sequential(tasks)

    rows = _add_costs(records, settings, latency_repeats, gpu_latency_repeats)
    write_results_csv(rows, out / "results.csv")
    table = markdown_table(rows)
    (out / "results.md").write_text(
        f"# Benchmark: {', '.join(models)}\n\ndata `{settings.data}`, {settings.epochs} epochs, imgsz "
        f"{settings.imgsz}, batch {settings.batch}, seeds {', '.join(map(str, seeds))}\n\n{table}"
    )
    plot_accuracy_vs_latency(rows, out / "accuracy_vs_latency.png")
    plot_training_curves(
        {(r["model"], r["seed"]): Path(r["run_dir"]) / "results.csv" for r in records}, out / "training_curves.png"
    )
    LOGGER.info(f"\n{table}\nResults in {out}")
    return rows


def _run_once(model: str, seed: int, settings: TrainSettings, run_dir: Path) -> dict:
    """Train (or resume, or skip) one run and return its recorded result."""
    record_path = run_dir / RUN_RECORD
    wanted = {"model": model, "seed": seed, "settings": asdict(settings)}
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if {key: record.get(key) for key in wanted} != wanted:
            raise SettingsMismatchError(
                f"{run_dir} holds a finished run with other settings ({record.get('settings')}); "
                "choose another --out or delete that folder."
            )
        LOGGER.info(f"  finished earlier: mAP50-95 {record['map50_95']:.3f}, not trained again")
        return record

    last = run_dir / "weights" / "last.pt"
    state = _checkpoint_state(last, settings, seed)
    if state == "interrupted":
        LOGGER.info(f"  resuming from {last}")
        YOLO(str(last)).train(resume=True, data=settings.data, save_dir=str(run_dir), workers=settings.workers)
    elif state == "new":
        if run_dir.exists():  # leftovers of a run that died before its first checkpoint
            shutil.rmtree(run_dir)
        YOLO(model).train(
            **settings.ultralytics_args(seed), project=str(run_dir.parent), name=run_dir.name, exist_ok=True
        )
    else:
        LOGGER.info("  training finished earlier, validating")

    record = {**wanted, **_validate(last, settings, run_dir)}
    record["train_s"] = round(_training_seconds(run_dir / "results.csv"), 1)
    record["device"] = device_name(select_device(settings.device, verbose=False))
    record["run_dir"] = str(run_dir)
    record_path.write_text(json.dumps(record, indent=2))
    return record


def _checkpoint_state(last: Path, settings: TrainSettings, seed: int) -> str:
    """Classify a run folder's ``last.pt``: ``"new"`` (none), ``"interrupted"`` (resumable) or ``"trained"``.

    Ultralytics strips the optimizer and sets ``epoch`` to -1 in ``last.pt`` when training ends, so a checkpoint
    that still carries optimizer state is one that training never finished.
    """
    if not last.is_file():
        return "new"
    checkpoint = torch_load(last, map_location="cpu")
    if checkpoint.get("optimizer") is None or checkpoint.get("epoch", -1) < 0:
        return "trained"
    saved = checkpoint.get("train_args", {})
    wanted = {**settings.ultralytics_args(seed)}
    differing = {key: (saved.get(key), wanted[key]) for key in RESUME_KEYS if saved.get(key) != wanted[key]}
    if differing:
        raise SettingsMismatchError(
            f"{last} was started with other settings {differing} (saved, requested); "
            "choose another --out or delete that run folder."
        )
    return "interrupted"


def _validate(weights: Path, settings: TrainSettings, run_dir: Path) -> dict:
    """Validate the final weights on the val split and return the box metrics."""
    metrics = YOLO(str(weights)).val(
        data=settings.data,
        imgsz=settings.imgsz,
        batch=settings.batch,
        device=settings.device,
        workers=settings.workers,
        plots=False,
        project=str(run_dir),
        name="final_val",
        exist_ok=True,
    )
    box = metrics.box
    return {
        "map50": round(float(box.map50), 4),
        "map50_95": round(float(box.map), 4),
        "precision": round(float(box.mp), 4),
        "recall": round(float(box.mr), 4),
    }


def _training_seconds(results_csv: Path) -> float:
    """Training time from Ultralytics' per-epoch ``time`` column, summed over resumed segments.

    The column counts from the start of each training segment, so it falls back when a run resumes.
    """
    if not results_csv.is_file():
        return float("nan")
    times = read_training_curves(results_csv).get("time", [])
    total, previous = 0.0, 0.0
    for elapsed in times:
        if elapsed < previous:
            total += previous
        previous = elapsed
    return total + previous


def _add_costs(records: list[dict], settings: TrainSettings, cpu_repeats: int, gpu_repeats: int) -> list[dict]:
    """Measure parameters, GFLOPs and latency once per model and attach them to every run of that model."""
    weights = {}
    for record in records:
        weights.setdefault(record["model"], Path(record["run_dir"]) / "weights" / "last.pt")
    networks = {model: YOLO(str(path)).model.float() for model, path in weights.items()}
    costs = {model: model_cost(network, settings.imgsz) for model, network in networks.items()}
    cpu = torch.device("cpu")
    cpu_name = device_name(cpu, cpu_threads=NUM_THREADS)  # measure_latency times CPU runs at NUM_THREADS
    LOGGER.info(f"Measuring batch-1 latency on {cpu_name}")
    cpu_latency = measure_latency(networks, settings.imgsz, cpu, repeats=cpu_repeats)
    gpu_latency, gpu_name = {}, ""
    if torch.cuda.is_available():
        gpu = select_device(settings.device or 0, verbose=False)  # the training card (first one with several)
        gpu = gpu if gpu.type == "cuda" else torch.device("cuda", 0)
        gpu_name = device_name(gpu)
        LOGGER.info(f"Measuring batch-1 latency on {gpu_name}")
        gpu_latency = measure_latency(networks, settings.imgsz, gpu, repeats=gpu_repeats)
    rows = []
    for record in records:
        model = record["model"]
        rows.append(
            {
                **record,
                "params": costs[model].params,
                "gflops": costs[model].gflops,
                "latency_ms": cpu_latency[model],
                "latency_device": cpu_name,
                "latency_gpu_ms": gpu_latency.get(model, ""),
                "latency_gpu_device": gpu_name,
                "epochs": settings.epochs,
                "imgsz": settings.imgsz,
            }
        )
    return rows
