"""Plan a benchmark once: every argument checked, every existing run folder inspected, before anything trains.

:func:`plan_benchmark` turns a :class:`~scsa_yolo.benchmark.settings.BenchmarkRequest` into a
:class:`BenchmarkPlan`: the models (each YAML built once, each ``.pt`` loaded once with Ultralytics' restricted
loader) and their one task (:mod:`scsa_yolo.benchmark.tasks`), the datasets (of that task; spellings normalised to
one absolute path, checked offline), the seeds (within what Ultralytics accepts), the output folder (a folder, and
the benchmark's own), the engine and its options, and the state of every run folder (new, interrupted, trained,
finished). Every refusal is a :class:`~scsa_yolo.errors.UsageError` naming the flag or the file. The runner then
works from the plan alone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ultralytics import YOLO
from ultralytics.data.utils import check_cls_dataset, check_det_dataset
from ultralytics.utils import LOGGER, USER_CONFIG_DIR
from ultralytics.utils.torch_utils import select_device

import scsa_yolo  # noqa: F401  (registers SCSA so its model YAMLs and checkpoints load)
from scsa_yolo.benchmark.records import OWNER, ResultsFolderError, read_json
from scsa_yolo.benchmark.run import RunSpec, RunState, inspect_run, load_restricted
from scsa_yolo.benchmark.settings import (
    DEFAULT_PRESET,
    ENGINES,
    SEED_RANGE,
    BenchmarkRequest,
    RayOptions,
    TrainSettings,
)
from scsa_yolo.benchmark.tasks import task_spec
from scsa_yolo.errors import MissingExtraError, UsageError
from scsa_yolo.models import FAMILIES, block_names

OUT_OWNER_FILE = "benchmark.json"  # marks --out as a benchmark results folder


def _plain_and_blocks(stem: str) -> tuple[str, ...]:
    """The plain model, then the same model with each registered block at the neck places (SCSA first)."""
    return (f"{stem}.yaml", *(f"{stem}-{block}.yaml" for block in block_names()))


_SMALLEST = [f"{family}n" for family in FAMILIES]  # yolov8n, yolo11n, yolo26n
# Named model lists; the first model of each is the reference the others are compared with.
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


@dataclass(frozen=True)
class BenchmarkPlan:
    """What a benchmark call will run, after every argument was checked.

    Attributes:
        models: Model names as given, reference first.
        datasets: Resolved dataset YAMLs, in the given order.
        settings: One :class:`TrainSettings` per dataset (``data`` set).
        seeds: Training seeds.
        out: Absolute output folder.
        runs: Every run, datasets outermost, then seeds, then models.
        states: What each run's folder holds (by run name), found once while planning.
        engine: ``"sequential"`` or ``"ray"``.
        ray_options: Ray engine options.
        latency_repeats: Timed CPU rounds per model.
        gpu_latency_repeats: Timed GPU rounds per model.
        resamples: Bootstrap replicates.
        bootstrap_seed: Bootstrap seed.
        task: The Ultralytics task of every model (the metrics, statistics and table follow it).
    """

    models: tuple[str, ...]
    datasets: tuple[str, ...]
    settings: tuple[TrainSettings, ...]
    seeds: tuple[int, ...]
    out: Path
    runs: tuple[RunSpec, ...]
    states: dict[str, RunState]
    engine: str = "sequential"
    ray_options: RayOptions = RayOptions()
    latency_repeats: int = 30
    gpu_latency_repeats: int = 100
    resamples: int = 1000
    bootstrap_seed: int = 0
    task: str = "detect"

    def dataset_name(self, index: int) -> str:
        """The file stem of dataset ``index`` (the run folders' and the tables' name for it)."""
        return Path(self.datasets[index]).stem


def resolve_models(models: str | Sequence[str] | None = None, preset: str | None = None) -> list[str]:
    """Turn ``--models`` / ``--preset`` into the list of model names to compare, reference first.

    Raises:
        UsageError: For an unknown preset, both arguments at once, or two models with the same file stem.
    """
    if models and preset:
        raise UsageError("give either --models or --preset, not both")
    if isinstance(models, str):
        models = [name.strip() for name in models.split(",") if name.strip()]
    if not models:
        preset = preset or DEFAULT_PRESET
        if preset not in PRESETS:
            raise UsageError(f"--preset {preset!r} is unknown; choose from {', '.join(sorted(PRESETS))}")
        models = PRESETS[preset]
    stems = [Path(name).stem for name in models]
    if len(set(stems)) != len(stems):
        raise UsageError(f"--models must have distinct file stems (run folders are named after them): {list(models)}")
    return list(models)


def local_font(font: str = "Arial.ttf") -> Path | None:
    """Ultralytics' ``check_font`` without its download: the font from its config dir or matplotlib's list, or None.

    Ultralytics' dataset check asks the network for Arial.ttf (an HTTP HEAD even with ``YOLO_OFFLINE=1``) when the
    font is not in its config dir; the benchmark draws no labels with it (``plots=False``), so it goes without.
    """
    from matplotlib import font_manager

    file = USER_CONFIG_DIR / Path(font).name
    if file.exists():
        return file
    matches = [f.fname for f in font_manager.fontManager.ttflist if font in f.fname and os.path.exists(f.fname)]
    return Path(matches[0]) if matches else None


@contextlib.contextmanager
def offline_font_check() -> Iterator[None]:
    """Within the block, Ultralytics' dataset check and plotting find fonts locally only (no network request)."""
    import ultralytics.data.utils as data_utils
    import ultralytics.utils.plotting as plotting

    saved = data_utils.check_font, plotting.check_font
    data_utils.check_font = plotting.check_font = local_font
    try:
        yield
    finally:
        data_utils.check_font, plotting.check_font = saved


def check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    """Distinct integers within :data:`SEED_RANGE`, at least one (checked before anything trains)."""
    seeds = tuple(seeds)
    low, high = SEED_RANGE
    if not seeds or not all(isinstance(seed, int) and not isinstance(seed, bool) for seed in seeds):
        raise UsageError(f"--seeds must be integers, at least one: {seeds}")
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds must be distinct: {seeds}")
    bad = [seed for seed in seeds if not low <= seed <= high]
    if bad:
        raise UsageError(f"--seeds {bad} outside {low}..{high} (the range Ultralytics' seeding accepts)")
    return seeds


def check_settings(settings: TrainSettings) -> None:
    """Check the shared training settings, naming the flag."""
    for flag, value, minimum in (("--epochs", settings.epochs, 1), ("--imgsz", settings.imgsz, 32)):
        if not isinstance(value, int) or value < minimum:
            raise UsageError(f"{flag} must be an integer >= {minimum}, got {value!r}")
    if not isinstance(settings.batch, int) or settings.batch < 1:
        raise UsageError(f"--batch must be a positive integer (the benchmark fixes nbs=batch), got {settings.batch!r}")
    if not isinstance(settings.workers, int) or settings.workers < 0:
        raise UsageError(f"--workers must be an integer >= 0, got {settings.workers!r}")
    try:
        select_device(settings.device, verbose=False)
    except Exception as error:  # Ultralytics raises ValueError / RuntimeError naming the device
        raise UsageError(f"--device {settings.device!r} is not usable here: {error}") from None


def check_engine(engine: str, ray_options: RayOptions, device: str) -> None:
    """The engine exists, Ray is installed for it, and Ray-only flags are not given to the sequential engine."""
    from scsa_yolo.benchmark.engines import EngineOptionError, import_ray, trial_device

    if engine not in ENGINES:
        raise UsageError(f"--engine {engine!r} is unknown; choose from {', '.join(ENGINES)}")
    if engine == "ray":
        import_ray()  # says how to install it, before any work
        trial_device(device, 0)  # --device naming GPUs: Ray assigns them
        return
    given = [name for name, value in vars(ray_options).items() if value is not None and name != "storage"]
    if given:
        flags = ", ".join(f"--{name.replace('_', '-')}".replace("--address", "--ray-address") for name in given)
        raise EngineOptionError(f"{flags} only apply to --engine ray (the sequential engine would ignore them)")


def check_out(out: Path) -> Path:
    """``--out`` is a folder that is new, empty, or a benchmark results folder (then it is re-used)."""
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; give a folder for the results")
    if out.is_dir() and any(out.iterdir()):
        owner = out / OUT_OWNER_FILE
        if not owner.is_file():
            raise ResultsFolderError(
                f"--out {out} holds files but is not a benchmark results folder (no {OUT_OWNER_FILE}); the benchmark "
                "writes only into its own folders: give a new or empty folder"
            )
        if read_json(owner, "results-folder marker").get("owner") != OWNER:
            raise ResultsFolderError(f"{owner} is not a benchmark results-folder marker; give another --out")
    return out


def check_model(name: str) -> str:
    """Build a model YAML once, or load a ``.pt`` once (restricted loader); return the model's Ultralytics task."""
    from ultralytics.nn.tasks import guess_model_task

    if Path(name).suffix == ".pt":
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"--models: checkpoint {name!r} not found")
        checkpoint = load_restricted(path, what="--models checkpoint")
        model = checkpoint.get("ema") or checkpoint.get("model") if isinstance(checkpoint, dict) else None
        if model is None:
            raise UsageError(f"--models: {name} is not an Ultralytics checkpoint (no model in it)")
        return guess_model_task(model)
    try:
        return YOLO(name).task
    except Exception as error:  # Ultralytics names the scale-stripped YAML it looked for
        raise UsageError(f"--models: {name!r} cannot be built: {error}") from None


def check_models_task(models: Sequence[str]) -> str:
    """Every model's task, which must be one the benchmark compares and the same for all of them."""
    tasks = {name: check_model(name) for name in models}
    found = list(dict.fromkeys(tasks.values()))
    if len(found) > 1:
        listing = ", ".join(f"{name} ({task})" for name, task in tasks.items())
        raise UsageError(f"--models mixes tasks: {listing}; compare models of one task per benchmark")
    try:
        task_spec(found[0])
    except UsageError as error:
        raise UsageError(f"--models {', '.join(models)}: {error}") from None
    return found[0]


def dataset_task_error(dataset: str, task: str) -> str | None:
    """Why a dataset cannot train models of ``task``, or None when it can.

    Refused: a classification folder for the other tasks, a YAML for classifiers, a semantic-mask YAML
    (``masks_dir``) for anything but semantic models.
    """
    is_yaml = Path(str(dataset)).suffix in (".yaml", ".yml")
    wants_folder = task_spec(task).dataset_kind == "folder"
    if wants_folder and is_yaml:
        return f"--data {dataset} is a dataset YAML, but the models are classifiers: give a classification folder"
    if not wants_folder and not is_yaml:
        return f"--data {dataset} is not a dataset YAML (a classification folder?), but the models are {task} models"
    if is_yaml and Path(dataset).is_file():
        from ultralytics.utils import YAML

        keys = YAML.load(dataset) or {}
        if task != "semantic" and "masks_dir" in keys:
            return f"--data {dataset} is a semantic-segmentation dataset (masks_dir), but the models are {task} models"
        if task == "pose" and "kpt_shape" not in keys:
            return f"--data {dataset} has no kpt_shape, but the models are pose models: give a keypoint dataset"
    return None


def check_dataset(dataset: str | None, task: str = "detect") -> str:
    """A dataset's one spelling (absolute path), after Ultralytics' own check for the task, offline.

    None builds the demo detection dataset.

    Raises:
        UsageError: Naming the dataset, when it is missing, broken, or of another task than the models'.
    """
    if dataset is None and task != "detect":
        raise UsageError(f"--data is required for {task} models (the built-in demo dataset is a detection dataset)")
    if dataset is None:
        from scsa_yolo.data.deepforest import MissingWheelError, build_deepforest_dataset

        try:
            demo = build_deepforest_dataset()
        except (MissingWheelError, FileExistsError) as error:  # the data/ package's errors name the fix
            raise UsageError(f"the demo dataset (no --data given): {error}") from None
        LOGGER.info(demo.summary())
        return str(Path(demo.yaml_path).resolve())
    dataset = shipped_dataset(dataset)
    wrong = dataset_task_error(dataset, task)
    if wrong:
        raise UsageError(wrong)
    if task == "classify" and not Path(dataset).is_dir():  # Ultralytics would try to download it by that name
        raise UsageError(f"--data {dataset}: no such classification folder (train/ and val/ with one folder per class)")
    try:
        with offline_font_check():
            if task == "classify":
                check_cls_dataset(dataset)
            else:
                check_det_dataset(dataset, autodownload=False)
    except Exception as error:
        raise UsageError(f"--data {dataset!r} cannot be used: {error}") from None
    return str(Path(dataset).resolve()) if Path(dataset).is_file() else str(dataset)


def shipped_dataset(dataset: str) -> str:
    """``datasets/<Name>.yaml`` as the README writes it: the checkout's file, else the copy inside the installed wheel.

    Any other spelling is returned as given (Ultralytics resolves bare names to its own built-in YAMLs).
    """
    path = Path(dataset)
    if path.exists() or path.parent.name != "datasets" or len(path.parts) != 2:
        return dataset
    from scsa_yolo.resources import resource_dir

    try:
        shipped = resource_dir("datasets") / path.name
    except FileNotFoundError:
        return dataset
    return str(shipped) if shipped.is_file() else dataset


def plan_benchmark(request: BenchmarkRequest) -> BenchmarkPlan:
    """Check every model, dataset, seed, option and existing run folder, and return the plan.

    Raises:
        UsageError: Naming the flag or file at fault (nothing has trained or been written).
    """
    settings = request.settings
    seeds = check_seeds(request.seeds)
    check_settings(settings)
    check_engine(request.engine, request.ray_options, settings.device)
    for flag, value in (("latency repeats", request.latency_repeats), ("resamples", request.resamples)):
        if not isinstance(value, int) or value < 1:
            raise UsageError(f"{flag} must be a positive integer, got {value!r}")
    out = check_out(Path(request.out))
    models = resolve_models(list(request.models), request.preset)
    task = check_models_task(models)
    if task == "detect" and importlib.util.find_spec("faster_coco_eval") is None:
        raise MissingExtraError("the benchmark's AP by object size", "benchmark", "faster_coco_eval")
    datasets = [check_dataset(dataset, task) for dataset in (request.datasets or (settings.data,))]
    stems = [Path(dataset).stem for dataset in datasets]
    if len(set(stems)) != len(stems):
        raise UsageError(f"--data YAMLs must have distinct file stems (run folders are named after them): {datasets}")
    per_dataset = tuple(replace(settings, data=dataset) for dataset in datasets)
    runs = []
    for index, dataset in enumerate(datasets):
        for seed in seeds:
            for model in models:
                parts = ((Path(dataset).stem,) if len(datasets) > 1 else ()) + (f"{Path(model).stem}-seed{seed}",)
                run_dir = out.joinpath("runs", *parts)
                runs.append(RunSpec("-".join(parts), index, model, seed, per_dataset[index], run_dir, task))
    states = {spec.name: inspect_run(spec) for spec in runs}
    return BenchmarkPlan(
        models=tuple(models),
        datasets=tuple(datasets),
        settings=per_dataset,
        seeds=seeds,
        out=out,
        runs=tuple(runs),
        states=states,
        engine=request.engine,
        ray_options=request.ray_options,
        latency_repeats=request.latency_repeats,
        gpu_latency_repeats=request.gpu_latency_repeats,
        resamples=request.resamples,
        bootstrap_seed=request.bootstrap_seed,
        task=task,
    )
