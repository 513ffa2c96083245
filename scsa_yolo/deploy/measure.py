"""Export one model to one target, and measure what came out through Ultralytics' own backend.

- :func:`export` calls ``YOLO(weights).export(format=..., quantize=...)`` in a folder of its own (the exporters write
  next to the weights and into the working directory), offline and install-free (:mod:`scsa_yolo.deploy.offline`).
- :func:`load_backend` opens the result with ``AutoBackend``, the class ``yolo val`` and ``yolo predict`` run.
- :func:`raw_outputs` / :func:`max_abs_diff`: the head's raw output (before NMS) on the same letterboxed images, for
  the parity column.

Latency is timed by :func:`scsa_yolo.deploy.bootstrap.interleaved_rounds` (the benchmark's interleaved timing).
"""

from __future__ import annotations

import os
import shutil
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scsa_yolo.deploy.offline import no_autoinstall, openvino_f32, tf_calibration_sample, working_directory
from scsa_yolo.deploy.targets import Target

TF_FORMATS = {"saved_model", "pb"}


@dataclass(frozen=True)
class Exported:
    """Outcome of one export.

    Attributes:
        path: The exported file or folder (None when the export failed).
        size_mb: Its size on disk in MB (files of a folder summed).
        seconds: Wall time of the export.
        error: One line when it failed.
    """

    path: Path | None
    size_mb: float
    seconds: float
    error: str = ""


def folder_name(target: Target) -> str:
    """A file-system name of a target (``onnx-int8``)."""
    return target.name.replace(":", "-")


def size_mb(path: Path) -> float:
    """Size of a file, or of every file under a folder, in MB."""
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file()) / 1e6


def one_line(error: BaseException) -> str:
    """An exception as one line: type, message's last line, and where it was raised."""
    message = str(error).strip().splitlines()
    where = traceback.extract_tb(error.__traceback__)[-1] if error.__traceback__ else None
    place = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(error).__name__}: {message[-1] if message else ''}{place}"[:400]


def export(
    weights: Path, target: Target, folder: Path, imgsz: int, data: str, calib_split: str, images: Sequence[Path]
) -> Exported:
    """Export ``weights`` to ``target`` inside ``folder`` (created; the weights are linked into it).

    Args:
        weights: The model's .pt.
        target: Format and precision.
        folder: Folder of this (model, target): the weights are linked there and the export written next to them.
        imgsz: Square input size (batch 1, static shapes).
        data: Dataset YAML (INT8 calibration).
        calib_split: Split the INT8 calibration images come from.
        images: Image files for onnx2tf's calibration sample (TF formats).

    Returns:
        (Exported): The path, size and time, or the one-line error.
    """
    from ultralytics import YOLO

    folder.mkdir(parents=True, exist_ok=True)
    local = folder / weights.name
    if not local.exists():
        try:
            os.link(weights, local)
        except OSError:
            shutil.copy2(weights, local)
    kwargs = {"format": target.format, "imgsz": imgsz, "batch": 1, "device": "cpu", "quantize": target.quantize}
    if target.needs_calibration:
        kwargs.update(data=data, split=calib_split)
    start = time.perf_counter()
    try:
        with no_autoinstall(), working_directory(folder):
            if target.format in TF_FORMATS:
                tf_calibration_sample(images, folder)
            path = YOLO(str(local)).export(**kwargs)
    except Exception as error:  # a failing exporter is a row of the table, not the end of the run
        return Exported(None, 0.0, time.perf_counter() - start, one_line(error))
    seconds = time.perf_counter() - start
    if not path or not Path(path).exists():
        return Exported(None, 0.0, seconds, f"the exporter returned no file ({path!r})")
    return Exported(Path(path), size_mb(Path(path)), seconds)


def load_backend(path: Path | str):
    """``AutoBackend`` on the CPU for a .pt or an exported model, fused, in eval mode (OpenVINO compiled in f32)."""
    from ultralytics.nn.autobackend import AutoBackend

    with no_autoinstall(), openvino_f32():  # bf16 by default on AVX512-BF16/AMX CPUs: parity 20 px instead of 3e-3
        backend = AutoBackend(model=str(path), device=torch.device("cpu"), fuse=True, verbose=False)
    backend.eval()
    return backend


def letterboxed(images: Sequence[Path], imgsz: int) -> torch.Tensor:
    """(N, 3, imgsz, imgsz) float tensor in 0..1, RGB, letterboxed as Ultralytics' validator does (square)."""
    import cv2
    from ultralytics.data.augment import LetterBox

    letterbox = LetterBox(new_shape=(imgsz, imgsz), auto=False)
    arrays = [letterbox(image=cv2.imread(str(path)))[..., ::-1].transpose(2, 0, 1) for path in images]
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays))).float() / 255.0


def first_output(output) -> np.ndarray:
    """The head's main output (boxes and scores), whatever container the backend returns it in."""
    while isinstance(output, (list, tuple)):
        output = output[0]
    if isinstance(output, dict):
        output = next(iter(output.values()))
    return output.detach().float().cpu().numpy() if isinstance(output, torch.Tensor) else np.asarray(output, np.float32)


@torch.inference_mode()
def raw_outputs(backend, batch: torch.Tensor) -> list[np.ndarray]:
    """The backend's raw output per image, one image at a time (batch 1, as exported)."""
    return [first_output(backend(image[None])) for image in batch]


def max_abs_diff(outputs: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """Largest absolute difference over images (NaN when the shapes differ: the graphs do not compute the same)."""
    diffs = []
    for ours, theirs in zip(outputs, reference):
        if ours.shape != theirs.shape:
            return float("nan")
        diffs.append(float(np.abs(ours - theirs).max()) if ours.size else 0.0)
    return max(diffs) if diffs else float("nan")
