"""``scsa-yolo deploy``: export models to every requested target, validate and time each, write the table.

Order of work: every argument is checked first (:func:`check_config`: models, dataset, image size, output folder,
targets; a target that cannot run here or lacks a package becomes one line and the others go on). Then the PyTorch
baseline of each model (raw outputs on the parity images, validation, latency), then target by target: each model is
exported, opened with Ultralytics' ``AutoBackend``, compared with its PyTorch outputs, validated with Ultralytics'
validator on the same data, and all models of the target are timed in interleaved rounds. INT8 targets get the paired
bootstrap of their mAP drop. Files written, all inside ``--out``: ``models/`` (weights built from YAMLs),
``exports/TARGET/MODEL/``, ``val/``, ``deploy.csv``, ``deploy.md``, ``deploy.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scsa_yolo.deploy.targets import Selection, select_targets
from scsa_yolo.errors import UsageError

REPORT_CSV, REPORT_MD, REPORT_PNG = "deploy.csv", "deploy.md", "deploy.png"
IMAGE_SUFFIXES = {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"}


@dataclass
class DeployConfig:
    """The command's options (see ``scsa_yolo/cli/deploy.py`` for their help).

    Attributes:
        models: .pt or .yaml files; the first is the reference (the plain model).
        data: Dataset YAML (val split validated; calibration split for INT8).
        formats: Target names (``onnx``, ``onnx:int8``, ``all``...).
        out: Output folder (created; must be new or empty unless ``exist_ok``).
        imgsz: Square input size of every export.
        rounds: Interleaved latency rounds per target.
        parity_images: Val images the raw outputs are compared on.
        calib_split: Dataset split INT8 calibration reads.
        resamples: Bootstrap replicates.
        seed: Seed of models built from YAMLs and of the bootstrap.
        exist_ok: Allow a non-empty ``out`` (files of the same names are replaced).
    """

    models: list[Path]
    data: str
    formats: list[str] = field(default_factory=lambda: ["all"])
    out: Path = Path("runs/deploy")
    imgsz: int = 320
    rounds: int = 30
    parity_images: int = 4
    calib_split: str = "train"
    resamples: int = 1000
    seed: int = 0
    exist_ok: bool = False


@dataclass(frozen=True)
class Plan:
    """What the checked configuration will do."""

    names: list[str]
    selection: Selection
    val_images: list[Path]
    data: dict


def model_names(models: list[Path]) -> list[str]:
    """Names of the models in the table: file stems, made unique by their order when stems repeat."""
    stems = [path.stem for path in models]
    return [stem if stems.count(stem) == 1 else f"{stem}-{index}" for index, stem in enumerate(stems)]


def image_files(source) -> list[Path]:
    """Image files of one split entry of a data YAML (folder, .txt list, or a list of them)."""
    if isinstance(source, (list, tuple)):
        return [image for item in source for image in image_files(item)]
    path = Path(source)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if path.suffix == ".txt" and path.is_file():
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        return [Path(line) if Path(line).is_absolute() else path.parent / line for line in lines]
    return [path] if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES else []


def check_config(config: DeployConfig) -> Plan:
    """Check every argument before any export, and resolve the targets.

    Raises:
        UsageError: A bad argument, naming it and the fix.
    """
    if len(config.models) < 1:
        raise UsageError("--models: give at least one .pt or .yaml (the first is the reference, the plain model)")
    for path in config.models:
        if path.suffix not in {".pt", ".yaml", ".yml"}:
            raise UsageError(f"--models: {path} is neither a .pt checkpoint nor a model .yaml")
        if path.suffix == ".pt" and not path.is_file():
            raise UsageError(f"--models: {path} does not exist")
    if config.imgsz < 32 or config.imgsz % 32:
        raise UsageError(f"--imgsz {config.imgsz}: use a multiple of 32 (the models' largest stride), e.g. 320")
    for name, value, low in (("--rounds", config.rounds, 3), ("--parity-images", config.parity_images, 1)):
        if value < low:
            raise UsageError(f"{name} {value}: use at least {low}")
    if config.resamples < 100:
        raise UsageError(f"--resamples {config.resamples}: use at least 100 (1000 for a 95 % interval worth reading)")
    if config.out.exists() and (not config.out.is_dir() or (any(config.out.iterdir()) and not config.exist_ok)):
        raise UsageError(f"--out {config.out}: exists and is not an empty folder (pick a new one, or pass --exist-ok)")
    data = _check_data(config.data)
    val_images = image_files(data["val"])
    if not val_images:
        raise UsageError(f"--data {config.data}: the val split ({data['val']}) holds no images")
    selection = select_targets(config.formats)
    skipped = list(selection.skipped)
    targets = list(selection.targets)
    if any(target.needs_calibration for target in targets):
        calibration = data.get(config.calib_split)
        if not calibration or not image_files(calibration):
            skipped += [
                f"{target.name}: quantization needs calibration images, and the '{config.calib_split}' split of "
                f"{config.data} has none (pass --calib-split val, or add images), skipped"
                for target in targets
                if target.needs_calibration
            ]
            targets = [target for target in targets if not target.needs_calibration]
    return Plan(model_names(config.models), Selection(tuple(targets), tuple(skipped)), val_images, data)


def _check_data(data: str) -> dict:
    """Ultralytics' own dataset check (offline: a missing split is an error, never a download)."""
    from ultralytics.data.utils import check_det_dataset

    if not str(data).endswith((".yaml", ".yml")) or not Path(data).is_file():
        raise UsageError(f"--data {data}: not a dataset .yaml file")
    try:
        return check_det_dataset(str(data), autodownload=False)
    except Exception as error:  # Ultralytics raises FileNotFoundError, SyntaxError... with a message naming the fix
        message = " ".join(str(error).split())
        raise UsageError(f"--data {data}: {message[:300]}") from None


def calibrate_batchnorm(model, images) -> None:
    """Set every BatchNorm's running statistics from ``images`` (N, 3, H, W).

    A model fresh from a YAML has unit
    statistics under which its activations shrink ~10x per stage, so its head outputs barely depend on the input and
    a parity check on them would test nothing. Weights are untouched; the model is left in eval mode.
    """
    import torch

    norms = [module for module in model.modules() if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for image in images.split(4):
            model(image)
    model.eval()


def prepare_weights(config: DeployConfig, names: list[str], folder: Path, images=None) -> list[Path]:
    """The models as .pt files: checkpoints as given; YAMLs built (seeded) and saved into ``folder``.

    The BatchNorm statistics of YAML-built models are set from ``images`` (see :func:`calibrate_batchnorm`).
    """
    import torch
    from ultralytics import YOLO

    weights = []
    for path, name in zip(config.models, names):
        if path.suffix == ".pt":  # absolute: Ultralytics would try to download a missing 'yolov8n.pt' by name
            weights.append(path.resolve())
            continue
        folder.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed)
        try:
            model = YOLO(str(path))
        except Exception as error:
            raise UsageError(f"--models: {path} does not build a model ({error})") from None
        if images is not None:
            calibrate_batchnorm(model.model, images)
        target = folder / f"{name}.pt"
        model.save(target)
        weights.append(target.resolve())
    return weights


def run(config: DeployConfig, log: Callable[[str], None] = print) -> list:
    """Run the whole command and return the table's rows (see the module docstring for the files written)."""
    from scsa_yolo.deploy import evaluate

    plan = check_config(config)
    config.out = config.out.resolve()  # exporters run with the export folder as working directory
    config.data = str(Path(config.data).resolve())
    for line in plan.selection.skipped:
        log(line)
    if not plan.selection.targets:
        log("no target left to run")
    config.out.mkdir(parents=True, exist_ok=True)
    from scsa_yolo.deploy.measure import letterboxed

    calibration = letterboxed(plan.val_images[:16], config.imgsz)
    weights = prepare_weights(config, plan.names, config.out / "models", calibration)
    rows = evaluate.evaluate_all(config, plan, weights, log)
    write_report(rows, config, plan)
    return rows


def write_report(rows: list, config: DeployConfig, plan: Plan) -> None:
    """deploy.csv, deploy.md (with the machine and the settings) and deploy.png in ``config.out``."""
    from scsa_yolo.deploy import report
    from scsa_yolo.deploy.evaluate import machine_description

    report.write_csv(rows, config.out / REPORT_CSV)
    header = (
        f"Deployment of {', '.join(plan.names)} (reference: {plan.names[0]}) at imgsz {config.imgsz}, batch 1, on "
        f"{machine_description()}; {len(plan.val_images)} val images of {config.data}; latency: median of "
        f"{config.rounds} interleaved rounds."
    )
    skipped = "".join(f"\n- {line}" for line in plan.selection.skipped)
    text = report.markdown(rows, header) + (f"\nNot run:\n{skipped}\n" if skipped else "")
    (config.out / REPORT_MD).write_text(text, encoding="utf-8")
    report.plot(rows, config.out / REPORT_PNG, plan.names[0])
