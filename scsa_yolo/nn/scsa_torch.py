"""SCSA's PyTorch-op fallback, ``scsa_torch``: what runs where the op has no kernel and no graph is being exported.

Same maths as ``SCSA.forward_reference`` with fewer, larger steps:

* the four depthwise convs run as one conv with their kernels zero-padded to the longest one, over the H and W
  profiles joined along the length with a zero gap (so neither sees the other);
* q, k and v are per-channel scales applied in one broadcast multiply; the spatial mean of ``attn @ v`` is taken as
  ``attn @ mean(v)``;
* the average pooling is a window sum whose 1 / window-area factor is folded into the GroupNorm epsilon
  (GroupNorm(a * x, eps) == GroupNorm(x, eps / a**2));
* the channel gate is folded into the column gate, so the map is multiplied twice instead of three times.

``max_pool`` multiplies by both gates before pooling, as pooling a max cannot be folded. In eager training (grad
enabled, no ``torch.func`` transform) the avg-pool path runs its three full-size steps as custom autograd Functions
with hand-written backward passes sharing one gradient buffer for the input: on CPU each fresh full-size buffer costs
page faults comparable to the arithmetic, and autograd of the plain ops allocates about ten per step. Inference,
``torch.func`` transforms and forward-mode AD use the plain ops (which also take double backward there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from scsa_yolo.nn import scsa_fused

if TYPE_CHECKING:
    from scsa_yolo.nn.functional import ScsaOptions

__all__ = ["gate", "padded_kernels", "scsa_torch"]


def gate(logits: torch.Tensor, dim: int, kind: str) -> torch.Tensor:
    """The configured gate: sigmoid, or softmax over ``dim``."""
    return torch.sigmoid(logits) if kind == "sigmoid" else logits.softmax(dim)


def padded_kernels(params: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The four group convs as one depthwise conv: (C, 1, K) kernels zero-padded to the longest K, and (C,) biases."""
    weights = params[:4]
    longest = max(weight.shape[-1] for weight in weights)
    padded = [F.pad(w, ((longest - w.shape[-1]) // 2,) * 2) if w.shape[-1] < longest else w for w in weights]
    return torch.cat(padded), torch.cat(params[4:8])


def spatial_gates(
    rows: torch.Tensor, cols: torch.Tensor, params: Sequence[torch.Tensor], options: ScsaOptions
) -> tuple[torch.Tensor, torch.Tensor]:
    """SMSA gates (B, C, H) and (B, C, W) from the row and column mean profiles, through one depthwise conv.

    The profiles are joined along the length with zero gaps of half the longest kernel, exactly the zero padding
    each would get alone.
    """
    b, c, h = rows.shape
    kernels, biases = padded_kernels(params)
    gap = kernels.shape[-1] // 2
    zeros = rows.new_zeros(()).expand(b, c, gap)
    filtered = F.conv1d(torch.cat((zeros, rows, zeros, cols, zeros), dim=2), kernels, biases, groups=c)
    # Output position i is centred on padded position i + gap: rows start at 0, columns after the middle gap.
    rows = F.group_norm(filtered[..., :h], 4, params[8], params[9], options.eps_h)
    cols = F.group_norm(filtered[..., h + gap :], 4, params[10], params[11], options.eps_w)
    return gate(rows, -1, options.gate_layer), gate(cols, -1, options.gate_layer)


def channel_logits(
    pooled: torch.Tensor, window_area: int, params: Sequence[torch.Tensor], options: ScsaOptions, training: bool
) -> torch.Tensor:
    """PCSA before its gate: (B, C) logits from the (B, C, H', W') pooled map (window sums when avg-pooling).

    Args:
        pooled (torch.Tensor): Window sums (``window_area`` > 1 means divide by it) or maxima, (B, C, H', W').
        window_area (int): Pixels per pooling window for sums, 1 for maxima.
        params (Sequence[torch.Tensor]): The block's tensors.
        options (ScsaOptions): The block's settings.
        training (bool): Whether attention dropout is active.

    Returns:
        (torch.Tensor): Channel logits of shape (B, C).
    """
    b, c = pooled.shape[:2]
    heads = options.heads
    head_dim = c // heads
    # GroupNorm(s / a) with eps equals GroupNorm(s) with eps * a**2, so the window mean needs no division
    y = F.group_norm(pooled, 1, params[12], params[13], options.eps * window_area**2)
    y = y.reshape(b, 1, heads, head_dim, -1)
    scaler = head_dim**-0.5
    scales = torch.cat((params[14] * scaler, params[15], params[16])).view(3, heads, head_dim, 1)
    if params[17].numel() == 0:
        qkv = y * scales
    else:
        biases = torch.cat((params[17] * scaler, params[18], params[19]))
        qkv = torch.addcmul(biases.view(3, heads, head_dim, 1), y, scales)
    q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]  # (B, heads, d, N) each; q carries head_dim**-0.5
    attn = F.dropout((q @ k.transpose(-2, -1)).softmax(dim=-1), options.attn_drop, training)
    return (attn @ v.mean(dim=-1, keepdim=True)).reshape(b, c)  # mean(attn @ v) == attn @ mean(v)


def out_gate(
    row_sums: torch.Tensor,
    col_gate: torch.Tensor,
    window: tuple[int, int],
    params: Sequence[torch.Tensor],
    options: ScsaOptions,
    training: bool,
) -> torch.Tensor:
    """Column gate times the PCSA channel gate, (B, C, W), from the window row sums (B, C, H', W) of x * row gate."""
    b, c, pooled_h, w = row_sums.shape
    window_h, window_w = window
    cols_used = w // window_w * window_w
    # Column-gate the small row sums, then sum each window of columns: the window sums of x * row * col gates.
    weighted = row_sums[..., :cols_used] * col_gate[:, :, None, :cols_used]
    pooled = weighted.reshape(b, c, pooled_h, -1, window_w).sum(dim=-1)
    logits = channel_logits(pooled, window_h * window_w, params, options, training)
    return gate(logits, 1, options.gate_layer).unsqueeze(2) * col_gate


def window_row_sums(rows_gated: torch.Tensor, window: int) -> torch.Tensor:
    """(B, C, H // window, W) sums of each full window of ``window`` rows of a (B, C, H, W) map."""
    b, c, h, w = rows_gated.shape
    pooled = h // window
    return rows_gated[:, :, : pooled * window].reshape(b, c, pooled, window, w).sum(dim=3)


def scsa_torch(
    x: torch.Tensor, params: Sequence[torch.Tensor], options: ScsaOptions, training: bool, window: tuple[int, int]
) -> torch.Tensor:
    """SCSA of a (B, C, H, W) map with PyTorch ops (see the module docstring); ``window`` is the pooling window."""
    b, c = x.shape[:2]
    if options.down_sample_mode == "max_pool" and options.window_size != -1:
        row_gate, col_gate = spatial_gates(x.mean(dim=3), x.mean(dim=2), params, options)
        gated = x * row_gate.unsqueeze(3) * col_gate.unsqueeze(2)
        logits = channel_logits(F.max_pool2d(gated, window), 1, params, options, training)
        return gate(logits, 1, options.gate_layer).view(b, c, 1, 1) * gated
    if torch.is_grad_enabled() and not scsa_fused.autograd_transforms_active():
        return _forward_train(x, params, options, training, window)
    row_gate, col_gate = spatial_gates(x.mean(dim=3), x.mean(dim=2), params, options)
    rows_gated = x * row_gate.unsqueeze(3)
    gate_out = out_gate(window_row_sums(rows_gated, window[0]), col_gate, window, params, options, training)
    if torch.is_grad_enabled():  # torch.func transforms: autograd must see the ops
        return rows_gated * gate_out.unsqueeze(2)
    return rows_gated.mul_(gate_out.unsqueeze(2))  # inference: reuse the temporary, nothing needs it


def _forward_train(
    x: torch.Tensor, params: Sequence[torch.Tensor], options: ScsaOptions, training: bool, window: tuple[int, int]
) -> torch.Tensor:
    """The avg-pool path with hand-written backward passes for its three full-size steps (eager autograd).

    The small gate computations stay ordinary autograd ops; the full-size steps (profiles, window row sums,
    output) are custom Functions that share one gradient buffer for ``x`` (see ``_FullSizeState``).
    """
    state = _FullSizeState(x.requires_grad)
    row_gate, col_gate = spatial_gates(*_Profiles.apply(x, state), params, options)
    row_sums = _WindowRowSums.apply(x, row_gate, window[0], state)
    gate_out = out_gate(row_sums, col_gate, window, params, options, training)
    return _GateOutput.apply(x, row_gate, gate_out, state)


class _FullSizeState:
    """Buffers shared by the three full-size Functions of one training forward (``_forward_train``).

    Forward: ``_WindowRowSums`` leaves ``x * row_gate`` here and ``_GateOutput`` gates it in place into the output.
    Backward runs in the reverse order (autograd's dependencies force it): ``_GateOutput`` starts the gradient of
    ``x`` here, ``_WindowRowSums`` adds to it and ``_Profiles`` adds the last term and returns it, so the gradient
    of ``x`` is one buffer instead of three summed by autograd.
    """

    def __init__(self, input_needs_grad: bool) -> None:
        """Empty state; ``input_needs_grad`` says whether the gradient of ``x`` must be built at all."""
        self.input_needs_grad = input_needs_grad
        self.rows_gated: torch.Tensor | None = None
        self.grad_buffer: torch.Tensor | None = None


class _Profiles(torch.autograd.Function):
    """Row means (B, C, H) and column means (B, C, W); backward finishes the shared gradient of ``x``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, state: _FullSizeState) -> tuple[torch.Tensor, torch.Tensor]:
        """Both mean profiles of (B, C, H, W) ``x``."""
        ctx.state = state
        ctx.sizes = x.shape[2], x.shape[3]
        return x.mean(dim=3), x.mean(dim=2)

    @staticmethod
    def backward(ctx, grad_rows: torch.Tensor, grad_cols: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        """Add the broadcast profile gradients to the buffer the later steps filled, and return it."""
        h, w = ctx.sizes
        grad_x, ctx.state.grad_buffer = ctx.state.grad_buffer, None
        return grad_x.add_((grad_rows / w).unsqueeze(3)).add_((grad_cols / h).unsqueeze(2)), None


class _WindowRowSums(torch.autograd.Function):
    """Sums of ``x * row_gate`` over each full window of rows, (B, C, H // window, W)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, row_gate: torch.Tensor, window: int, state: _FullSizeState) -> torch.Tensor:
        """Row-gate ``x`` (kept in ``state`` for the output) and sum each window of rows."""
        state.rows_gated = torch.mul(x, row_gate.unsqueeze(3))
        ctx.save_for_backward(x, row_gate)
        ctx.window, ctx.state = window, state
        return window_row_sums(state.rows_gated, window)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """Total row-gate gradient sum_w x * T and the buffer turned into row_gate * T (T from ``_GateOutput``).

        T = grad_out * out_gate + grad_row_sums spread over each window's rows.
        """
        x, row_gate = ctx.saved_tensors
        b, c, h, w = x.shape
        spread = ctx.state.grad_buffer
        used = grad.shape[2] * ctx.window
        spread[:, :, :used].view(b, c, -1, ctx.window, w).add_(grad.unsqueeze(3))
        grad_row_gate = (x * spread).sum(dim=3)
        if ctx.state.input_needs_grad:
            spread.mul_(row_gate.unsqueeze(3))
        else:
            ctx.state.grad_buffer = None
        return None, grad_row_gate, None, None


class _GateOutput(torch.autograd.Function):
    """Output ``x * row_gate * out_gate`` written over the row-gated map of ``_WindowRowSums``."""

    @staticmethod
    def forward(
        ctx, x: torch.Tensor, row_gate: torch.Tensor, out_gate: torch.Tensor, state: _FullSizeState
    ) -> torch.Tensor:
        """Gate the kept ``x * row_gate`` by the (B, C, W) ``out_gate`` in place and return it."""
        out, state.rows_gated = state.rows_gated, None
        ctx.save_for_backward(x, row_gate, out_gate)
        ctx.state = state
        return out.mul_(out_gate.unsqueeze(2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """Out-gate gradient row_gate @ (grad * x); start the shared buffer as grad * out_gate.

        The row-gate gradient of this step, sum_w grad * x * out_gate, is left to ``_WindowRowSums``, which sums
        ``x`` times the whole buffer, so this returns none for ``row_gate``.
        """
        scsa_fused.refuse_double_backward("SCSA's training fast path")
        x, row_gate, out_gate = ctx.saved_tensors
        buffer = torch.mul(grad, x, out=torch.empty_like(x, memory_format=torch.contiguous_format))
        grad_out_gate = (row_gate.unsqueeze(2) @ buffer).squeeze(2)
        ctx.state.grad_buffer = torch.mul(grad, out_gate.unsqueeze(2), out=buffer)
        return None, None, grad_out_gate, None
