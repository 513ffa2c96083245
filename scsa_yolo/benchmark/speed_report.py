"""The speed bench's report: the device it ran on, and markdown tables of its rows (CPU and CUDA alike)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from ultralytics.utils.torch_utils import get_cpu_info

from scsa_yolo.nn.scsa_fused import kernel_status

if TYPE_CHECKING:
    from scsa_yolo.benchmark.speed import ModelResult, ModuleRow


def format_report(module_rows: Sequence[ModuleRow], model_result: ModelResult | None, device: str) -> str:
    """Markdown tables of the module and model timings, with ratios (one formatter for both devices).

    Args:
        module_rows: Output of :func:`bench_module`.
        model_result: Output of :func:`bench_model`, or None if skipped.
        device: Device description.

    Returns:
        The report.
    """
    lines = [
        f"Device: {device}",
        "",
        "SCSA block, median ms (CPU: one thread; CUDA: synchronised). ref = straightforward official formulation "
        "(forward_reference), ops = PyTorch-op fast path (kernels off), fast = SCSA.forward as it runs by default "
        "here (kernel? says whether the op's kernel ran); speed-up = ref / fast; amp = float16 input under autocast:",
        "",
        "| C x H x W | batch | precision | kernel? | ref fwd | ops fwd | fast fwd | speed-up | ref fwd+bwd "
        "| ops fwd+bwd | fast fwd+bwd | speed-up | max abs diff (fast, ops) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in module_rows:
        f, b = row.forward, row.forward_backward
        lines.append(
            f"| {row.channels} x {row.side} x {row.side} | {row.batch} | {row.precision} "
            f"| {'yes' if row.uses_kernel else 'no'} | {f['ref']:.3f} | {f['ops']:.3f} | {f['fast']:.3f} "
            f"| {row.speedup():.1f}x | {b['ref']:.3f} | {b['ops']:.3f} | {b['fast']:.3f} "
            f"| {row.speedup(backward=True):.1f}x | {row.max_abs_diff:.1e}, {row.ops_max_abs_diff:.1e} |"
        )
    if model_result is not None:
        result = model_result
        batches = list(result.rows[0].infer_ms)
        base = result.rows[0]
        header = " | ".join(f"inference b{batch} | ratio" for batch in batches)
        lines += [
            "",
            f"Whole model, {result.threads} CPU thread(s), median ms; ratio to {base.name} (inference: float32, eval, "
            f"no grad, {result.imgsz}x{result.imgsz}; train step: {result.train_precision}, batch "
            f"{result.train_batch} at {result.train_imgsz}x{result.train_imgsz}, forward + backward of the sum of the "
            "head outputs + SGD step):",
            "",
            f"| model | {header} | train step | ratio |",
            "|---|" + "---|---|" * len(batches) + "---|---|",
        ]
        for row in result.rows:
            cells = " | ".join(
                f"{row.infer_ms[batch]:.2f} | {row.infer_ms[batch] / base.infer_ms[batch]:.3f}x" for batch in batches
            )
            lines.append(f"| {row.name} | {cells} | {row.train_ms:.2f} | {row.train_ms / base.train_ms:.3f}x |")
    return "\n".join(lines)


def device_description(device: torch.device | None = None) -> str:
    """The CPU (model, logical CPUs, what SCSA's fast path runs) or the CUDA card, with the torch version."""
    if device is not None and device.type == "cuda":
        return cuda_description(device)
    return (
        f"{get_cpu_info()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}; SCSA fast path on CPU: "
        f"{kernel_status()}"
    )


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
