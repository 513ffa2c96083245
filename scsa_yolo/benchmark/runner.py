"""Train several models on the same data with the same settings and seeds, then compare accuracy and cost.

Each (model, seed) pair is one Ultralytics training run in ``OUT/runs/<model stem>-seed<seed>/`` (with several
datasets, ``OUT/runs/<dataset stem>/<model stem>-seed<seed>/``). When a run is finished, it is validated once: its
numbers go to ``benchmark_run.json`` and its per-image matching results to ``final_val/image_stats.npz`` in that
folder; a later call with the same settings reads them instead of training again, and a run interrupted mid-training
resumes from its ``weights/last.pt`` (recorded in ``resumes.json``: resumed runs are not bit-identical to
uninterrupted ones). Costs (parameters, GFLOPs, latency) belong to the architecture, so they are measured once per
model and dataset, in this process, at the end; the paired comparisons are recomputed from the saved per-image
statistics on every call.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from ultralytics import YOLO
from ultralytics.data.utils import check_det_dataset
from ultralytics.utils import LOGGER, NUM_THREADS
from ultralytics.utils.patches import torch_load
from ultralytics.utils.torch_utils import select_device

import scsa_yolo  # noqa: F401  (registers SCSA so its model YAMLs and checkpoints load)
from scsa_yolo.benchmark.engines import (
    RAY_RESULTS_DIR,
    EngineOptionError,
    RayOptions,
    RunTask,
    import_ray,
    run_sequential,
    run_with_ray,
)
from scsa_yolo.benchmark.evaluation import validate_run
from scsa_yolo.benchmark.measure import device_name, measure_latency, model_cost
from scsa_yolo.benchmark.plots import (
    plot_accuracy_vs_latency,
    plot_comparisons,
    plot_training_curves,
    read_training_curves,
)
from scsa_yolo.benchmark.report import (
    comparison_verdicts,
    dropped_resample_notes,
    markdown_report,
    write_comparisons_csv,
    write_results_csv,
)
from scsa_yolo.benchmark.stats import (
    DEFAULT_BOOTSTRAP_SEED,
    DEFAULT_RESAMPLES,
    load_image_stats,
    paired_comparisons,
    ratio_interval,
)
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
RESUME_LOG = "resumes.json"  # epochs at which a run was resumed, appended before each resume
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


@dataclass(frozen=True)
class BenchmarkPlan:
    """What a benchmark call will run, after every argument was checked.

    Attributes:
        models: Model names as given, reference first.
        datasets: Resolved dataset YAMLs (the demo dataset built), in the given order.
        settings: One :class:`TrainSettings` per dataset (``data`` set).
        seeds: Training seeds.
        out: Absolute output folder.
    """

    models: tuple[str, ...]
    datasets: tuple[str, ...]
    settings: tuple[TrainSettings, ...]
    seeds: tuple[int, ...]
    out: Path

    def run_dir(self, dataset_index: int, model: str, seed: int) -> Path:
        """Run folder of one (dataset, model, seed); one dataset keeps the single-dataset layout."""
        runs = self.out / "runs"
        if len(self.datasets) > 1:
            runs = runs / Path(self.datasets[dataset_index]).stem
        return runs / f"{Path(model).stem}-seed{seed}"

    def runs(self) -> list[tuple[int, str, int, Path]]:
        """Every (dataset index, model, seed, run folder), datasets outermost, then seeds, then models."""
        return [
            (index, model, seed, self.run_dir(index, model, seed))
            for index in range(len(self.datasets))
            for seed in self.seeds
            for model in self.models
        ]


def plan_benchmark(
    models: Sequence[str],
    settings: TrainSettings | None = None,
    seeds: Sequence[int] = (0,),
    out: Path | str = DEFAULT_OUT,
    datasets: Sequence[str | None] | None = None,
) -> BenchmarkPlan:
    """Check every model name, dataset YAML and option before anything trains, and return the plan.

    Args:
        models: Model YAMLs or checkpoints, reference first.
        settings: Shared settings; its ``data`` is used when ``datasets`` is not given.
        seeds: Training seeds.
        out: Output folder.
        datasets: Dataset YAMLs (``None`` entries build the embedded demo dataset).

    Returns:
        The checked plan.

    Raises:
        ValueError: Naming the bad model, dataset, option or seed.
        FileNotFoundError: For a missing checkpoint or dataset.
        SettingsMismatchError: When ``out`` already holds a run of this plan made with other settings.
        ModuleNotFoundError: Without faster-coco-eval (the area APs need it).
    """
    settings = settings or TrainSettings()
    seeds = tuple(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(seed, int) for seed in seeds):
        raise ValueError(f"seeds must be distinct integers, at least one: {seeds}")
    for name, value, minimum in (("epochs", settings.epochs, 1), ("imgsz", settings.imgsz, 32)):
        if not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if not isinstance(settings.batch, int) or settings.batch < 1:
        raise ValueError(f"batch must be a positive integer (the benchmark fixes nbs=batch), got {settings.batch!r}")
    if not isinstance(settings.workers, int) or settings.workers < 0:
        raise ValueError(f"workers must be an integer >= 0, got {settings.workers!r}")
    try:
        select_device(settings.device, verbose=False)
    except Exception as error:  # Ultralytics raises ValueError / RuntimeError naming the device
        raise ValueError(f"device {settings.device!r} is not usable here: {error}") from error
    if importlib.util.find_spec("faster_coco_eval") is None:
        raise ModuleNotFoundError(
            "faster-coco-eval is missing (it gives the AP by object size): pip install faster-coco-eval"
        )

    names = resolve_models(list(models))
    for name in names:
        _check_model(name)

    datasets = list(datasets) if datasets else [settings.data]
    resolved = []
    for dataset in datasets:
        if dataset is None:
            demo = build_deepforest_dataset()
            LOGGER.info(demo.summary())
            resolved.append(str(demo.yaml_path))
            continue
        try:
            check_det_dataset(dataset, autodownload=False)
        except Exception as error:
            raise ValueError(f"dataset {dataset!r} cannot be used: {error}") from error
        resolved.append(str(dataset))
    stems = [Path(dataset).stem for dataset in resolved]
    if len(set(stems)) != len(stems):
        raise ValueError(f"Dataset YAMLs must have distinct file stems (run folders are named after them): {resolved}")

    plan = BenchmarkPlan(
        models=tuple(names),
        datasets=tuple(resolved),
        settings=tuple(replace(settings, data=dataset) for dataset in resolved),
        seeds=seeds,
        out=Path(out).resolve(),
    )
    for index, model, seed, run_dir in plan.runs():
        _check_existing_run(model, seed, plan.settings[index], run_dir)
    return plan


def _check_model(name: str) -> None:
    """Build a model once (YAML) or find its checkpoint, raising an error that names it as the user wrote it."""
    if Path(name).suffix == ".pt":
        if not Path(name).is_file():
            raise FileNotFoundError(f"model checkpoint {name!r} not found")
        return
    try:
        YOLO(name)
    except Exception as error:  # Ultralytics names the scale-stripped YAML it looked for
        raise ValueError(f"model {name!r} cannot be built: {error}") from error


def _check_existing_run(model: str, seed: int, settings: TrainSettings, run_dir: Path) -> None:
    """Raise :class:`SettingsMismatchError` when ``run_dir`` holds this run made with other settings."""
    record_path = run_dir / RUN_RECORD
    if record_path.is_file():
        _matching_record(record_path, {"model": model, "seed": seed, "settings": asdict(settings)})
    else:
        _checkpoint_state(run_dir / "weights" / "last.pt", settings, seed)


def run_benchmark(
    models: Sequence[str],
    settings: TrainSettings | None = None,
    seeds: Sequence[int] = (0,),
    out: Path | str = DEFAULT_OUT,
    latency_repeats: int = 30,
    gpu_latency_repeats: int = 100,
    datasets: Sequence[str | None] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    bootstrap_seed: int = DEFAULT_BOOTSTRAP_SEED,
    engine: str = "sequential",
    ray_options: RayOptions | None = None,
) -> list[dict]:
    """Train and validate every model with every seed on every dataset, measure costs, compare, write the report.

    Every argument is checked first (:func:`plan_benchmark`), so a misspelled model or dataset fails before hours of
    training.

    Args:
        models: Model YAMLs or checkpoints, reference first (see :func:`resolve_models`).
        settings: Settings shared by every run (the :class:`TrainSettings` defaults when ``None``).
        seeds: Training seeds; each model is trained once per seed.
        out: Output folder: ``results.csv``, ``results.md``, ``comparisons.csv``, ``comparisons.png``,
            ``accuracy_vs_latency.png``, ``training_curves.png`` and one Ultralytics run folder per run under
            ``runs/``.
        latency_repeats: Timed CPU rounds per model.
        gpu_latency_repeats: Timed GPU rounds per model (only when CUDA is available).
        datasets: Dataset YAMLs; ``None`` uses ``settings.data`` (``None`` there builds the embedded demo data).
        resamples: Bootstrap replicates of the paired comparisons.
        bootstrap_seed: Seed of the bootstrap; the same seed reproduces the intervals.
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
    elif ray_options is not None and ray_options != RayOptions():
        flag_of = {"address": "--ray-address", "gpus_per_run": "--gpus-per-run", "cpus_per_run": "--cpus-per-run"}
        given = [name for name, value in vars(ray_options).items() if value is not None]
        flags = ", ".join(flag_of.get(name, name) for name in given)
        raise EngineOptionError(f"{flags} only apply to --engine ray (the sequential engine would ignore them)")
    plan = plan_benchmark(models, settings, seeds, out, datasets)
    tasks = []
    for index, model, seed, run_dir in plan.runs():
        kwargs = {"model": model, "seed": seed, "settings": plan.settings[index], "run_dir": run_dir}
        description = f"{model} seed {seed} on {Path(plan.datasets[index]).name} -> {run_dir}"
        name = "-".join(run_dir.relative_to(plan.out / "runs").parts)  # unique over datasets too
        tasks.append(RunTask(name, _run_once, kwargs, description, (run_dir / RUN_RECORD).is_file()))
    if engine == "ray":
        options = replace(ray_options or RayOptions(), storage=plan.out / RAY_RESULTS_DIR)
        records = run_with_ray(tasks, options, plan.settings[0].device)
    else:
        records = run_sequential(tasks)
    records = [
        {**record, "dataset": Path(plan.datasets[index]).stem} for record, (index, _, _, _) in zip(records, plan.runs())
    ]

    rows, comparisons, seconds = [], [], []
    for index, dataset_settings in enumerate(plan.settings):
        dataset = Path(plan.datasets[index]).stem
        dataset_records = [record for record in records if record["dataset"] == dataset]
        rows += _add_costs(dataset_records, dataset_settings, latency_repeats, gpu_latency_repeats)
        started = time.perf_counter()
        found = _compare(dataset_records, plan, resamples, bootstrap_seed)
        seconds.append(time.perf_counter() - started)
        comparisons += [(dataset, comparison) for comparison in found]
    LOGGER.info(
        f"Paired comparisons ({len(plan.models)} models x {len(plan.seeds)} seeds, {resamples} resamples per "
        f"dataset): {sum(seconds):.1f} s"
    )

    plan.out.mkdir(parents=True, exist_ok=True)
    write_results_csv(rows, plan.out / "results.csv")
    write_comparisons_csv(comparisons, plan.out / "comparisons.csv", with_dataset=len(plan.datasets) > 1)
    report = markdown_report(rows, comparisons, plan, comparison_seconds=sum(seconds), resamples=resamples)
    (plan.out / "results.md").write_text(report)
    plot_accuracy_vs_latency(rows, plan.out / "accuracy_vs_latency.png")
    plot_comparisons(comparisons, plan.out / "comparisons.png")
    plot_training_curves(
        {(r["dataset"], r["model"], r["seed"]): Path(r["run_dir"]) / "results.csv" for r in records},
        plan.out / "training_curves.png",
    )
    multiple_datasets = len(plan.datasets) > 1
    verdicts = "\n".join(
        comparison_verdicts(comparisons, multiple_datasets) + dropped_resample_notes(comparisons, multiple_datasets)
    )
    LOGGER.info(f"\n{report}\nResults in {plan.out}\n\n{verdicts}")
    return rows


def _matching_record(record_path: Path, wanted: dict) -> dict:
    """Read a run record and check it was made with the wanted model, seed and settings."""
    record = json.loads(record_path.read_text())
    if {key: record.get(key) for key in wanted} != wanted:
        raise SettingsMismatchError(
            f"{record_path.parent} holds a finished run with other settings ({record.get('settings')}); "
            "choose another --out or delete that folder."
        )
    return record


def _run_once(model: str, seed: int, settings: TrainSettings, run_dir: Path) -> dict:
    """Train (or resume, or skip) one run, validate it once, and return its recorded result.

    A record written before per-image statistics existed (or whose statistics file is gone) is completed by
    validating the finished weights again; nothing is retrained.
    """
    record_path = run_dir / RUN_RECORD
    wanted = {"model": model, "seed": seed, "settings": asdict(settings)}
    if record_path.is_file():
        record = _matching_record(record_path, wanted)
        if record.get("image_stats") and Path(record["image_stats"]).is_file():
            LOGGER.info(f"  finished earlier: mAP50-95 {record['map50_95']:.3f}, not trained again")
            return record
        LOGGER.info("  finished earlier, validating again for its per-image statistics (no training)")
        record.update(_validate(run_dir / "weights" / "last.pt", settings, run_dir))
        record_path.write_text(json.dumps(record, indent=2))
        return record

    last = run_dir / "weights" / "last.pt"
    state = _checkpoint_state(last, settings, seed)
    resume_log = run_dir / RESUME_LOG
    if state == "interrupted":
        epoch = int(torch_load(last, map_location="cpu").get("epoch", -1)) + 2  # 1-based epoch training goes on with
        LOGGER.info(f"  resuming from {last} at epoch {epoch} (results will not be bit-identical to an unbroken run)")
        resumes = json.loads(resume_log.read_text()) if resume_log.is_file() else []
        resume_log.write_text(json.dumps([*resumes, epoch]))
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
    record["resumed_at_epochs"] = json.loads(resume_log.read_text()) if resume_log.is_file() else []
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
    """Validate the final weights on the val split: box metrics, COCO area APs and per-image statistics."""
    record = validate_run(
        weights, settings.data, settings.imgsz, settings.batch, settings.device, settings.workers, run_dir
    )
    return {key: round(value, 4) if isinstance(value, float) else value for key, value in record.items()}


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
    """Measure parameters, GFLOPs and latency once per model and attach them to every run of that model.

    The latency of each model relative to the first one gets a 95 % interval from the paired timing rounds.
    """
    weights = {}
    for record in records:
        weights.setdefault(record["model"], Path(record["run_dir"]) / "weights" / "last.pt")
    networks = {model: YOLO(str(path)).model.float() for model, path in weights.items()}
    costs = {model: model_cost(network, settings.imgsz) for model, network in networks.items()}
    cpu = torch.device("cpu")
    cpu_name = device_name(cpu, cpu_threads=NUM_THREADS)  # measure_latency times CPU runs at NUM_THREADS
    LOGGER.info(f"Measuring batch-1 latency on {cpu_name}")
    cpu_samples = measure_latency(networks, settings.imgsz, cpu, repeats=cpu_repeats)
    gpu_samples, gpu_name = {}, ""
    if torch.cuda.is_available():
        gpu = select_device(settings.device or 0, verbose=False)  # the training card (first one with several)
        gpu = gpu if gpu.type == "cuda" else torch.device("cuda", 0)
        gpu_name = device_name(gpu)
        LOGGER.info(f"Measuring batch-1 latency on {gpu_name}")
        gpu_samples = measure_latency(networks, settings.imgsz, gpu, repeats=gpu_repeats)
    reference = next(iter(networks))
    ratios = {model: ratio_interval(cpu_samples[model], cpu_samples[reference]) for model in networks}
    rows = []
    for record in records:
        model = record["model"]
        ratio, low, high = ratios[model]
        rows.append(
            {
                **record,
                "params": costs[model].params,
                "gflops": costs[model].gflops,
                "latency_ms": round(statistics.median(cpu_samples[model]), 3),
                "latency_ratio": round(ratio, 4),
                "latency_ratio_low": round(low, 4),
                "latency_ratio_high": round(high, 4),
                "latency_device": cpu_name,
                "latency_gpu_ms": round(statistics.median(gpu_samples[model]), 3) if gpu_samples else "",
                "latency_gpu_device": gpu_name,
                "epochs": settings.epochs,
                "imgsz": settings.imgsz,
            }
        )
    return rows


def _compare(records: list[dict], plan: BenchmarkPlan, resamples: int, seed: int) -> list:
    """Paired bootstrap comparisons of one dataset's runs, from their saved per-image statistics."""
    by_model = {}
    for record in records:
        by_model.setdefault(Path(record["model"]).stem, {})[record["seed"]] = record
    if len(by_model) < 2:
        return []
    runs = {
        model: [load_image_stats(Path(seeds[seed]["image_stats"])) for seed in plan.seeds]
        for model, seeds in by_model.items()
    }
    return paired_comparisons(runs, resamples=resamples, seed=seed)
