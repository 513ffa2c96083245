"""Speed of the SCSA block and of YOLOv8n with it: fast path against the reference formulation, and model overhead.

Three SCSA implementations are timed: ``reference`` (``SCSA.forward_reference``, the straightforward official
formulation), ``ops`` (``SCSA.forward`` with the op's kernels switched off: the PyTorch-op fast path) and ``fast``
(``SCSA.forward`` as it runs by default; on CPU the fused C++ kernel of the ``scsa_yolo::scsa`` op). One bench serves
both devices (``device`` is a parameter): on CUDA ``fast`` is the op's Triton kernel, switched on for the run
(``SCSA_YOLO_CUDA_KERNEL=1``), each candidate is timed between ``torch.cuda.synchronize`` calls, and the model's
training step runs under AMP as Ultralytics trains on GPUs. Results are typed rows (:class:`ModuleRow`,
:class:`ModelRow` in a :class:`ModelResult`) and one formatter writes the report.

Every comparison times its candidates interleaved (A, B, A, B, ...) in one process and reports medians, so load from
other processes on a shared machine hits all candidates alike and the ratios stay meaningful when absolute times
drift. CPU module timings run on one thread (``torch.set_num_threads(1)``); model timings use the thread count given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from scsa_yolo.benchmark.measure import time_interleaved
from scsa_yolo.nn.kernels import cpu as cpu_kernel
from scsa_yolo.nn.scsa import SCSA
from scsa_yolo.nn.scsa_fused import fused_kernel_disabled

__all__ = [
    "ModelResult",
    "ModelRow",
    "ModuleRow",
    "bench_model",
    "bench_module",
    "cuda_unavailable_reason",
    "device_description",
    "format_report",
    "scsa_path",
]

SCSA_PATHS = ("fast", "ops", "reference")
"""SCSA implementations the model benchmark compares (see ``scsa_path``)."""

MODULE_SHAPES: tuple[tuple[int, int], ...] = ((64, 80), (128, 40), (256, 20))
"""(channels, side) of the three SCSA blocks in the YOLOv8n neck at 640x640 (P3, P4, P5)."""


@dataclass(frozen=True)
class Timing:
    """Median time of one candidate, in milliseconds."""

    name: str
    median_ms: float


@dataclass(frozen=True)
class ModuleRow:
    """The SCSA block at one shape, batch and precision: each path's median ms and its output's distance.

    Attributes:
        channels: Input channels.
        side: Input height and width.
        batch: Batch size.
        precision: ``fp32`` or ``amp``.
        uses_kernel: Whether ``fast`` ran the op's kernel.
        max_abs_diff: Largest |fast - reference| over the output.
        ops_max_abs_diff: Largest |ops - reference|.
        forward: Path (``ref``, ``ops``, ``fast``) to median ms of a no-grad forward.
        forward_backward: Path to median ms of forward + backward.
    """

    channels: int
    side: int
    batch: int
    precision: str
    uses_kernel: bool
    max_abs_diff: float
    ops_max_abs_diff: float
    forward: dict[str, float]
    forward_backward: dict[str, float]

    def speedup(self, backward: bool = False) -> float:
        """Reference time over fast time, forward or forward + backward."""
        times = self.forward_backward if backward else self.forward
        return times["ref"] / times["fast"]


@dataclass(frozen=True)
class ModelRow:
    """One model's median ms: inference per batch size, and one training step."""

    name: str
    infer_ms: dict[int, float]
    train_ms: float


@dataclass(frozen=True)
class ModelResult:
    """The whole-model timings and the sizes they were made at."""

    rows: list[ModelRow]
    imgsz: int
    train_batch: int
    train_imgsz: int
    train_precision: str
    threads: int


def timings(
    candidates: dict[str, Callable[[], object]], repeats: int, warmup: int = 3, device: torch.device | None = None
) -> list[Timing]:
    """``time_interleaved`` medians as Timing rows, in the given order (synchronising ``device`` if CUDA)."""
    return [Timing(name, ms) for name, ms in time_interleaved(candidates, repeats, warmup, device).items()]


def _backward_runner(
    forward: Callable[[torch.Tensor], torch.Tensor], block: nn.Module, x: torch.Tensor, precision: str = "fp32"
) -> Callable[[], None]:
    """A function doing one forward (autocast for 'amp') and backward (fixed random output gradient), grads cleared."""
    grad_out = torch.randn_like(x)

    def run() -> None:
        x.grad = None
        for parameter in block.parameters():
            parameter.grad = None
        with _precision_context(precision):
            out = forward(x)
        out.backward(grad_out.to(out.dtype))

    return run


def _inference_runner(
    forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, precision: str
) -> Callable[[], object]:
    """A function doing one no-grad forward, under autocast for 'amp'."""

    def run() -> object:
        with torch.no_grad(), _precision_context(precision):
            return forward(x)

    return run


def _precision_context(precision: str) -> ExitStack:
    """Float16 CUDA autocast inside the returned context for 'amp', nothing for 'fp32'."""
    stack = ExitStack()
    if precision == "amp":
        stack.enter_context(torch.autocast("cuda", dtype=torch.float16))
    return stack


def _spread_block(channels: int, seed: int) -> SCSA:
    """An SCSA block whose parameters are spread away from their initial values, seeded.

    The official-style initialisation leaves the GroupNorms at identity, which would time a special case.
    """
    torch.manual_seed(seed)
    block = SCSA(channels)
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    return block


def _device_context(device: torch.device) -> ExitStack:
    """On CPU: the fused kernel built before timing, one thread for the block; on CUDA: the Triton kernel on."""
    stack = ExitStack()
    if device.type == "cuda":
        stack.enter_context(cuda_kernel_switched_on())
    else:
        cpu_kernel.load()  # build outside the timed rounds
    return stack


def bench_module(
    device: torch.device | str = "cpu",
    shapes: Sequence[tuple[int, int]] = MODULE_SHAPES,
    batches: Sequence[int] = (1,),
    precisions: Sequence[str] = ("fp32",),
    repeats: int = 100,
    seed: int = 0,
) -> list[ModuleRow]:
    """Time SCSA's reference, PyTorch-op and default paths, forward (no grad) and forward + backward.

    On CPU the block runs on one thread (restored afterwards); on CUDA the default path is the Triton kernel.

    Args:
        device: Where to time.
        shapes: (channels, side) of square inputs.
        batches: Batch sizes.
        precisions: Entries of :data:`PRECISIONS` (``amp``: float16 input under autocast, float32 parameters).
        repeats: Interleaved timed rounds per measurement (forward + backward: half as many).
        seed: Seed for the block's parameters and the input.

    Returns:
        One row per shape, batch and precision.
    """
    device = torch.device(device)
    threads = torch.get_num_threads()
    rows = []
    with _device_context(device):
        if device.type == "cpu":
            torch.set_num_threads(1)
        try:
            for channels, side in shapes:
                block = _spread_block(channels, seed).to(device)
                ops_forward = fused_kernel_disabled()(block)  # the context manager as a decorator
                paths = {"ref": block.forward_reference, "ops": ops_forward, "fast": block}
                for batch in batches:
                    for precision in precisions:
                        dtype = torch.float16 if precision == "amp" else torch.float32
                        x = torch.randn(batch, channels, side, side, device=device, dtype=dtype)
                        with torch.no_grad(), _precision_context(precision):
                            reference = block.forward_reference(x).float()
                            diff = (block(x).float() - reference).abs().max().item()
                            ops_diff = (ops_forward(x).float() - reference).abs().max().item()
                            uses_kernel = block.uses_kernel(x)
                        runners = {name: _inference_runner(f, x, precision) for name, f in paths.items()}
                        forward = timings(runners, repeats, device=device)
                        x_grad = x.clone().requires_grad_(True)
                        runners = {name: _backward_runner(f, block, x_grad, precision) for name, f in paths.items()}
                        backward = timings(runners, max(repeats // 2, 1), device=device)
                        rows.append(
                            ModuleRow(
                                channels, side, batch, precision, uses_kernel, diff, ops_diff,
                                {t.name: t.median_ms for t in forward}, {t.name: t.median_ms for t in backward},
                            )
                        )  # fmt: skip
        finally:
            torch.set_num_threads(threads)
    return rows


@contextmanager
def scsa_path(model: nn.Module, path: str) -> Iterator[nn.Module]:
    """Run every SCSA block of ``model`` on ``path`` inside the context: 'fast' (default), 'ops' or 'reference'.

    Args:
        model (nn.Module): Model whose SCSA blocks to switch.
        path (str): 'fast' leaves ``forward`` as it is, 'ops' switches the fused kernel off, 'reference' routes the
            blocks through ``forward_reference``.

    Yields:
        (nn.Module): The model.
    """
    if path not in SCSA_PATHS:
        raise ValueError(f"SCSA path must be one of {SCSA_PATHS}, got {path!r}")
    blocks = [module for module in model.modules() if isinstance(module, SCSA)] if path != "fast" else []
    for block in blocks:
        block.forward = fused_kernel_disabled()(block.forward) if path == "ops" else block.forward_reference
    try:
        yield model
    finally:
        for block in blocks:
            del block.forward


def _build_detection_model(cfg: str) -> nn.Module:
    """Build an Ultralytics detection model from a YAML name (SCSA registered), without weights or downloads."""
    from ultralytics import YOLO

    import scsa_yolo  # noqa: F401  (registers SCSA with Ultralytics)

    return YOLO(cfg).model


def _comparison_models() -> tuple[dict[str, nn.Module], dict[str, str]]:
    """YOLOv8n and one YOLOv8n-SCSA per SCSA path (same weights), and each SCSA model's path name."""
    models = {"yolov8n": _build_detection_model("yolov8n.yaml")}
    paths = {}
    for path in SCSA_PATHS:
        name = "yolov8n-scsa" if path == "fast" else f"yolov8n-scsa-{path}"
        models[name] = _build_detection_model("yolov8n-scsa.yaml")
        if path != "fast":
            models[name].load_state_dict(models["yolov8n-scsa"].state_dict())
        paths[name] = path
    return models, paths


def _on_paths(models: dict[str, nn.Module], paths: dict[str, str]) -> ExitStack:
    """A context that holds each SCSA model on its path (``scsa_path``) while it is open."""
    stack = ExitStack()
    for name, path in paths.items():
        stack.enter_context(scsa_path(models[name], path))
    return stack


def _train_steps(
    models: dict[str, nn.Module], train_step: Callable[[nn.Module, torch.optim.Optimizer], None]
) -> dict[str, Callable[[], None]]:
    """One no-argument train step per model: train mode, every parameter trainable, its own SGD optimizer."""
    steps = {}
    for name, model in models.items():
        model.train()
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)
        steps[name] = lambda m=model, o=optimizer: train_step(m, o)
    return steps


def _sum_outputs(outputs: object) -> torch.Tensor:
    """Sum of every tensor in a (possibly nested) model output: a loss stand-in that reaches every head."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float().sum()
    values = outputs.values() if isinstance(outputs, dict) else outputs
    return sum(_sum_outputs(value) for value in values)


def bench_model(
    device: torch.device | str = "cpu",
    imgsz: int = 640,
    infer_batches: Sequence[int] = (1,),
    repeats: int = 30,
    train_batch: int = 2,
    train_imgsz: int | None = None,
    train_repeats: int = 8,
    threads: int | None = None,
    seed: int = 0,
) -> ModelResult:
    """Time YOLOv8n and YOLOv8n-SCSA with SCSA on each of ``SCSA_PATHS``, interleaved, same weights for the SCSA ones.

    Inference: float32, eval mode, no grad, each batch of ``infer_batches``, unfused layers for all. Training step:
    train mode, forward + backward of the sum of the raw head outputs (not Ultralytics' detection loss, which needs
    labels and would time the same extra work for all) + an SGD step; under AMP with a GradScaler on CUDA (as
    Ultralytics trains on GPUs), float32 on CPU.

    Args:
        device: Where to time.
        imgsz: Inference input side.
        infer_batches: Inference batch sizes.
        repeats: Interleaved inference rounds.
        train_batch: Training batch size.
        train_imgsz: Training input side (``imgsz`` when None).
        train_repeats: Interleaved training rounds.
        threads: torch intra-op threads on CPU (None keeps the current setting).
        seed: Seed for weights and inputs.

    Returns:
        The rows of yolov8n, yolov8n-scsa, yolov8n-scsa-ops, yolov8n-scsa-reference and the sizes used.
    """
    device = torch.device(device)
    train_imgsz = train_imgsz or imgsz
    amp = device.type == "cuda"
    previous_threads = torch.get_num_threads()
    if threads is not None and device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        with _device_context(device):
            torch.manual_seed(seed)
            models, paths = _comparison_models()
            for model in models.values():
                model.to(device).eval()
            infer = {}
            for batch in infer_batches:
                images = torch.rand(batch, 3, imgsz, imgsz, device=device)
                with torch.no_grad(), _on_paths(models, paths):
                    runners = {name: (lambda m=model, i=images: m(i)) for name, model in models.items()}
                    infer[batch] = {t.name: t.median_ms for t in timings(runners, repeats, device=device)}

            images = torch.rand(train_batch, 3, train_imgsz, train_imgsz, device=device)
            scaler = torch.amp.GradScaler(device.type, enabled=amp)

            def train_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                    loss = _sum_outputs(model(images)) * 1e-3
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()

            with _on_paths(models, paths):
                train = timings(_train_steps(models, train_step), train_repeats, warmup=2, device=device)
        rows = [ModelRow(t.name, {b: infer[b][t.name] for b in infer_batches}, t.median_ms) for t in train]
        return ModelResult(rows, imgsz, train_batch, train_imgsz, "amp" if amp else "fp32", torch.get_num_threads())
    finally:
        torch.set_num_threads(previous_threads)


# ---- CUDA ----------------------------------------------------------------------------------------------------------

CUDA_BATCHES = (1, 16)
"""Module batch sizes timed on CUDA."""
PRECISIONS = ("fp32", "amp")
"""fp32: float32 input and parameters; amp: float16 input under ``torch.autocast`` with float32 parameters, as a
block inside an Ultralytics AMP training step sees it."""


def cuda_kernel_switched_on():
    """Switch the Triton kernel on inside the context (``scsa_yolo.nn.switches``; the variable is read at import)."""
    from scsa_yolo.nn.switches import kernel_switches_set

    return kernel_switches_set(cuda_kernel=True)


from scsa_yolo.benchmark.speed_report import (  # noqa: E402  (the report reads the rows above)
    cuda_unavailable_reason,
    device_description,
    format_report,
)
