"""Speed of the SCSA block and of YOLOv8n with it: fast path against the reference formulation, and model overhead.

Three SCSA implementations are timed: ``reference`` (``SCSA.forward_reference``, the straightforward official
formulation), ``ops`` (``SCSA.forward`` with the op's kernels switched off: the PyTorch-op fast path) and ``fast``
(``SCSA.forward`` as it runs by default; on CPU the fused C++ kernel of the ``scsa_yolo::scsa`` op). On CUDA
(``bench_module_cuda``, ``bench_model_cuda``) ``fast`` is the op's Triton kernel, switched on for the run
(``SCSA_YOLO_CUDA_KERNEL=1``), and each candidate is timed between ``torch.cuda.synchronize`` calls.

Every comparison times its candidates interleaved (A, B, A, B, ...) in one process and reports medians, so load from
other processes on a shared machine hits all candidates alike and the ratios stay meaningful when absolute times
drift. CPU module timings run on one thread (``torch.set_num_threads(1)``); model timings use the thread count given.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from ultralytics.utils.torch_utils import get_cpu_info

from scsa_yolo.benchmark.measure import time_interleaved
from scsa_yolo.nn.kernels import cpu as cpu_kernel
from scsa_yolo.nn.scsa import SCSA
from scsa_yolo.nn.scsa_fused import fused_kernel_disabled, kernel_status

SCSA_PATHS = ("fast", "ops", "reference")
"""SCSA implementations the model benchmark compares (see ``scsa_path``)."""

MODULE_SHAPES: tuple[tuple[int, int], ...] = ((64, 80), (128, 40), (256, 20))
"""(channels, side) of the three SCSA blocks in the YOLOv8n neck at 640x640 (P3, P4, P5)."""


@dataclass(frozen=True)
class Timing:
    """Median time of one candidate, in milliseconds."""

    name: str
    median_ms: float


def device_description() -> str:
    """CPU model (Ultralytics' ``get_cpu_info``), logical CPUs, the torch version and what SCSA's fast path runs."""
    return (
        f"{get_cpu_info()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}; SCSA fast path on CPU: "
        f"{kernel_status()}"
    )


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


def bench_module(shapes: Sequence[tuple[int, int]] = MODULE_SHAPES, repeats: int = 200, seed: int = 0) -> list[dict]:
    """Time SCSA's reference, PyTorch-op and default paths, forward (no grad) and forward + backward, one thread.

    Args:
        shapes (Sequence[tuple[int, int]]): (channels, side) of square inputs, batch 1.
        repeats (int): Interleaved timed rounds per measurement.
        seed (int): Seed for the block's parameters and the input.

    Returns:
        (list[dict]): Per shape: channels, side, ``max_abs_diff`` and ``ops_max_abs_diff`` (default and PyTorch-op
            outputs vs reference), and the medians in ms ``ref_fwd``, ``ops_fwd``, ``fast_fwd``, ``ref_fwd_bwd``,
            ``ops_fwd_bwd``, ``fast_fwd_bwd``.
    """
    cpu_kernel.load()  # build outside the timed rounds
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows = []
    try:
        for channels, side in shapes:
            block = _spread_block(channels, seed)
            x = torch.randn(1, channels, side, side)
            ops_forward = fused_kernel_disabled()(block)  # the context manager as a decorator
            with torch.no_grad():
                reference = block.forward_reference(x)
                diff = (block(x) - reference).abs().max().item()
                ops_diff = (ops_forward(x) - reference).abs().max().item()
                forward = timings(
                    {
                        "ref": lambda b=block, i=x: b.forward_reference(i),
                        "ops": lambda f=ops_forward, i=x: f(i),
                        "fast": lambda b=block, i=x: b(i),
                    },
                    repeats,
                )
            x_grad = x.clone().requires_grad_(True)
            backward = timings(
                {
                    "ref": _backward_runner(block.forward_reference, block, x_grad),
                    "ops": _backward_runner(ops_forward, block, x_grad),
                    "fast": _backward_runner(block, block, x_grad),
                },
                max(repeats // 2, 1),
            )
            row = {"channels": channels, "side": side, "max_abs_diff": diff, "ops_max_abs_diff": ops_diff}
            row.update({f"{timing.name}_fwd": timing.median_ms for timing in forward})
            row.update({f"{timing.name}_fwd_bwd": timing.median_ms for timing in backward})
            rows.append(row)
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
    imgsz: int = 640,
    repeats: int = 30,
    train_batch: int = 2,
    train_imgsz: int = 640,
    train_repeats: int = 8,
    threads: int | None = None,
    seed: int = 0,
) -> dict:
    """Time YOLOv8n and YOLOv8n-SCSA with SCSA on each of ``SCSA_PATHS``, interleaved, same weights for the SCSA ones.

    Inference: eval mode, no grad, batch 1, ``imgsz`` square, unfused layers for all. Training step: train mode,
    forward + backward of the sum of the raw head outputs (not Ultralytics' detection loss, which needs labels and
    would time the same extra work for all) + an SGD step, batch ``train_batch``.

    Args:
        imgsz (int): Inference input side.
        repeats (int): Interleaved inference rounds.
        train_batch (int): Training batch size.
        train_imgsz (int): Training input side.
        train_repeats (int): Interleaved training rounds.
        threads (int | None): torch intra-op threads (None keeps the current setting).
        seed (int): Seed for weights and inputs.

    Returns:
        (dict): ``threads``, ``infer`` and ``train`` (each a list of Timing for yolov8n, yolov8n-scsa,
            yolov8n-scsa-ops, yolov8n-scsa-reference), and the sizes used.
    """
    cpu_kernel.load()  # build outside the timed rounds
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        models, paths = _comparison_models()

        image = torch.rand(1, 3, imgsz, imgsz)
        for model in models.values():
            model.eval()
        with torch.no_grad(), _on_paths(models, paths):
            infer = timings({name: (lambda m=model: m(image)) for name, model in models.items()}, repeats)

        batch = torch.rand(train_batch, 3, train_imgsz, train_imgsz)

        def train_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
            optimizer.zero_grad(set_to_none=True)
            _sum_outputs(model(batch)).backward()
            optimizer.step()

        with _on_paths(models, paths):
            train = timings(_train_steps(models, train_step), train_repeats, warmup=2)
        return {
            "threads": torch.get_num_threads(),
            "infer": infer,
            "train": train,
            "imgsz": imgsz,
            "train_imgsz": train_imgsz,
            "train_batch": train_batch,
        }
    finally:
        torch.set_num_threads(previous_threads)


def format_report(module_rows: list[dict], model_result: dict | None, device: str) -> str:
    """Markdown tables of the module and model timings, with ratios.

    Args:
        module_rows (list[dict]): Output of ``bench_module``.
        model_result (dict | None): Output of ``bench_model``, or None if skipped.
        device (str): Device description.

    Returns:
        (str): The report.
    """
    lines = [
        f"Device: {device}",
        "",
        "SCSA block, batch 1, one thread, float32, median ms. ref = straightforward official formulation "
        "(forward_reference), ops = PyTorch-op fast path (kernels off; CUDA runs it by default), fast = SCSA.forward "
        "as it runs by default here; speed-up = ref / fast:",
        "",
        "| C x H x W | ref fwd | ops fwd | fast fwd | speed-up | ref fwd+bwd | ops fwd+bwd | fast fwd+bwd | speed-up "
        "| max abs diff (fast, ops) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in module_rows:
        lines.append(
            f"| {row['channels']} x {row['side']} x {row['side']} | {row['ref_fwd']:.3f} | {row['ops_fwd']:.3f} "
            f"| {row['fast_fwd']:.3f} | {row['ref_fwd'] / row['fast_fwd']:.1f}x | {row['ref_fwd_bwd']:.3f} "
            f"| {row['ops_fwd_bwd']:.3f} | {row['fast_fwd_bwd']:.3f} | {row['ref_fwd_bwd'] / row['fast_fwd_bwd']:.1f}x "
            f"| {row['max_abs_diff']:.1e}, {row['ops_max_abs_diff']:.1e} |"
        )
    if model_result is not None:
        infer = {timing.name: timing.median_ms for timing in model_result["infer"]}
        train = {timing.name: timing.median_ms for timing in model_result["train"]}
        base_infer, base_train = infer["yolov8n"], train["yolov8n"]
        lines += [
            "",
            f"Whole model, {model_result['threads']} thread(s), median ms; ratio to YOLOv8n "
            f"(inference: {model_result['imgsz']}x{model_result['imgsz']}, batch 1, eval, no grad; train step: "
            f"batch {model_result['train_batch']} at {model_result['train_imgsz']}x{model_result['train_imgsz']}, "
            "forward + backward of the sum of the head outputs + SGD step):",
            "",
            "| model | inference | ratio | train step | ratio |",
            "|---|---|---|---|---|",
        ]
        for name in infer:
            lines.append(
                f"| {name} | {infer[name]:.1f} | {infer[name] / base_infer:.3f}x | {train[name]:.1f} "
                f"| {train[name] / base_train:.3f}x |"
            )
    return "\n".join(lines)


# ---- CUDA ----------------------------------------------------------------------------------------------------------

CUDA_BATCHES = (1, 16)
"""Module batch sizes timed on CUDA."""
PRECISIONS = ("fp32", "amp")
"""fp32: float32 input and parameters; amp: float16 input under ``torch.autocast`` with float32 parameters, as a
block inside an Ultralytics AMP training step sees it."""


def cuda_unavailable_reason() -> str | None:
    """One line saying why there is nothing to time on CUDA here, or None when torch sees a CUDA device."""
    if torch.cuda.is_available():
        return None
    return (
        "no CUDA device: torch.cuda.is_available() is False (the CUDA benchmark needs an NVIDIA GPU and a CUDA build "
        f"of torch; this is torch {torch.__version__})"
    )


def cuda_description(device: torch.device) -> str:
    """Card name, memory and compute capability, torch, CUDA and Triton versions."""
    import triton

    properties = torch.cuda.get_device_properties(device)
    return (
        f"{properties.name} ({properties.total_memory / 2**30:.0f} GiB, compute capability "
        f"{properties.major}.{properties.minor}), torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"triton {triton.__version__}"
    )


def cuda_kernel_switched_on():
    """Switch the Triton kernel on inside the context (``scsa_yolo.nn.switches``; the variable is read at import)."""
    from scsa_yolo.nn.switches import kernel_switches_set

    return kernel_switches_set(cuda_kernel=True)


def bench_module_cuda(
    device: torch.device,
    shapes: Sequence[tuple[int, int]] = MODULE_SHAPES,
    batches: Sequence[int] = CUDA_BATCHES,
    precisions: Sequence[str] = PRECISIONS,
    repeats: int = 100,
    seed: int = 0,
) -> list[dict]:
    """Time SCSA's reference, PyTorch-op and Triton-kernel paths on CUDA, forward and forward + backward.

    Args:
        device (torch.device): The CUDA device.
        shapes (Sequence[tuple[int, int]]): (channels, side) of square inputs.
        batches (Sequence[int]): Batch sizes.
        precisions (Sequence[str]): Entries of ``PRECISIONS``.
        repeats (int): Interleaved timed rounds per measurement (forward + backward: half as many).
        seed (int): Seed for the block's parameters and the input.

    Returns:
        (list[dict]): Per shape, batch and precision: channels, side, batch, precision, ``fast_uses_kernel``
            (whether ``fast`` ran the op), ``max_abs_diff`` (fast vs reference output) and the medians in ms
            ``ref_fwd``, ``ops_fwd``, ``fast_fwd``, ``ref_fwd_bwd``, ``ops_fwd_bwd``, ``fast_fwd_bwd``.
    """
    rows = []
    with cuda_kernel_switched_on():
        for channels, side in shapes:
            block = _spread_block(channels, seed)
            block.to(device)
            ops_forward = fused_kernel_disabled()(block)
            for batch in batches:
                for precision in precisions:
                    dtype = torch.float16 if precision == "amp" else torch.float32
                    x = torch.randn(batch, channels, side, side, device=device, dtype=dtype)
                    paths = {"ref": block.forward_reference, "ops": ops_forward, "fast": block}
                    with torch.no_grad(), _precision_context(precision):
                        reference = block.forward_reference(x).float()
                        diff = (block(x).float() - reference).abs().max().item()
                        uses_kernel = block.uses_kernel(x)
                    forward = timings(
                        {name: _inference_runner(f, x, precision) for name, f in paths.items()}, repeats, device=device
                    )
                    x_grad = x.clone().requires_grad_(True)
                    backward = timings(
                        {name: _backward_runner(f, block, x_grad, precision) for name, f in paths.items()},
                        max(repeats // 2, 1),
                        device=device,
                    )
                    row = {
                        "channels": channels,
                        "side": side,
                        "batch": batch,
                        "precision": precision,
                        "fast_uses_kernel": uses_kernel,
                        "max_abs_diff": diff,
                    }
                    row.update({f"{timing.name}_fwd": timing.median_ms for timing in forward})
                    row.update({f"{timing.name}_fwd_bwd": timing.median_ms for timing in backward})
                    rows.append(row)
    return rows


def bench_model_cuda(
    device: torch.device,
    imgsz: int = 640,
    infer_batches: Sequence[int] = (1, 32),
    repeats: int = 50,
    train_batch: int = 16,
    train_repeats: int = 20,
    seed: int = 0,
) -> dict:
    """Time YOLOv8n and YOLOv8n-SCSA (fast = Triton kernel, ops, reference) on CUDA, interleaved, same weights.

    Inference: float32, eval mode, no grad, each batch of ``infer_batches``. Training step: train mode, AMP
    (float16 autocast with a GradScaler, as Ultralytics trains on GPUs), forward + backward of the sum of the raw head
    outputs + an SGD step, batch ``train_batch``.

    Args:
        device (torch.device): The CUDA device.
        imgsz (int): Input side.
        infer_batches (Sequence[int]): Inference batch sizes.
        repeats (int): Interleaved inference rounds.
        train_batch (int): Training batch size.
        train_repeats (int): Interleaved training rounds.
        seed (int): Seed for weights and inputs.

    Returns:
        (dict): ``infer`` (batch to a list of Timing), ``train`` (list of Timing) for yolov8n, yolov8n-scsa,
            yolov8n-scsa-ops, yolov8n-scsa-reference, and the sizes used.
    """
    with cuda_kernel_switched_on():
        torch.manual_seed(seed)
        models, paths = _comparison_models()
        for model in models.values():
            model.to(device)

        infer = {}
        for model in models.values():
            model.eval()
        for batch in infer_batches:
            images = torch.rand(batch, 3, imgsz, imgsz, device=device)
            with torch.no_grad(), _on_paths(models, paths):
                infer[batch] = timings(
                    {name: (lambda m=model, i=images: m(i)) for name, model in models.items()}, repeats, device=device
                )

        images = torch.rand(train_batch, 3, imgsz, imgsz, device=device)
        scaler = torch.amp.GradScaler("cuda")

        def train_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.float16):
                loss = _sum_outputs(model(images)) * 1e-3
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

        with _on_paths(models, paths):
            train = timings(_train_steps(models, train_step), train_repeats, warmup=3, device=device)
    return {"infer": infer, "train": train, "imgsz": imgsz, "train_batch": train_batch}


def format_cuda_report(module_rows: list[dict], model_result: dict | None, device: str) -> str:
    """Markdown tables of ``bench_module_cuda`` and ``bench_model_cuda`` results, with ratios to the reference/plain.

    Args:
        module_rows (list[dict]): Output of ``bench_module_cuda``.
        model_result (dict | None): Output of ``bench_model_cuda``, or None if skipped.
        device (str): Device description (the card's name first).

    Returns:
        (str): The report.
    """
    lines = [
        f"Device: {device}",
        "",
        "SCSA block on CUDA, median ms (synchronised). ref = forward_reference, ops = PyTorch-op fast path, "
        "fast = SCSA.forward with the Triton kernel switched on (kernel? says whether it ran); speed-up = ref / fast; "
        "amp = float16 input under autocast, float32 parameters:",
        "",
        "| C x H x W | batch | precision | kernel? | ref fwd | ops fwd | fast fwd | speed-up | ref fwd+bwd "
        "| ops fwd+bwd | fast fwd+bwd | speed-up | max abs diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in module_rows:
        lines.append(
            f"| {row['channels']} x {row['side']} x {row['side']} | {row['batch']} | {row['precision']} "
            f"| {'yes' if row['fast_uses_kernel'] else 'no'} | {row['ref_fwd']:.3f} | {row['ops_fwd']:.3f} "
            f"| {row['fast_fwd']:.3f} | {row['ref_fwd'] / row['fast_fwd']:.1f}x | {row['ref_fwd_bwd']:.3f} "
            f"| {row['ops_fwd_bwd']:.3f} | {row['fast_fwd_bwd']:.3f} | {row['ref_fwd_bwd'] / row['fast_fwd_bwd']:.1f}x "
            f"| {row['max_abs_diff']:.1e} |"
        )
    if model_result is not None:
        batches = list(model_result["infer"])
        infer = {batch: {t.name: t.median_ms for t in rows} for batch, rows in model_result["infer"].items()}
        train = {t.name: t.median_ms for t in model_result["train"]}
        header = " | ".join(f"inference b{batch} | ratio" for batch in batches)
        lines += [
            "",
            f"Whole model on CUDA, median ms; ratio to YOLOv8n (inference: float32, eval, no grad, "
            f"{model_result['imgsz']}x{model_result['imgsz']}; train step: AMP, batch {model_result['train_batch']}, "
            "forward + backward of the sum of the head outputs + SGD step):",
            "",
            f"| model | {header} | AMP train step | ratio |",
            "|---|" + "---|---|" * len(batches) + "---|---|",
        ]
        for name in train:
            cells = " | ".join(
                f"{infer[batch][name]:.2f} | {infer[batch][name] / infer[batch]['yolov8n']:.3f}x" for batch in batches
            )
            lines.append(f"| {name} | {cells} | {train[name]:.2f} | {train[name] / train['yolov8n']:.3f}x |")
    return "\n".join(lines)
