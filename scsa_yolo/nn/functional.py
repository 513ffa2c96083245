"""SCSA as a function of tensors: ``scsa(x, params, options)``, the one place that decides how a forward runs.

The ``SCSA`` module (``scsa_yolo.nn.scsa``) is a thin holder of parameters over this function, the way torchvision's
``RoIAlign`` calls ``roi_align``. Three implementations of the same maths, chosen once per call (``select_path``):

* ``KERNEL``: the registered op ``torch.ops.scsa_yolo.scsa`` (``scsa_fused``; fused C++ on CPU, Triton on CUDA)
  where it has a kernel for the input and the options (``scsa_fused.kernel_supports``) and the caller allows it;
  eager mode and ``torch.compile``.
* ``EXPORT``: ``scsa_export`` (``scsa_yolo.nn.export_graph``), a graph made for exporters, whenever a graph is being
  captured: TorchScript tracing (Ultralytics' TorchScript, NCNN/pnnx, PaddlePaddle/x2paddle, OpenVINO exports),
  ONNX export (ONNX, MNN, LiteRT, TensorRT ...) and ``torch.export`` (ExecuTorch, LiteRT).
* ``TORCH``: ``scsa_torch`` (``scsa_yolo.nn.scsa_torch``), the PyTorch-op fallback, everywhere else.

All three equal ``SCSA.forward_reference`` (the straightforward port of the official code, the oracle of the tests) up
to float rounding. The parameters are tensors in ``PARAMETERS`` order (absent q/k/v biases as empty tensors).
"""

from __future__ import annotations

import enum
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import torch

from scsa_yolo.nn import scsa_fused
from scsa_yolo.nn.export_graph import scsa_export
from scsa_yolo.nn.scsa_torch import scsa_torch

__all__ = ["Path", "ScsaOptions", "capturing_graph", "pooling_window", "scsa", "select_path"]


class ScsaOptions(NamedTuple):
    """The block's settings other than its tensors (see ``SCSA.__init__``); the epsilons are its GroupNorms'."""

    heads: int = 1
    window_size: int = 7
    down_sample_mode: str = "avg_pool"
    gate_layer: str = "sigmoid"
    attn_drop: float = 0.0
    eps_h: float = 1e-5
    eps_w: float = 1e-5
    eps: float = 1e-5


DEFAULT_OPTIONS = ScsaOptions()
"""Every official config's settings."""


class Path(enum.Enum):
    """Which implementation runs a forward (see the module docstring)."""

    KERNEL = "kernel"
    EXPORT = "export"
    TORCH = "torch"


_is_exporting = getattr(torch.compiler, "is_exporting", lambda: False)  # torch >= 2.5; older torch.export: no flag


def capturing_graph() -> bool:
    """Whether a graph is being recorded for export: TorchScript tracing or scripting, ONNX export, ``torch.export``."""
    return torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export() or bool(_is_exporting())


def select_path(
    x: torch.Tensor, params: Sequence[torch.Tensor], options: ScsaOptions, training: bool, kernel_allowed: bool = True
) -> Path:
    """The one dispatch decision: the op where it has a kernel, the export graph while exporting, else PyTorch ops.

    The op takes the avg-pool sigmoid-gate configuration (every official config) without active attention dropout,
    on a non-empty (B, C, H, W) map with the parameters' channel count, where ``kernel_supports`` says its device has
    a kernel switched on for the dtypes; ``kernel_allowed`` is the caller's veto (parametrized submodules).
    """
    if capturing_graph():  # first: under tracing the shape checks below would be recorded as tensor comparisons
        return Path.EXPORT
    if (
        kernel_allowed
        and x.dim() == 4
        and x.shape[1] == params[8].shape[0]  # the row GroupNorm's weight: C
        and x.numel() > 0
        and options.down_sample_mode == "avg_pool"
        and options.gate_layer == "sigmoid"
        and not (training and options.attn_drop > 0)
        and scsa_fused.kernel_supports(x, params[14].dtype)
    ):
        return Path.KERNEL
    return Path.TORCH


def pooling_window(h: int | torch.Tensor, w: int | torch.Tensor, window_size: int) -> tuple:
    """PCSA pooling window for an (h, w) map: ``window_size`` per axis, shrunk to axes shorter than it; -1: the map.

    Sizes traced by the ONNX exporter stay graph values, so a dynamic ONNX graph pools like PyTorch at every input
    size. Every other traced graph gets Python integers (constant pooling windows): pnnx turns graph-valued slice
    bounds into two-input Crop layers that NCNN refuses, and constant windows let pooling be one op.

    Raises:
        ValueError: On an empty map.
    """
    if isinstance(h, torch.Tensor):  # traced sizes
        if torch.onnx.is_in_onnx_export():
            return (h, w) if window_size == -1 else (h.clamp(max=window_size), w.clamp(max=window_size))
        h, w = traced_int(h), traced_int(w)
    if h < 1 or w < 1:
        raise ValueError(f"SCSA got an empty {h}x{w} map")
    if window_size == -1:
        return h, w
    if (h < window_size or w < window_size) and capturing_graph():
        warnings.warn(
            f"SCSA traced on a {h}x{w} map, smaller than its {window_size}x{window_size} window: the exported graph "
            f"pools with a {min(window_size, h)}x{min(window_size, w)} window at every input size. Export at the image "
            "size you deploy at (P5 >= 7 px, i.e. imgsz >= 224, for dynamic use).",
            stacklevel=3,
        )
    return min(window_size, h), min(window_size, w)


def traced_int(value: int | torch.Tensor) -> int:
    """A traced size as a Python integer (a constant in the graph), without the tracer's warning about it."""
    if not isinstance(value, torch.Tensor):
        return value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return int(value)


def scsa(
    x: torch.Tensor,
    params: Sequence[torch.Tensor],
    options: ScsaOptions = DEFAULT_OPTIONS,
    training: bool = False,
    kernel_allowed: bool = True,
) -> torch.Tensor:
    """SCSA of a (B, C, H, W) map: SMSA then PCSA, by the implementation ``select_path`` picks.

    Args:
        x (torch.Tensor): Input of shape (B, C, H, W).
        params (Sequence[torch.Tensor]): The block's tensors in ``PARAMETERS`` order (``scsa_yolo.nn.kernels``);
            absent q/k/v biases as empty tensors.
        options (ScsaOptions): Heads, window, pooling, gate, dropout and epsilons.
        training (bool): Whether attention dropout is active.
        kernel_allowed (bool): False keeps the registered op out (the caller knows why).

    Returns:
        (torch.Tensor): Output of shape (B, C, H, W).
    """
    path = select_path(x, params, options, training, kernel_allowed)
    window = pooling_window(x.shape[2], x.shape[3], options.window_size)
    if path is Path.KERNEL:
        heads = options.heads
        return scsa_fused.scsa(x, params, *window, heads, (x.shape[1] // heads) ** -0.5, *options[-3:])
    if path is Path.EXPORT:
        return scsa_export(x, params, options, training, window)
    return scsa_torch(x, params, options, training, window)
