"""What the benchmark writes and reads back: typed run records, result rows, and the ownership of its folders.

The results folder is the benchmark's own, as ``prepare``'s ``--dest`` is: every run folder it makes holds an
ownership file (:data:`OWNER_FILE`) listing the checkpoints written there with their SHA-256. A run folder without
that file was not made by the benchmark and is neither loaded, nor trained into, nor deleted; a checkpoint whose hash
differs from the recorded one was changed by someone else and is refused. Paths in records are relative to the run
folder, so a moved or copied results folder reads the same.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import Any

from scsa_yolo.benchmark.settings import TrainSettings
from scsa_yolo.benchmark.tasks import TASKS
from scsa_yolo.data.images import file_digest
from scsa_yolo.errors import UsageError

RUN_RECORD = "benchmark_run.json"
OWNER_FILE = "benchmark_owner.json"
OWNER = "scsa-yolo benchmark"
RECORD_FORMAT = 3  # 1: absolute paths, no hashes; 2: detection metrics only. Older folders are refused
LAST = "weights/last.pt"


class ResultsFolderError(UsageError):
    """A file or folder under ``--out`` that the benchmark did not write, or that was changed since it wrote it."""


class SettingsMismatchError(UsageError):
    """An output folder already holds a run made with other settings (the message names them)."""


def read_json(path: Path, what: str) -> dict:
    """Read a JSON object the benchmark wrote, or raise :class:`ResultsFolderError` naming the file and the fix."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsFolderError(
            f"{path}: the {what} is unreadable ({error}); it was damaged or edited: move that run folder away "
            "(it will be trained again) or choose another --out"
        ) from None
    if not isinstance(value, dict):
        raise ResultsFolderError(f"{path}: the {what} is not a JSON object; move that run folder away")
    return value


def write_json(path: Path, value: dict) -> None:
    """Write ``value`` atomically (a crash leaves the old file or the new one, never half of one)."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, indent=2), encoding="utf-8")
    temporary.replace(path)


@dataclass
class RunOwnership:
    """The ownership file of one run folder: which run it is, and the checkpoints written there with their hashes.

    Attributes:
        run: The run's name (its folder path under ``runs/``).
        files: Path relative to the run folder -> SHA-256, for every checkpoint Ultralytics wrote for this run.
        resumes: Epochs (1-based) at which training was resumed from an interrupted ``last.pt``.
    """

    run: str
    files: dict[str, str] = field(default_factory=dict)
    resumes: list[int] = field(default_factory=list)

    @classmethod
    def read(cls, run_dir: Path) -> RunOwnership | None:
        """The folder's ownership file, None when the folder does not exist; refuses a folder that is not ours."""
        if not run_dir.exists():
            return None
        path = run_dir / OWNER_FILE
        if not run_dir.is_dir() or not path.is_file():
            raise ResultsFolderError(
                f"{run_dir} was not made by this benchmark (no {OWNER_FILE}): nothing in it is loaded or deleted; "
                "move it away or choose another --out"
            )
        value = read_json(path, "ownership file")
        if value.get("owner") != OWNER or not isinstance(value.get("files"), dict):
            raise ResultsFolderError(f"{path} is not a benchmark ownership file; move that run folder away")
        files = {str(k): str(v) for k, v in value["files"].items()}
        return cls(run=str(value.get("run", "")), files=files, resumes=[int(e) for e in value.get("resumes", [])])

    def write(self, run_dir: Path) -> None:
        """Write the ownership file into ``run_dir`` (made if missing)."""
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(
            run_dir / OWNER_FILE, {"owner": OWNER, "run": self.run, "files": self.files, "resumes": self.resumes}
        )

    def record_checkpoints(self, run_dir: Path) -> None:
        """Hash every checkpoint now in ``run_dir/weights`` and write the ownership file."""
        for path in sorted((run_dir / "weights").glob("*.pt")):
            self.files[path.relative_to(run_dir).as_posix()] = file_digest(path)
        self.write(run_dir)

    def verified(self, run_dir: Path, relative: str = LAST) -> Path:
        """The path of a checkpoint this benchmark wrote, after checking its bytes are the ones it recorded.

        Raises:
            ResultsFolderError: If the file is missing, was never recorded, or changed since.
        """
        path = run_dir / relative
        expected = self.files.get(relative)
        if expected is None:
            raise ResultsFolderError(
                f"{path} was not written by this benchmark (not in {OWNER_FILE}); it is not loaded: move it away"
            )
        if not path.is_file():
            raise ResultsFolderError(
                f"{path} is missing although this benchmark wrote it; move the run folder {run_dir} away to train "
                "the run again"
            )
        if file_digest(path) != expected:
            raise ResultsFolderError(
                f"{path} changed since this benchmark wrote it (SHA-256 differs); it is not loaded: move the run "
                f"folder {run_dir} away to train the run again"
            )
        return path


@dataclass
class RunRecord:
    """The result of one finished run, as ``benchmark_run.json`` holds it.

    Attributes:
        model: Model name as given.
        seed: Training seed.
        settings: The run's settings.
        task: Ultralytics' task of the model.
        metrics: The task's metrics record (:mod:`scsa_yolo.benchmark.tasks`), on the val split, final weights.
        val_images: Validation images.
        image_stats: Per-image statistics file, relative to the run folder.
        image_stats_sha256: Its hash (an edited or damaged file is recomputed, never used).
        weights_sha256: Hash of the validated ``weights/last.pt``.
        resumed_at_epochs: Epochs at which an interrupted run was resumed.
        train_s: Training seconds, summed over resumed segments.
        device: Where training ran.
    """

    model: str
    seed: int
    settings: TrainSettings
    task: str
    metrics: Any  # the task's metrics dataclass
    val_images: int
    image_stats: str
    image_stats_sha256: str
    weights_sha256: str
    resumed_at_epochs: list[int] = field(default_factory=list)
    train_s: float = math.nan
    device: str = ""

    def to_json(self) -> dict:
        """The record as JSON (NaN written as null)."""
        value = asdict(self)
        value["format"] = RECORD_FORMAT
        value["metrics"] = {k: None if math.isnan(v) else v for k, v in value["metrics"].items()}
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in value.items()}

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        """Read ``benchmark_run.json``; an unreadable, old-format or edited file is refused with its name."""
        return cls.from_json(read_json(path, "run record"), path)

    @classmethod
    def from_json(cls, value: dict, path: Path | str = "run record") -> RunRecord:
        """Inverse of :meth:`to_json`; ``path`` names the source in refusals."""
        value = dict(value)
        found = value.pop("format", 1)
        if found != RECORD_FORMAT:
            why = {1: "absolute paths, no checkpoint hashes", 2: "detection metrics only, no task"}.get(found, "")
            raise ResultsFolderError(
                f"{path} was written by another scsa-yolo (run record format {found}{': ' + why if why else ''}; "
                f"this one reads format {RECORD_FORMAT}); move that run folder away to train the run again, or use "
                "a new --out"
            )
        names = {f.name for f in fields(cls)}
        try:
            value["settings"] = TrainSettings(**value["settings"])
            metrics = {k: math.nan if v is None else float(v) for k, v in value["metrics"].items()}
            value["metrics"] = TASKS[value["task"]].metrics_type(**metrics)
            value = {k: math.nan if v is None else v for k, v in value.items()}
            if set(value) != names:
                raise KeyError(sorted(set(value) ^ names))
            return cls(**value)
        except (KeyError, TypeError) as error:
            raise ResultsFolderError(
                f"{path}: the run record lacks or has unknown fields ({error}); move that run folder away"
            ) from None

    def write(self, path: Path) -> None:
        """Write the record atomically."""
        write_json(path, self.to_json())


def mismatched_settings(wanted: dict, found: dict) -> list[str]:
    """``"--flag saved X, requested Y"`` for every setting that differs (empty when they match)."""
    from scsa_yolo.benchmark.settings import FLAGS

    return [
        f"{FLAGS.get(key, key)} saved {found.get(key)!r}, requested {value!r}"
        for key, value in wanted.items()
        if found.get(key) != value
    ]


# results.csv columns before and after the task's metrics (the metrics' fields come from the task's record).
_ROW_HEAD: tuple[tuple[str, type], ...] = (
    ("dataset", str),
    ("model", str),
    ("seed", int),
    ("params", int),
    ("gflops", float),
    ("latency_ms", float),
    ("latency_ratio", float),
    ("latency_ratio_low", float),
    ("latency_ratio_high", float),
)
_ROW_TAIL: tuple[tuple[str, type], ...] = (
    ("val_images", int),
    ("train_s", float),
    ("resumed_at_epochs", str),
    ("epochs", int),
    ("imgsz", int),
    ("device", str),
    ("latency_device", str),
    ("latency_gpu_ms", float | str),
    ("latency_gpu_device", str),
    ("model_file", str),
)
_ROW_DOC = """One line of ``results.csv``: a run's record with its architecture's costs; the columns are these fields.

``latency_*`` are per architecture and dataset (measured once, same process, interleaved), so all seeds of a model
share them; ``device`` is where training ran; the metric columns are the task's metrics record
(:mod:`scsa_yolo.benchmark.tasks`); ``resumed_at_epochs`` lists the epochs at which a run was resumed.
"""


def _row_type(name: str, metrics_type: type) -> type:
    """The results-row dataclass of one task: head columns, the task's metric fields, tail columns."""
    middle = tuple((f.name, float) for f in fields(metrics_type))
    row = make_dataclass(name, _ROW_HEAD + middle + _ROW_TAIL, namespace={"__doc__": _ROW_DOC})
    row.__module__ = __name__
    return row


ROW_TYPES: dict[str, type] = {
    task: _row_type("ResultRow" if task == "detect" else f"{task.capitalize()}ResultRow", spec.metrics_type)
    for task, spec in TASKS.items()
}
ResultRow = ROW_TYPES["detect"]
"""The detection task's row (every task's row has the same head and tail columns)."""
RESULT_COLUMNS = tuple(f.name for f in fields(ResultRow))


def result_columns(task: str) -> tuple[str, ...]:
    """The ``results.csv`` columns of a task."""
    return tuple(f.name for f in fields(ROW_TYPES[task]))
