"""What ``scsa-yolo deploy`` can export and run on this machine: one :class:`Target` per format and precision.

A target is a format of Ultralytics' exporter (``YOLO(...).export(format=...)``) at one precision, run afterwards
through Ultralytics' own backend (``AutoBackend``, what ``yolo val`` / ``yolo predict`` use). :data:`TARGETS` lists
the ones that run on a Linux CPU, each with the Python modules its export and its runtime import and the pip command
that installs them (the ``deploy`` extra installs the light ones). Every other format of Ultralytics'
``export_formats()`` table is reported as not runnable here, with the reason, by :func:`unrunnable_reason`, so the
list follows Ultralytics when it adds formats.

Users name targets as ``FORMAT`` (fp32) or ``FORMAT:PRECISION`` (``onnx:int8``, ``openvino:fp16``); ``all`` is every
runnable target (the default): those whose packages are missing are each reported in one line with the pip command.
"""

from __future__ import annotations

import importlib.util
import platform
from dataclasses import dataclass

from scsa_yolo.errors import UsageError

PRECISIONS = ("fp32", "fp16", "int8")
QUANTIZE = {"fp32": None, "fp16": 16, "int8": 8}  # Ultralytics' export(quantize=...) per precision


@dataclass(frozen=True)
class Runtime:
    """Python packages one format needs to export and to run.

    Attributes:
        modules: Importable module names, all required.
        pip: What to pip install when one is missing (pins where the format needs them).
    """

    modules: tuple[str, ...]
    pip: str


@dataclass(frozen=True)
class Target:
    """One format at one precision.

    Attributes:
        format: Ultralytics' export format argument (``onnx``, ``openvino``, ...).
        precision: ``fp32``, ``fp16`` or ``int8``.
        runtime: The packages it needs.
    """

    format: str
    precision: str
    runtime: Runtime

    @property
    def name(self) -> str:
        """``format`` for fp32, else ``format:precision`` (how users name it)."""
        return self.format if self.precision == "fp32" else f"{self.format}:{self.precision}"

    @property
    def quantize(self) -> int | None:
        """Ultralytics' ``quantize`` export argument."""
        return QUANTIZE[self.precision]

    @property
    def needs_calibration(self) -> bool:
        """INT8 targets calibrate on images of the dataset."""
        return self.precision == "int8"

    def missing_modules(self) -> list[str]:
        """The runtime's modules that cannot be imported here (looked up, not imported)."""
        return [module for module in self.runtime.modules if not _importable(module)]


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


_ONNXRUNTIME = Runtime(("onnx", "onnxruntime"), "pip install onnx onnxruntime")
_OPENVINO = Runtime(("openvino",), "pip install 'openvino>=2024.0.0'")
_OPENVINO_INT8 = Runtime(("openvino", "nncf"), "pip install 'openvino>=2024.0.0' 'nncf>=2.14.0'")
_TENSORFLOW = Runtime(
    ("tensorflow", "tf_keras", "onnx2tf", "sng4onnx", "onnx_graphsurgeon", "ai_edge_litert"),
    "pip install 'tensorflow>=2.0.0,<=2.19.0' 'tf_keras<=2.19.0' 'onnx2tf>=1.26.3,<1.29.0' sng4onnx "
    "'onnx_graphsurgeon>=0.3.26' 'ai-edge-litert>=1.2.0'",
)
_LITERT = Runtime(("litert_torch", "ai_edge_litert"), "pip install 'litert-torch>=0.10.0' 'ai-edge-litert>=2.3.0'")
_LITERT_INT8 = Runtime(
    ("litert_torch", "ai_edge_litert", "ai_edge_quantizer"),
    "pip install 'litert-torch>=0.10.0' 'ai-edge-litert>=2.3.0' 'ai-edge-quantizer>=0.10.0'",
)

TARGETS: tuple[Target, ...] = (
    Target("torchscript", "fp32", Runtime((), "")),
    Target("onnx", "fp32", _ONNXRUNTIME),
    Target("onnx", "fp16", _ONNXRUNTIME),
    Target("onnx", "int8", _ONNXRUNTIME),
    Target("openvino", "fp32", _OPENVINO),
    Target("openvino", "fp16", _OPENVINO),
    Target("openvino", "int8", _OPENVINO_INT8),
    Target("ncnn", "fp32", Runtime(("ncnn", "pnnx"), "pip install ncnn pnnx==20260526")),
    Target("mnn", "fp32", Runtime(("MNN",), "pip install 'MNN>=2.9.6'")),
    Target("litert", "fp32", _LITERT),
    Target("litert", "int8", _LITERT_INT8),
    Target("saved_model", "fp32", _TENSORFLOW),
    Target("pb", "fp32", _TENSORFLOW),
    Target("executorch", "fp32", Runtime(("executorch",), "pip install executorch")),
    Target(
        "paddle",
        "fp32",
        Runtime(("paddle", "x2paddle", "six"), "pip install 'paddlepaddle>=3.0.0,<3.3.0' x2paddle six"),
    ),
)
"""Every target that exports and runs on a Linux CPU, in report order."""

_BY_NAME = {target.name: target for target in TARGETS}

# Formats of Ultralytics' table that never run here, and why (anything else not in TARGETS gets a generic reason).
_UNRUNNABLE = {
    "coreml": "Core ML models run only on macOS/iOS",
    "coreai": "Core AI models run only on Apple devices",
    "engine": "TensorRT needs an NVIDIA GPU",
    "edgetpu": "Edge TPU needs Google's edgetpu_compiler (an apt repository not reachable offline) and the device",
    "imx": "IMX500 needs Sony's converter and the camera to run",
    "rknn": "RKNN runs only on Rockchip NPUs",
    "axelera": "Axelera models run only on Axelera AI accelerators",
    "deepx": "DEEPX models run only on DEEPX NPUs",
    "qnn": "QNN models run only on Qualcomm NPUs",
    "hailo": "Hailo models run only on Hailo accelerators",
    "ascend": "Ascend models run only on Huawei Ascend NPUs",
    "xilinx": "AMD Xilinx models need the amd-quark toolchain in its own environment and the NPU",
}


def unrunnable_reason(fmt: str) -> str:
    """Why Ultralytics' export format ``fmt`` is not a target on this machine (one line)."""
    reason = _UNRUNNABLE.get(fmt, f"'{fmt}' has no CPU runtime that scsa-yolo deploy knows how to run")
    return f"{fmt}: cannot run here ({reason}; this is {platform.system()} on {platform.machine()}), skipped"


def ultralytics_formats() -> list[str]:
    """Export format arguments of Ultralytics' ``export_formats()`` table (PyTorch itself excluded)."""
    from ultralytics.engine.exporter import export_formats

    return [fmt for fmt in export_formats()["Argument"] if fmt != "-"]


@dataclass(frozen=True)
class Selection:
    """The targets to run, and one line per requested format or target that will not run.

    Attributes:
        targets: Targets to export and measure, in :data:`TARGETS` order.
        skipped: One line each (cannot run here; missing package with the pip command).
    """

    targets: tuple[Target, ...]
    skipped: tuple[str, ...]


def select_targets(specs: list[str]) -> Selection:
    """Resolve the user's ``--formats`` into targets; bad names raise, the rest is split runnable/skipped.

    Args:
        specs: ``FORMAT``, ``FORMAT:PRECISION``, ``FORMAT:all`` or ``all``.

    Returns:
        (Selection): What runs and what is skipped, with why.

    Raises:
        UsageError: A name that is neither a target nor one of Ultralytics' formats, or a precision the format does
            not have here.
    """
    known = set(ultralytics_formats())
    chosen: list[Target] = []
    skipped: list[str] = []
    for spec in specs:
        fmt, _, precision = spec.strip().lower().partition(":")
        if fmt == "all" and not precision:
            chosen.extend(TARGETS)
            continue
        if fmt not in {target.format for target in TARGETS}:
            if fmt in known:
                skipped.append(unrunnable_reason(fmt))
                continue
            names = ", ".join(dict.fromkeys(target.format for target in TARGETS))
            raise UsageError(f"--formats: unknown format '{fmt}' (runnable here: {names}; or 'all')")
        precisions = [t.precision for t in TARGETS if t.format == fmt]
        wanted = precisions if precision == "all" else [precision or "fp32"]
        for value in wanted:
            if value not in precisions:
                raise UsageError(
                    f"--formats: '{spec}' is not available: {fmt} runs here at {', '.join(precisions)} "
                    f"(write {fmt}:{precisions[-1]}, or {fmt}:all)"
                )
            chosen.append(_BY_NAME[fmt if value == "fp32" else f"{fmt}:{value}"])
    targets = []
    for target in TARGETS:  # report order, duplicates dropped
        if target not in chosen:
            continue
        missing = target.missing_modules()
        if missing:
            skipped.append(
                f"{target.name}: needs {', '.join(missing)} (not installed; nothing is installed at run time): "
                f"{target.runtime.pip}"
            )
            continue
        targets.append(target)
    return Selection(tuple(targets), tuple(dict.fromkeys(skipped)))
