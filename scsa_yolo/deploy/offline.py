"""Keep Ultralytics' exporters and backends offline, install-free and at the precision the report claims.

- **No installs.** Ultralytics' ``check_requirements`` pip-installs a missing package on the fly unless
  ``YOLO_AUTOINSTALL`` is false (read into ``ultralytics.utils.checks.AUTOINSTALL`` at import). :func:`no_autoinstall`
  sets both for the run, so a missing package fails the one target that needs it (it was already named, with its
  pip command, by :mod:`scsa_yolo.deploy.targets`) and nothing is installed behind the user's back.
- **No downloads.** The TensorFlow exports (SavedModel, GraphDef) fetch onnx2tf's calibration sample
  ``calibration_image_sample_data_20x128x128x3_float32.npy`` from GitHub unless a file of that name is in the working
  directory. :func:`tf_calibration_sample` writes one made from the user's own validation images (20 letterboxed
  128x128 RGB images in 0..1, the shape onnx2tf expects) into the export folder, which is the working directory
  during the export (:func:`working_directory`).
- **The precision claimed.** OpenVINO's CPU plugin runs float32 models in bfloat16 by default on CPUs with AVX512-BF16
  or AMX (raw outputs then differ from PyTorch by ~5e-3). :func:`openvino_f32` pins ``INFERENCE_PRECISION_HINT=f32``
  for every model compiled on the CPU while it is active, so fp32 means fp32 (fp16 and INT8 IR models then run
  their stored precision on float32 activations, as they do on CPUs without bf16).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

TF_CALIBRATION_SAMPLE = "calibration_image_sample_data_20x128x128x3_float32.npy"
TF_CALIBRATION_SHAPE = (20, 128, 128, 3)


@contextmanager
def no_autoinstall() -> Iterator[None]:
    """Switch off Ultralytics' on-the-fly pip installs and connectivity checks for the duration."""
    from ultralytics.utils import checks

    saved_env = {name: os.environ.get(name) for name in ("YOLO_AUTOINSTALL", "YOLO_OFFLINE")}
    saved = checks.AUTOINSTALL
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ.setdefault("YOLO_OFFLINE", "1")
    checks.AUTOINSTALL = False
    try:
        yield
    finally:
        checks.AUTOINSTALL = saved
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Run with ``path`` as the working directory (exporters write side files there)."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def tf_calibration_sample(images: Sequence[Path], folder: Path) -> Path:
    """Write onnx2tf's calibration sample into ``folder``, made from ``images`` (cycled to 20), and return its path.

    Args:
        images: Image files of the user's dataset (at least one).
        folder: Where the export runs (its working directory).

    Returns:
        (Path): The ``.npy`` file, float32 (20, 128, 128, 3) RGB in 0..1.
    """
    import cv2
    from ultralytics.data.augment import LetterBox

    path = folder / TF_CALIBRATION_SAMPLE
    if path.exists():
        return path
    letterbox = LetterBox(new_shape=TF_CALIBRATION_SHAPE[1:3], auto=False)
    sample = np.empty(TF_CALIBRATION_SHAPE, np.float32)
    for index in range(TF_CALIBRATION_SHAPE[0]):
        image = cv2.imread(str(images[index % len(images)]))
        sample[index] = letterbox(image=image)[..., ::-1] / 255.0
    np.save(path, sample)
    return path


@contextmanager
def openvino_f32() -> Iterator[None]:
    """Compile every OpenVINO model on the CPU with ``INFERENCE_PRECISION_HINT=f32`` while active."""
    try:
        import openvino as ov
    except ImportError:
        yield
        return
    original = ov.Core.compile_model

    def compile_model(self, model, device_name=None, config=None, **kwargs):
        config = dict(config or {})
        if str(device_name).upper() == "CPU":
            config.setdefault("INFERENCE_PRECISION_HINT", "f32")
        return original(self, model, device_name, config, **kwargs)

    ov.Core.compile_model = compile_model
    try:
        yield
    finally:
        ov.Core.compile_model = original
