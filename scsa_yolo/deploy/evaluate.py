"""Measure every model on every target: the rows of the deployment table (see :mod:`scsa_yolo.deploy.runner`)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scsa_yolo.deploy import bootstrap, measure
from scsa_yolo.deploy.offline import no_autoinstall, openvino_f32
from scsa_yolo.deploy.report import DeployRow
from scsa_yolo.deploy.targets import Target

PYTORCH = "pytorch"


@dataclass
class Measured:
    """One model on one target: its row, and what later steps need (backend, validation)."""

    row: DeployRow
    backend: object = None
    validation: bootstrap.Validation | None = None


def machine_description() -> str:
    """CPU model and logical CPU count (Ultralytics' ``get_cpu_info``)."""
    from ultralytics.utils.torch_utils import get_cpu_info

    return f"{get_cpu_info()}, {os.cpu_count()} logical CPUs"


def evaluate_all(config, plan, weights: list[Path], log: Callable[[str], None]) -> list[DeployRow]:
    """The PyTorch baseline, then every target; returns the rows in report order."""
    from ultralytics.utils.tqdm import TQDM

    images = measure.letterboxed(plan.val_images[: config.parity_images], config.imgsz)
    names = plan.names
    val_root = config.out / "val"
    with no_autoinstall(), openvino_f32():
        baseline = {}
        reference_outputs = {}
        for name, path in zip(names, weights):
            row = DeployRow(PYTORCH, PYTORCH, "fp32", name, size_mb=measure.size_mb(path), parity=0.0)
            baseline[name] = Measured(row)
            _load_and_check(baseline[name], path, images, None, config, val_root / PYTORCH / name)
            if baseline[name].backend is not None:
                reference_outputs[name] = measure.raw_outputs(baseline[name].backend, images)
        _time_target(list(baseline.values()), images, config.rounds, names[0])
        rows = [item.row for item in baseline.values()]
        _release(baseline.values(), keep_validation=True)
        bar = TQDM(plan.selection.targets, desc="deploy", total=len(plan.selection.targets))
        for target in bar:
            bar.set_description(f"deploy {target.name}")
            measured = [
                _one(target, name, path, images, reference_outputs.get(name), config, plan)
                for name, path in zip(names, weights)
            ]
            _time_target(measured, images, config.rounds, names[0])
            for item in measured:
                base = baseline[item.row.model].row
                if item.row.ok and not math.isnan(base.map50_95):
                    item.row.map50_95_vs_pytorch = item.row.map50_95 - base.map50_95
            if target.precision == "int8":
                _int8_drops(measured, baseline, config)
            for item in measured:
                if not item.row.ok:
                    log(f"{target.name} / {item.row.model}: {item.row.status}: {item.row.error}")
                rows.append(item.row)
            _release(measured)
    return rows


def _one(target: Target, name: str, weights: Path, images, reference, config, plan) -> Measured:
    """Export, load, compare and validate one model on one target."""
    folder = config.out / "exports" / measure.folder_name(target) / name
    exported = measure.export(weights, target, folder, config.imgsz, config.data, config.calib_split, plan.val_images)
    row = DeployRow(target.name, target.format, target.precision, name, export_s=exported.seconds)
    item = Measured(row)
    if exported.path is None:
        row.status, row.error = "export failed", exported.error
        return item
    row.size_mb = exported.size_mb
    _load_and_check(
        item, exported.path, images, reference, config, config.out / "val" / measure.folder_name(target) / name
    )
    return item


def _load_and_check(item: Measured, path: Path, images, reference, config, val_dir: Path) -> None:
    """Open ``path`` with AutoBackend, compare raw outputs with ``reference``, validate; failures go in the row."""
    row = item.row
    try:
        item.backend = measure.load_backend(path)
    except Exception as error:
        row.status, row.error = "load failed", measure.one_line(error)
        return
    if reference is not None:
        try:
            row.parity = measure.max_abs_diff(measure.raw_outputs(item.backend, images), reference)
        except Exception as error:
            row.status, row.error = "run failed", measure.one_line(error)
            item.backend = None
            return
    try:
        item.validation = bootstrap.validate(str(path), config.data, config.imgsz, val_dir)
    except Exception as error:
        row.status, row.error = "val failed", measure.one_line(error)
        return
    row.map50_95, row.ap_small = item.validation.map50_95, item.validation.ap_small


def _time_target(measured: list[Measured], images, rounds: int, reference: str) -> None:
    """Time the models that loaded, interleaved, on the first parity image; fill latency and ratio columns."""
    import torch

    runnable = {item.row.model: item for item in measured if item.backend is not None and item.row.ok}
    if not runnable:
        return
    image = images[:1]

    def call(backend):
        def forward():
            with torch.inference_mode():
                backend(image)

        return forward

    try:
        times = bootstrap.interleaved_rounds({name: call(item.backend) for name, item in runnable.items()}, rounds)
    except Exception as error:
        for item in runnable.values():
            item.row.status, item.row.error = "run failed", measure.one_line(error)
        return
    for name, item in runnable.items():
        item.row.latency_ms = float(np.median(times[name]))
        if reference in times:
            interval = bootstrap.latency_ratio(times[name], times[reference])
            item.row.ratio, item.row.ratio_low, item.row.ratio_high = interval.value, interval.low, interval.high


def _int8_drops(measured: list[Measured], baseline: dict[str, Measured], config) -> None:
    """INT8 drop of each model vs its PyTorch validation, and its difference to the reference's drop."""
    valid = {
        item.row.model: item
        for item in measured
        if item.validation is not None and baseline[item.row.model].validation is not None
    }
    reference = next(iter(baseline))
    for name, item in valid.items():
        pair = (baseline[name].validation, item.validation)
        ref_pair = (baseline[reference].validation, valid[reference].validation) if reference in valid else pair
        drops = bootstrap.int8_drops(ref_pair, pair, resamples=config.resamples, seed=config.seed)
        row = item.row
        row.int8_drop, row.int8_drop_low, row.int8_drop_high = drops.scsa.value, drops.scsa.low, drops.scsa.high
        if reference in valid and name != reference:
            diff = drops.difference
            row.drop_vs_reference, row.drop_vs_reference_low, row.drop_vs_reference_high = (
                diff.value,
                diff.low,
                diff.high,
            )


def _release(measured, keep_validation: bool = False) -> None:
    """Drop the backends (and the per-image records unless kept) once a target is done."""
    for item in measured:
        item.backend = None
        if not keep_validation:
            item.validation = None
