"""SCSA's export graph, ``scsa_export``: the formulation traced whenever a model is exported.

Exporters record SCSA op by op, and deployment runtimes pay per op and choke on some: this graph is written for
them, computing the same as ``SCSA.forward_reference`` up to float rounding.

* Constants, not graph arithmetic, for what depends on the weights only. When no gradient is needed (Ultralytics
  exports with ``requires_grad=False``), the padded 2-D depthwise kernels, the q*k scale matrix and the v scales are
  computed outside the trace, so they enter the graph as constants (x2paddle cannot convert Conv1d weights built in
  the graph by ``cat`` + ``index_select``; ONNX and pnnx store them as initializers / attributes).
* Profiles kept 4-D: the row profile (B, C, H, 1) and the column profile (B, C, 1, W) each go through one depthwise
  conv with a (K, 1) or (1, K) kernel (the four group kernels zero-padded to the longest), so the gates broadcast
  onto the map without reshapes: two convs instead of four per-group Conv1d, splits, concatenations and slices.
* No ``unbind`` (x2paddle cannot convert it) and no q, k tensors: without q/k biases, q @ k^T = (y @ y^T) * (s_q
  s_k^T) with y the normalised pooled map, one matmul and one constant multiply; mean(attn @ v) = attn @ mean(v).
* Pooling windows: Python integers for every exporter but ONNX (one pooling op; pnnx turned graph-valued slice bounds
  into two-input Crop layers that NCNN refuses at load); graph values under ONNX export, so a dynamic ONNX graph
  shrinks the window on maps smaller than it like PyTorch does (see ``functional.pooling_window``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from scsa_yolo.nn.functional import ScsaOptions

__all__ = ["scsa_export"]


@contextmanager
def _outside_trace(active: bool) -> Iterator[None]:
    """Suspend TorchScript tracing (which ONNX export uses too) inside the context when ``active``.

    Tensors computed there are unknown to the tracer, which records them as constants where the graph uses them.
    """
    state = torch._C._get_tracing_state() if active else None
    if state is None:
        yield
        return
    torch._C._set_tracing_state(None)
    try:
        yield
    finally:
        torch._C._set_tracing_state(state)


def _constants(params: Sequence[torch.Tensor], heads: int) -> tuple[torch.Tensor, ...]:
    """The tensors of the graph that depend on the weights only.

    Row and column kernels (C, 1, K, 1) and (C, 1, 1, K), conv biases (C), the (heads, d, d) matrix scaler * s_q s_k^T
    and the (heads, d, 1) v scales (without the heads axis for one head).
    """
    weights = params[:4]
    longest = max(weight.shape[-1] for weight in weights)
    kernels = torch.cat([F.pad(w, ((longest - w.shape[-1]) // 2,) * 2) for w in weights])  # (C, 1, K)
    biases = torch.cat(params[4:8])
    c = kernels.shape[0]
    head_dim = c // heads
    q, k, v = (params[index].reshape(heads, head_dim, 1) for index in (14, 15, 16))
    qk = (q * head_dim**-0.5) @ k.transpose(1, 2)  # (heads, d, d)
    if heads == 1:
        qk, v = qk[0], v[0]
    return kernels.unsqueeze(3), kernels.unsqueeze(2), biases.view(c, 1, 1), qk, v


def _window_pool(x: torch.Tensor, window: tuple, mode: str) -> torch.Tensor:
    """Non-overlapping window means (maxima), floor mode: (B, C, H, W) -> (B, C, H', W').

    Integer windows pool in one op; graph-valued ones (ONNX) crop to whole windows and reduce a 6-D view.
    """
    window_h, window_w = window
    if not isinstance(window_h, torch.Tensor):
        window = (window_h, window_w)  # stride given: x2paddle does not take the default (an empty list)
        return (F.avg_pool2d if mode == "avg_pool" else F.max_pool2d)(x, window, window)
    b, c, h, w = x.shape
    pooled_h, pooled_w = h // window_h, w // window_w
    tiles = x[:, :, : pooled_h * window_h, : pooled_w * window_w].reshape(b, c, pooled_h, window_h, pooled_w, window_w)
    return tiles.mean(dim=(3, 5)) if mode == "avg_pool" else tiles.amax(dim=(3, 5))


def scsa_export(
    x: torch.Tensor, params: Sequence[torch.Tensor], options: ScsaOptions, training: bool, window: tuple
) -> torch.Tensor:
    """SCSA of a (B, C, H, W) map as an export-friendly graph (see the module docstring).

    Args:
        x (torch.Tensor): Input of shape (B, C, H, W).
        params (Sequence[torch.Tensor]): The block's tensors in ``PARAMETERS`` order.
        options (ScsaOptions): The block's settings.
        training (bool): Whether attention dropout is active.
        window (tuple): Pooling window (Python ints, or graph values under ONNX export).

    Returns:
        (torch.Tensor): Output of shape (B, C, H, W).
    """
    b, c = x.shape[:2]
    heads, kind = options.heads, options.gate_layer
    with _outside_trace(True):  # Python-level facts, not graph values
        qkv_bias = params[17].numel() > 0
    if not torch.is_grad_enabled() or not any(p.requires_grad for p in params):
        with _outside_trace(True):  # constants in a traced graph
            row_kernel, col_kernel, conv_bias, qk, v_scale = _constants([p.detach() for p in params], heads)
    else:  # gradients flow to the weights: the same tensors computed in the graph
        row_kernel, col_kernel, conv_bias, qk, v_scale = _constants(params, heads)
    pad = row_kernel.shape[2] // 2
    # The bias is added after the conv: x2paddle reads a conv's bias from the graph's scalar constants only.
    rows = F.conv2d(x.mean(dim=3, keepdim=True), row_kernel, padding=(pad, 0), groups=c) + conv_bias  # (B, C, H, 1)
    cols = F.conv2d(x.mean(dim=2, keepdim=True), col_kernel, padding=(0, pad), groups=c) + conv_bias  # (B, C, 1, W)
    rows = F.group_norm(rows, 4, params[8], params[9], options.eps_h)
    cols = F.group_norm(cols, 4, params[10], params[11], options.eps_w)
    if kind == "sigmoid":
        gated = x * rows.sigmoid() * cols.sigmoid()
    else:  # softmax over the spatial axis
        gated = x * rows.softmax(dim=2) * cols.softmax(dim=3)

    if options.window_size == -1:
        pooled = gated.mean(dim=(2, 3), keepdim=True)
    else:
        pooled = _window_pool(gated, window, options.down_sample_mode)
    y = F.group_norm(pooled, 1, params[12], params[13], options.eps).flatten(2)  # (B, C, N)
    if heads > 1:
        y = y.reshape(b, heads, c // heads, -1)  # (B, heads, d, N)
    if not qkv_bias:
        logits = (y @ y.transpose(-2, -1)) * qk
        mean_v = y.mean(dim=-1, keepdim=True) * v_scale
    else:
        shape = (heads, c // heads, 1) if heads > 1 else (c, 1)
        scaler = (c // heads) ** -0.5
        q = y * (params[14] * scaler).reshape(shape) + (params[17] * scaler).reshape(shape)
        k = y * params[15].reshape(shape) + params[18].reshape(shape)
        mean_v = y.mean(dim=-1, keepdim=True) * params[16].reshape(shape) + params[19].reshape(shape)
        logits = q @ k.transpose(-2, -1)
    attn = F.dropout(logits.softmax(dim=-1), options.attn_drop, training)
    channel = (attn @ mean_v).reshape(b, c, 1, 1)
    return gated * (channel.sigmoid() if kind == "sigmoid" else channel.softmax(dim=1))
