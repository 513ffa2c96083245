"""One run of a benchmark: find what its folder holds, then train, resume, skip or re-validate it.

A run folder is the benchmark's own (see :mod:`scsa_yolo.benchmark.records`): :func:`inspect_run` reads only files
the benchmark wrote, checks checkpoints against their recorded SHA-256 and loads them with Ultralytics' restricted
loader (``weights_only=True`` and an allow-list of model classes), so a planted pickle is never unpickled.
Nothing is ever deleted: a run that died before its first checkpoint trains again in its own folder.
"""

from __future__ import annotations

import csv
import math
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

from ultralytics.utils import LOGGER

from scsa_yolo.benchmark.records import (
    LAST,
    RUN_RECORD,
    ResultsFolderError,
    RunOwnership,
    RunRecord,
    SettingsMismatchError,
    mismatched_settings,
)
from scsa_yolo.benchmark.settings import TrainSettings
from scsa_yolo.benchmark.tasks import metric_label, task_spec
from scsa_yolo.data.images import file_digest
from scsa_yolo.errors import UsageError

# Settings that must match between a checkpoint and the requested run for it to be resumed.
RESUME_KEYS = ("epochs", "imgsz", "batch", "seed")


@dataclass(frozen=True)
class RunSpec:
    """One (dataset, model, seed) of the plan.

    Attributes:
        name: Unique name (the run folder's path under ``runs/``, joined by ``-``); names Ray trials and failures.
        dataset_index: Index of its dataset in the plan.
        model: Model name as given.
        seed: Training seed.
        settings: The run's settings (``data`` set).
        run_dir: Absolute run folder.
        task: The model's Ultralytics task (every model of a plan has the same).
    """

    name: str
    dataset_index: int
    model: str
    seed: int
    settings: TrainSettings
    run_dir: Path
    task: str = "detect"

    @property
    def description(self) -> str:
        """One line for the log."""
        return f"{self.model} seed {self.seed} on {Path(self.settings.data).name} -> {self.run_dir}"


@dataclass(frozen=True)
class RunState:
    """What a run folder holds, found once while planning.

    Attributes:
        kind: ``"new"`` (no checkpoint yet), ``"interrupted"`` (resumable ``last.pt``), ``"trained"`` (training
            ended, not validated) or ``"finished"`` (validated and recorded).
        record: The run record when finished.
        stats_ok: A finished run's statistics file is present and unchanged (otherwise it is validated again).
        epoch: 1-based epoch an interrupted run goes on with.
    """

    kind: str
    record: RunRecord | None = None
    stats_ok: bool = False
    epoch: int = 0


def load_restricted(path: Path, what: str = "checkpoint") -> dict:
    """Load a checkpoint with Ultralytics' restricted loader (no code in the file runs), or refuse it by name."""
    from ultralytics.nn.tasks import torch_safe_load

    try:
        checkpoint, _ = torch_safe_load(str(path), safe_only=True)
    except (TypeError, pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(
            f"{what} {path} is not an Ultralytics checkpoint the restricted loader accepts ({first}); it was not loaded"
        ) from None
    if not isinstance(checkpoint, dict):
        raise UsageError(f"{what} {path} is not an Ultralytics checkpoint (a {type(checkpoint).__name__})")
    return checkpoint


def inspect_run(spec: RunSpec) -> RunState:
    """Classify a run folder, refusing one that is not the benchmark's or that holds this run with other settings.

    Raises:
        ResultsFolderError: For a folder or checkpoint the benchmark did not write, or a damaged record.
        SettingsMismatchError: When the folder holds this run made with other settings (the flags are named).
    """
    ownership = RunOwnership.read(spec.run_dir)
    if ownership is None:
        return RunState("new")
    record_path = spec.run_dir / RUN_RECORD
    if record_path.is_file():
        record = RunRecord.read(record_path)
        wanted = {"model": spec.model, "seed": spec.seed, **asdict(spec.settings)}
        found = {"model": record.model, "seed": record.seed, **asdict(record.settings)}
        differing = mismatched_settings(wanted, found)
        if differing:
            raise SettingsMismatchError(
                f"{spec.run_dir} holds a finished run with other settings ({'; '.join(differing)}); choose another "
                "--out or give the saved settings"
            )
        if file_digest(ownership.verified(spec.run_dir)) != record.weights_sha256:
            raise ResultsFolderError(f"{spec.run_dir / LAST} is not the checkpoint {record_path} was validated on")
        stats = spec.run_dir / record.image_stats
        stats_ok = stats.is_file() and file_digest(stats) == record.image_stats_sha256
        if not stats_ok:
            LOGGER.warning(f"{stats} is missing, damaged or edited: its run is validated again (no training)")
        return RunState("finished", record, stats_ok)
    if LAST not in ownership.files and not (spec.run_dir / LAST).exists():
        return RunState("new")
    checkpoint = load_restricted(ownership.verified(spec.run_dir), "run checkpoint")
    if checkpoint.get("optimizer") is None or checkpoint.get("epoch", -1) < 0:
        return RunState("trained")
    saved = checkpoint.get("train_args", {})
    wanted = {key: spec.settings.ultralytics_args(spec.seed)[key] for key in RESUME_KEYS}
    differing = mismatched_settings(wanted, saved)
    if differing:
        raise SettingsMismatchError(
            f"{spec.run_dir / LAST} was started with other settings ({'; '.join(differing)}); choose another --out "
            "or give the saved settings"
        )
    return RunState("interrupted", epoch=int(checkpoint["epoch"]) + 2)


def trim_training_log(results_csv: Path, last_epoch: int) -> None:
    """Drop the rows of Ultralytics' ``results.csv`` after ``last_epoch`` (1-based), which training will redo.

    Ultralytics appends an epoch's row before it saves that epoch's checkpoint; a run stopped in between would
    otherwise log that epoch twice after resuming (or a dead run's rows before a fresh start's).
    """
    if not results_csv.is_file():
        return
    with open(results_csv, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    kept = [rows[0]] + [row for row in rows[1:] if row and float(row[0]) <= last_epoch]
    if len(kept) != len(rows):
        with open(results_csv, "w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows(kept)


def training_seconds(results_csv: Path) -> float:
    """Training time from Ultralytics' per-epoch ``time`` column, summed over resumed segments.

    The column counts from the start of each training segment, so it falls back when a run resumes.
    """
    if not results_csv.is_file():
        return math.nan
    with open(results_csv, newline="") as handle:
        times = [float(row["time"]) for row in csv.DictReader(handle, skipinitialspace=True) if row.get("time")]
    total, previous = 0.0, 0.0
    for elapsed in times:
        if elapsed < previous:
            total += previous
        previous = elapsed
    return total + previous


def _track_checkpoints(model, ownership: RunOwnership, run_dir: Path) -> None:
    """Record the hash of every checkpoint Ultralytics saves for this run (after each save and at the end)."""

    def record(_trainer) -> None:
        ownership.record_checkpoints(run_dir)

    model.add_callback("on_model_save", record)
    model.add_callback("on_train_end", record)


def run_once(spec: RunSpec, state: RunState) -> RunRecord:
    """Train (or resume, or skip) one run, validate it once, and return its record.

    A finished run whose statistics file is missing or changed is validated again from its checkpoint; nothing is
    retrained.
    """
    from ultralytics import YOLO

    from scsa_yolo.benchmark.evaluation import validate_run
    from scsa_yolo.benchmark.measure import device_name
    from scsa_yolo.benchmark.plan import offline_font_check

    run_dir, settings = spec.run_dir, spec.settings
    if state.kind == "finished" and state.stats_ok:
        headline = task_spec(state.record.task).headline
        value = getattr(state.record.metrics, headline)
        LOGGER.info(f"  finished earlier: {metric_label(headline)} {value:.3f}, not trained again")
        return state.record
    with offline_font_check():
        ownership = RunOwnership.read(run_dir) or RunOwnership(run=spec.name)
        if state.kind == "finished":
            LOGGER.info("  finished earlier, validating again for its per-image statistics (no training)")
            weights = ownership.verified(run_dir)
            record = state.record
            record.metrics, record.val_images, record.image_stats, record.image_stats_sha256 = validate_run(
                weights, settings, run_dir, record.task
            )
            record.write(run_dir / RUN_RECORD)
            return record
        if state.kind == "interrupted":
            last = ownership.verified(run_dir)  # the bytes inspect_run checked with the restricted loader
            LOGGER.info(f"  resuming from {last} at epoch {state.epoch} (not bit-identical to an unbroken run)")
            trim_training_log(run_dir / "results.csv", state.epoch - 1)
            ownership.resumes.append(state.epoch)
            ownership.write(run_dir)
            model = YOLO(str(last))
            _track_checkpoints(model, ownership, run_dir)
            model.train(resume=True, data=settings.data, save_dir=str(run_dir), workers=settings.workers)
        elif state.kind == "new":
            ownership.write(run_dir)  # the folder is the benchmark's before Ultralytics writes into it
            trim_training_log(run_dir / "results.csv", 0)  # rows of a run that died before its first checkpoint
            model = YOLO(spec.model)
            _track_checkpoints(model, ownership, run_dir)
            model.train(
                **settings.ultralytics_args(spec.seed), project=str(run_dir.parent), name=run_dir.name, exist_ok=True
            )
        else:
            LOGGER.info("  training finished earlier, validating")
        ownership.record_checkpoints(run_dir)  # also after DDP training, whose callbacks ran in another process
        weights = ownership.verified(run_dir)
        metrics, val_images, stats, stats_sha256 = validate_run(weights, settings, run_dir, spec.task)
        record = RunRecord(
            model=spec.model,
            seed=spec.seed,
            settings=settings,
            task=spec.task,
            metrics=metrics,
            val_images=val_images,
            image_stats=stats,
            image_stats_sha256=stats_sha256,
            weights_sha256=ownership.files[LAST],
            resumed_at_epochs=list(ownership.resumes),
            train_s=round(training_seconds(run_dir / "results.csv"), 1),
            device=_device(settings.device, device_name),
        )
        record.write(run_dir / RUN_RECORD)
        return record


def _device(device: str, describe) -> str:
    from ultralytics.utils.torch_utils import select_device

    return describe(select_device(device, verbose=False))
