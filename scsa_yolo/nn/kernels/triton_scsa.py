"""CUDA kernel of the SCSA op, in Triton: the full-size passes as Triton kernels, the small gate maths as tensor ops.

The block reads its (B, C, H, W) input three times forward (row and column means; window means of the gated map;
the output) and three times backward (gate gradient sums; gate gradients from the pooling branch; the input
gradient). Each pass is one Triton program per (sample, channel) plane, walking the plane in bands of
``window_h`` rows, so the window sums need no second read. Everything between the passes works on (B, C, H),
(B, C, W), (B, C, H'W') or (B, heads, d, d) tensors and runs as PyTorch ops in float32: the depthwise convs,
GroupNorms, the channel attention and their hand-written backward (the same formulas as the CPU kernel,
``csrc/cpu/scsa_cpu.cpp``). The statistics it returns are those of ``STATISTICS``, in float32.

Inputs may be float32, float16 or bfloat16 (AMP); the passes load in that dtype, compute in float32, and store the
output and the input gradient in the input's dtype; parameter gradients come back in the parameters' dtype. Both run
with autocast off (its float16 would reach the small maths' tensor ops otherwise).
Under Triton's interpreter (``TRITON_INTERPRET=1`` set before this module is imported) it runs on CPU tensors,
which is how the tests check it on machines without a GPU.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from triton.runtime.errors import OutOfResources

from scsa_yolo.nn.kernels import GROUP_CONVS, PARAMETERS

__all__ = ["backward", "forward"]

_INDEX = {name: index for index, name in enumerate(PARAMETERS)}
GROUPS = 4
MAX_TILE = 8192
"""Elements per (rows x columns) tile of a pass; a band of ``window_h`` rows is always one tile."""
MAX_HEAD_DIM = 256
"""Largest head (channels per head, rounded up to a power of two) the channel-attention program takes: its d x d
scores live in registers."""
MAX_ATTENTION_OPERAND = 128 * 128
"""Largest (d x N) q or k tile of that program (its ``tl.dot`` operands go through shared memory: two float32
operands of this size are 128 KiB). Larger heads or maps run the attention as tensor ops."""
INPUT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

_out_of_resources: set[tuple[int, int]] = set()
"""(BLOCK_D, BLOCK_N) tiles whose channel-attention programs did not fit this process' GPU (cards with less shared
memory per block than the 128 KiB above allows for, e.g. 64 KiB on a T4): those run the attention as tensor ops."""


# ---- full-size passes: one program per (sample, channel) plane -------------------------------------------------


@triton.jit
def _profiles_kernel(x_ptr, row_means_ptr, col_means_ptr, H, W, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """Row means (H) and column means (W) of one plane."""
    plane = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_W)
    col_ok = cols < W
    col_sums = tl.zeros([BLOCK_W], dtype=tl.float32)
    for start in range(0, H, BLOCK_H):
        rows = start + tl.arange(0, BLOCK_H)
        row_ok = rows < H
        mask = row_ok[:, None] & col_ok[None, :]
        tile = tl.load(x_ptr + plane * H * W + rows[:, None] * W + cols[None, :], mask=mask, other=0.0)
        tile = tile.to(tl.float32)
        tl.store(row_means_ptr + plane * H + rows, tl.sum(tile, axis=1) / W, mask=row_ok)
        col_sums += tl.sum(tile, axis=0)
    tl.store(col_means_ptr + plane * W + cols, col_sums / H, mask=col_ok)


@triton.jit
def _profile_gates_kernel(
    profile_ptr,
    kernels_ptr,
    bias_ptr,
    gamma_ptr,
    beta_ptr,
    normed_ptr,
    gate_ptr,
    rstd_ptr,
    C,
    L,
    group_chans,
    eps,
    KMAX: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_L: tl.constexpr,
):
    """SMSA gate of one (sample, channel group) of a (B, C, L) profile.

    Depthwise conv (kernels zero-padded to KMAX, centred), GroupNorm over the group's channels and positions, affine,
    sigmoid; stores the normalised values, the gate and 1 / std.
    """
    b = tl.program_id(0).to(tl.int64)
    group = tl.program_id(1)
    local = tl.arange(0, BLOCK_C)
    chans = group * group_chans + local
    chan_ok = local < group_chans
    pos = tl.arange(0, BLOCK_L)
    pos_ok = pos < L
    rows = (b * C + chans)[:, None] * L
    acc = tl.zeros([BLOCK_C, BLOCK_L], dtype=tl.float32) + tl.load(bias_ptr + chans, mask=chan_ok, other=0.0)[:, None]
    for tap in tl.static_range(KMAX):
        source = pos + (tap - KMAX // 2)
        source_ok = (source >= 0) & (source < L)
        values = tl.load(profile_ptr + rows + source[None, :], mask=chan_ok[:, None] & source_ok[None, :], other=0.0)
        weights = tl.load(kernels_ptr + chans * KMAX + tap, mask=chan_ok, other=0.0)
        acc += weights[:, None] * values
    mask = chan_ok[:, None] & pos_ok[None, :]
    count = group_chans * L
    mean = tl.sum(tl.sum(tl.where(mask, acc, 0.0), axis=1), axis=0) / count
    centred = tl.where(mask, acc - mean, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(tl.sum(centred * centred, axis=1), axis=0) / count + eps)
    normed = centred * rstd
    gamma = tl.load(gamma_ptr + chans, mask=chan_ok, other=0.0)
    beta = tl.load(beta_ptr + chans, mask=chan_ok, other=0.0)
    gate = tl.sigmoid(normed * gamma[:, None] + beta[:, None])
    tl.store(normed_ptr + rows + pos[None, :], normed, mask=mask)
    tl.store(gate_ptr + rows + pos[None, :], gate, mask=mask)
    tl.store(rstd_ptr + b * 4 + group, rstd)


@triton.jit
def _profile_gates_backward_kernel(
    grad_gate_ptr,
    profile_ptr,
    normed_ptr,
    gate_ptr,
    rstd_ptr,
    kernels_ptr,
    gamma_ptr,
    grad_conv_ptr,
    grad_profile_ptr,
    grad_kernels_ptr,
    grad_bias_ptr,
    grad_gamma_ptr,
    grad_beta_ptr,
    C,
    L,
    group_chans,
    KMAX: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_L: tl.constexpr,
):
    """Back through one (sample, channel group) of ``_profile_gates_kernel``: sigmoid, affine, GroupNorm, conv.

    Writes d profile, and per-sample parameter gradients (conv taps, conv bias, GroupNorm weight and bias) that the
    caller sums over the batch. ``grad_conv_ptr`` is scratch: the conv's input gradient reads d conv shifted by
    each tap, from other threads of the program.
    """
    b = tl.program_id(0).to(tl.int64)
    group = tl.program_id(1)
    local = tl.arange(0, BLOCK_C)
    chans = group * group_chans + local
    chan_ok = local < group_chans
    pos = tl.arange(0, BLOCK_L)
    mask = chan_ok[:, None] & (pos < L)[None, :]
    rows = (b * C + chans)[:, None] * L
    gate = tl.load(gate_ptr + rows + pos[None, :], mask=mask, other=0.0)
    normed = tl.load(normed_ptr + rows + pos[None, :], mask=mask, other=0.0)
    grad_logits = tl.load(grad_gate_ptr + rows + pos[None, :], mask=mask, other=0.0) * gate * (1.0 - gate)
    tl.store(grad_gamma_ptr + b * C + chans, tl.sum(grad_logits * normed, axis=1), mask=chan_ok)
    tl.store(grad_beta_ptr + b * C + chans, tl.sum(grad_logits, axis=1), mask=chan_ok)
    grad_normed = grad_logits * tl.load(gamma_ptr + chans, mask=chan_ok, other=0.0)[:, None]
    count = group_chans * L
    mean_dn = tl.sum(tl.sum(grad_normed, axis=1), axis=0) / count
    mean_dn_n = tl.sum(tl.sum(grad_normed * normed, axis=1), axis=0) / count
    rstd = tl.load(rstd_ptr + b * 4 + group)
    grad_conv = tl.where(mask, rstd * (grad_normed - mean_dn - normed * mean_dn_n), 0.0)
    tl.store(grad_bias_ptr + b * C + chans, tl.sum(grad_conv, axis=1), mask=chan_ok)
    tl.store(grad_conv_ptr + rows + pos[None, :], grad_conv, mask=mask)
    tl.debug_barrier()
    grad_profile = tl.zeros([BLOCK_C, BLOCK_L], dtype=tl.float32)
    for tap in tl.static_range(KMAX):
        shift = tap - KMAX // 2  # forward: conv[i] += w[tap] * profile[i + shift]
        source = pos + shift
        source_ok = (source >= 0) & (source < L) & (pos < L)
        values = tl.load(profile_ptr + rows + source[None, :], mask=chan_ok[:, None] & source_ok[None, :], other=0.0)
        tl.store(grad_kernels_ptr + (b * C + chans) * KMAX + tap, tl.sum(grad_conv * values, axis=1), mask=chan_ok)
        target = pos - shift
        target_ok = (target >= 0) & (target < L)
        shifted = tl.load(grad_conv_ptr + rows + target[None, :], mask=chan_ok[:, None] & target_ok[None, :], other=0.0)
        grad_profile += tl.load(kernels_ptr + chans * KMAX + tap, mask=chan_ok, other=0.0)[:, None] * shifted
    tl.store(grad_profile_ptr + rows + pos[None, :], grad_profile, mask=mask)


@triton.jit
def _window_means_kernel(
    x_ptr,
    row_gate_ptr,
    col_gate_ptr,
    pooled_ptr,
    H,
    W,
    window_h,
    window_w,
    pooled_h,
    pooled_w,
    BLOCK_WH: tl.constexpr,
    BLOCK_W: tl.constexpr,
    BLOCK_PW: tl.constexpr,
):
    """Window means of x * row_gate * col_gate over full windows (floor mode), (pooled_h * pooled_w) per plane."""
    plane = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_W)
    col_in = cols < pooled_w * window_w
    col_gate = tl.load(col_gate_ptr + plane * W + cols, mask=col_in, other=0.0)
    out_cols = tl.arange(0, BLOCK_PW)
    member = ((cols // window_w)[None, :] == out_cols[:, None]) & col_in[None, :]  # column j in window q
    local = tl.arange(0, BLOCK_WH)
    row_in = local < window_h
    inv_area = 1.0 / (window_h * window_w)
    for p in range(0, pooled_h):
        rows = p * window_h + local
        mask = row_in[:, None] & col_in[None, :]
        tile = tl.load(x_ptr + plane * H * W + rows[:, None] * W + cols[None, :], mask=mask, other=0.0)
        gains = tl.load(row_gate_ptr + plane * H + rows, mask=row_in, other=0.0)
        band = tl.sum(tile.to(tl.float32) * gains[:, None], axis=0) * col_gate
        sums = tl.sum(tl.where(member, band[None, :], 0.0), axis=1) * inv_area
        tl.store(pooled_ptr + plane * pooled_h * pooled_w + p * pooled_w + out_cols, sums, mask=out_cols < pooled_w)


@triton.jit
def _channel_attention_kernel(
    pooled_ptr,
    gamma_ptr,
    beta_ptr,
    q_scale_ptr,
    k_scale_ptr,
    v_scale_ptr,
    q_bias_ptr,
    k_bias_ptr,
    v_bias_ptr,
    normed_ptr,
    rstd_ptr,
    attention_ptr,
    mean_v_ptr,
    logits_ptr,
    gate_ptr,
    C,
    N,
    head_dim,
    scaler,
    eps,
    HAS_BIAS: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """PCSA of one (sample, head) from the window means.

    GroupNorm(1) over the sample, q/k/v scales, the d x d softmax attention, logits = A mean(v), the channel gate.
    """
    b = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    base = pooled_ptr + b * C * N
    cols = tl.arange(0, BLOCK_N)
    col_ok = cols < N
    count = C * N
    sums = tl.zeros([BLOCK_C], dtype=tl.float32)
    for start in range(0, C, BLOCK_C):
        chans = start + tl.arange(0, BLOCK_C)
        mask = (chans < C)[:, None] & col_ok[None, :]
        sums += tl.sum(tl.load(base + chans[:, None] * N + cols[None, :], mask=mask, other=0.0), axis=1)
    mean = tl.sum(sums, axis=0) / count
    squares = tl.zeros([BLOCK_C], dtype=tl.float32)
    for start in range(0, C, BLOCK_C):
        chans = start + tl.arange(0, BLOCK_C)
        mask = (chans < C)[:, None] & col_ok[None, :]
        values = tl.load(base + chans[:, None] * N + cols[None, :], mask=mask, other=0.0)
        centred = tl.where(mask, values - mean, 0.0)
        squares += tl.sum(centred * centred, axis=1)
    rstd = 1.0 / tl.sqrt(tl.sum(squares, axis=0) / count + eps)
    if head == 0:
        tl.store(rstd_ptr + b, rstd)

    local = tl.arange(0, BLOCK_D)
    row_ok = local < head_dim
    rows = head * head_dim + local
    mask = row_ok[:, None] & col_ok[None, :]
    offsets = b * C * N + rows[:, None] * N + cols[None, :]
    normed = tl.where(mask, (tl.load(pooled_ptr + offsets, mask=mask, other=0.0) - mean) * rstd, 0.0)
    tl.store(normed_ptr + offsets, normed, mask=mask)
    gamma = tl.load(gamma_ptr + rows, mask=row_ok, other=0.0)
    beta = tl.load(beta_ptr + rows, mask=row_ok, other=0.0)
    y = tl.where(mask, normed * gamma[:, None] + beta[:, None], 0.0)
    q = y * tl.load(q_scale_ptr + rows, mask=row_ok, other=0.0)[:, None]
    k = y * tl.load(k_scale_ptr + rows, mask=row_ok, other=0.0)[:, None]
    mean_v = tl.sum(y, axis=1) / N * tl.load(v_scale_ptr + rows, mask=row_ok, other=0.0)
    if HAS_BIAS:
        q = tl.where(mask, q + tl.load(q_bias_ptr + rows, mask=row_ok, other=0.0)[:, None], 0.0)
        k = tl.where(mask, k + tl.load(k_bias_ptr + rows, mask=row_ok, other=0.0)[:, None], 0.0)
        mean_v += tl.load(v_bias_ptr + rows, mask=row_ok, other=0.0)
    tl.store(mean_v_ptr + b * C + rows, mean_v, mask=row_ok)

    scores = tl.dot(q, tl.trans(k), input_precision="ieee") * scaler  # (d, d): row channel against column channel
    scores = tl.where(row_ok[None, :], scores, float("-inf"))
    exps = tl.exp(scores - tl.max(scores, axis=1)[:, None])
    attention = exps / tl.sum(exps, axis=1)[:, None]
    square = row_ok[:, None] & row_ok[None, :]
    attention_offsets = ((b * (C // head_dim) + head) * head_dim + local[:, None]) * head_dim + local[None, :]
    tl.store(attention_ptr + attention_offsets, attention, mask=square)
    logits = tl.sum(tl.where(square, attention * mean_v[None, :], 0.0), axis=1)
    tl.store(logits_ptr + b * C + rows, logits, mask=row_ok)
    tl.store(gate_ptr + b * C + rows, tl.sigmoid(logits), mask=row_ok)


@triton.jit
def _channel_attention_backward_kernel(
    grad_gate_ptr,
    gate_ptr,
    attention_ptr,
    mean_v_ptr,
    logits_ptr,
    normed_ptr,
    gamma_ptr,
    beta_ptr,
    q_scale_ptr,
    k_scale_ptr,
    v_scale_ptr,
    q_bias_ptr,
    k_bias_ptr,
    grad_normed_ptr,
    partials_ptr,
    C,
    N,
    head_dim,
    scaler,
    HAS_BIAS: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Back through one (sample, head) of ``_channel_attention_kernel`` down to GroupNorm(1)'s normalised values.

    cg = sigmoid(o), o = A mean(v), A = softmax(scaler q k^T): dS = A do (mean(v)^T - o) scaler, dq = dS k,
    dk = dS^T q, d mean(v) = A^T do. Writes d normed (B, C, N) and per-sample parameter gradients into
    ``partials`` (B, 8, C): q, k, v scales, q, k, v biases, GroupNorm(1) weight and bias.
    """
    b = tl.program_id(0).to(tl.int64)
    head = tl.program_id(1)
    local = tl.arange(0, BLOCK_D)
    row_ok = local < head_dim
    rows = head * head_dim + local
    cols = tl.arange(0, BLOCK_N)
    mask = row_ok[:, None] & (cols < N)[None, :]
    square = row_ok[:, None] & row_ok[None, :]
    gate = tl.load(gate_ptr + b * C + rows, mask=row_ok, other=0.0)
    grad_logits = tl.load(grad_gate_ptr + b * C + rows, mask=row_ok, other=0.0) * gate * (1.0 - gate)
    attention_offsets = ((b * (C // head_dim) + head) * head_dim + local[:, None]) * head_dim + local[None, :]
    weighted = tl.load(attention_ptr + attention_offsets, mask=square, other=0.0) * grad_logits[:, None]
    mean_v = tl.load(mean_v_ptr + b * C + rows, mask=row_ok, other=0.0)
    logits = tl.load(logits_ptr + b * C + rows, mask=row_ok, other=0.0)
    grad_scores = weighted * (mean_v[None, :] - logits[:, None]) * scaler
    grad_mean_v = tl.sum(weighted, axis=0)  # per column channel

    offsets = b * C * N + rows[:, None] * N + cols[None, :]
    normed = tl.load(normed_ptr + offsets, mask=mask, other=0.0)
    gamma = tl.load(gamma_ptr + rows, mask=row_ok, other=0.0)
    y = tl.where(mask, normed * gamma[:, None] + tl.load(beta_ptr + rows, mask=row_ok, other=0.0)[:, None], 0.0)
    q_scale = tl.load(q_scale_ptr + rows, mask=row_ok, other=0.0)
    k_scale = tl.load(k_scale_ptr + rows, mask=row_ok, other=0.0)
    v_scale = tl.load(v_scale_ptr + rows, mask=row_ok, other=0.0)
    q = y * q_scale[:, None]
    k = y * k_scale[:, None]
    if HAS_BIAS:
        q = tl.where(mask, q + tl.load(q_bias_ptr + rows, mask=row_ok, other=0.0)[:, None], 0.0)
        k = tl.where(mask, k + tl.load(k_bias_ptr + rows, mask=row_ok, other=0.0)[:, None], 0.0)
    grad_q = tl.dot(grad_scores, k, input_precision="ieee")
    grad_k = tl.dot(tl.trans(grad_scores), q, input_precision="ieee")
    grad_v = grad_mean_v / N
    y_sums = tl.sum(y, axis=1)
    grad_y = tl.where(mask, q_scale[:, None] * grad_q + k_scale[:, None] * grad_k + (v_scale * grad_v)[:, None], 0.0)
    partials = partials_ptr + b * 8 * C + rows
    tl.store(partials, tl.sum(grad_q * y, axis=1), mask=row_ok)
    tl.store(partials + C, tl.sum(grad_k * y, axis=1), mask=row_ok)
    tl.store(partials + 2 * C, grad_v * y_sums, mask=row_ok)
    tl.store(partials + 3 * C, tl.sum(tl.where(mask, grad_q, 0.0), axis=1), mask=row_ok)
    tl.store(partials + 4 * C, tl.sum(tl.where(mask, grad_k, 0.0), axis=1), mask=row_ok)
    tl.store(partials + 5 * C, grad_mean_v, mask=row_ok)
    tl.store(partials + 6 * C, tl.sum(grad_y * normed, axis=1), mask=row_ok)
    tl.store(partials + 7 * C, tl.sum(grad_y, axis=1), mask=row_ok)
    tl.store(grad_normed_ptr + offsets, grad_y * gamma[:, None], mask=mask)


@triton.jit
def _output_kernel(
    x_ptr, row_gate_ptr, col_gate_ptr, channel_gate_ptr, out_ptr, H, W, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr
):
    """Out = x * row_gate * (channel_gate * col_gate)."""
    plane = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_W)
    col_ok = cols < W
    col_gain = tl.load(col_gate_ptr + plane * W + cols, mask=col_ok, other=0.0) * tl.load(channel_gate_ptr + plane)
    for start in range(0, H, BLOCK_H):
        rows = start + tl.arange(0, BLOCK_H)
        row_ok = rows < H
        mask = row_ok[:, None] & col_ok[None, :]
        offsets = plane * H * W + rows[:, None] * W + cols[None, :]
        tile = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        gains = tl.load(row_gate_ptr + plane * H + rows, mask=row_ok, other=0.0)
        out = tile * gains[:, None] * col_gain[None, :]
        tl.store(out_ptr + offsets, out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gate_sums_kernel(
    grad_ptr,
    x_ptr,
    row_gate_ptr,
    col_gate_ptr,
    grad_rows_ptr,
    grad_cols_ptr,
    grad_channel_ptr,
    band_ptr,
    H,
    W,
    window_h,
    pooled_h,
    BLOCK_WH: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    """Backward pass 1 of a plane, with g the output gradient.

    grad_rows[i] = sum_j g x col_gate[j]; grad_cols[j] = sum_i g x row_gate[i]; grad_channel = sum_i row_gate[i]
    grad_rows[i]; band[p, j] = sum over window row p of x row_gate (for the pooling branch's column-gate gradient).
    """
    plane = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_W)
    col_ok = cols < W
    col_gate = tl.load(col_gate_ptr + plane * W + cols, mask=col_ok, other=0.0)
    col_acc = tl.zeros([BLOCK_W], dtype=tl.float32)
    channel_acc = tl.zeros([BLOCK_WH], dtype=tl.float32)
    local = tl.arange(0, BLOCK_WH)
    for p in range(0, tl.cdiv(H, window_h)):
        rows = p * window_h + local
        row_ok = (local < window_h) & (rows < H)
        mask = row_ok[:, None] & col_ok[None, :]
        offsets = plane * H * W + rows[:, None] * W + cols[None, :]
        g = tl.load(grad_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        x = tl.load(x_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        gains = tl.load(row_gate_ptr + plane * H + rows, mask=row_ok, other=0.0)
        gx = g * x
        row_sums = tl.sum(gx * col_gate[None, :], axis=1)
        tl.store(grad_rows_ptr + plane * H + rows, row_sums, mask=row_ok)
        col_acc += tl.sum(gx * gains[:, None], axis=0)
        channel_acc += gains * row_sums
        band = tl.sum(x * gains[:, None], axis=0)
        tl.store(band_ptr + (plane * pooled_h + p) * W + cols, band, mask=col_ok & (p < pooled_h))
    tl.store(grad_cols_ptr + plane * W + cols, col_acc, mask=col_ok)
    tl.store(grad_channel_ptr + plane, tl.sum(channel_acc, axis=0))


@triton.jit
def _gate_grads_kernel(
    x_ptr,
    col_gate_ptr,
    channel_gate_ptr,
    grad_rows_ptr,
    grad_cols_ptr,
    band_ptr,
    grad_pooled_ptr,
    grad_row_gate_ptr,
    grad_col_gate_ptr,
    H,
    W,
    window_h,
    window_w,
    pooled_h,
    pooled_w,
    BLOCK_WH: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    """Backward pass 2 of a plane: the gate gradients, with s[p, j] = d window mean[p, q(j)] / window area.

    d row_gate[i] = cg grad_rows[i] + sum_j x[i, j] col_gate[j] s[p(i), j];
    d col_gate[j] = cg grad_cols[j] + sum_p s[p, j] band[p, j].
    """
    plane = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_W)
    col_ok = cols < W
    col_in = cols < pooled_w * window_w
    col_gate = tl.load(col_gate_ptr + plane * W + cols, mask=col_ok, other=0.0)
    gate = tl.load(channel_gate_ptr + plane)
    inv_area = 1.0 / (window_h * window_w)
    grad_cols = gate * tl.load(grad_cols_ptr + plane * W + cols, mask=col_ok, other=0.0)
    local = tl.arange(0, BLOCK_WH)
    for p in range(0, tl.cdiv(H, window_h)):
        rows = p * window_h + local
        row_ok = (local < window_h) & (rows < H)
        pooled_row = p < pooled_h
        spread_offsets = plane * pooled_h * pooled_w + p * pooled_w + cols // window_w
        spread = tl.load(grad_pooled_ptr + spread_offsets, mask=col_in & pooled_row, other=0.0) * inv_area
        mask = row_ok[:, None] & col_ok[None, :]
        x = tl.load(x_ptr + plane * H * W + rows[:, None] * W + cols[None, :], mask=mask, other=0.0)
        grad_rows = gate * tl.load(grad_rows_ptr + plane * H + rows, mask=row_ok, other=0.0)
        grad_rows += tl.sum(x.to(tl.float32) * (spread * col_gate)[None, :], axis=1)
        tl.store(grad_row_gate_ptr + plane * H + rows, grad_rows, mask=row_ok)
        band = tl.load(band_ptr + (plane * pooled_h + p) * W + cols, mask=col_ok & pooled_row, other=0.0)
        grad_cols += spread * band
    tl.store(grad_col_gate_ptr + plane * W + cols, grad_cols, mask=col_ok)


@triton.jit
def _input_grad_kernel(
    grad_ptr,
    row_gate_ptr,
    col_gate_ptr,
    channel_gate_ptr,
    grad_pooled_ptr,
    grad_row_means_ptr,
    grad_col_means_ptr,
    grad_x_ptr,
    H,
    W,
    window_h,
    window_w,
    pooled_h,
    pooled_w,
    BLOCK_WH: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    """Backward pass 3: dx = (g cg + s[p(i), j]) row_gate[i] col_gate[j] + d row_means[i] / W + d col_means[j] / H."""
    plane = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK_W)
    col_ok = cols < W
    col_in = cols < pooled_w * window_w
    col_gate = tl.load(col_gate_ptr + plane * W + cols, mask=col_ok, other=0.0)
    gate = tl.load(channel_gate_ptr + plane)
    inv_area = 1.0 / (window_h * window_w)
    col_term = tl.load(grad_col_means_ptr + plane * W + cols, mask=col_ok, other=0.0) / H
    local = tl.arange(0, BLOCK_WH)
    for p in range(0, tl.cdiv(H, window_h)):
        rows = p * window_h + local
        row_ok = (local < window_h) & (rows < H)
        spread_offsets = plane * pooled_h * pooled_w + p * pooled_w + cols // window_w
        spread = tl.load(grad_pooled_ptr + spread_offsets, mask=col_in & (p < pooled_h), other=0.0) * inv_area
        mask = row_ok[:, None] & col_ok[None, :]
        offsets = plane * H * W + rows[:, None] * W + cols[None, :]
        g = tl.load(grad_ptr + offsets, mask=mask, other=0.0).to(tl.float32)
        gains = tl.load(row_gate_ptr + plane * H + rows, mask=row_ok, other=0.0)
        row_term = tl.load(grad_row_means_ptr + plane * H + rows, mask=row_ok, other=0.0) / W
        grad_x = (g * gate + spread[None, :]) * gains[:, None] * col_gate[None, :] + row_term[:, None]
        grad_x += col_term[None, :]
        tl.store(grad_x_ptr + offsets, grad_x.to(grad_x_ptr.dtype.element_ty), mask=mask)


# ---- launchers and the small maths -----------------------------------------------------------------------------


def _block_w(width: int) -> int:
    return triton.next_power_of_2(width)


def _block_rows(height: int, width: int) -> int:
    """Rows per tile for the passes that need no windows: as many as fit in ``MAX_TILE`` elements."""
    return max(1, min(triton.next_power_of_2(height), MAX_TILE // _block_w(width)))


def _group_convs(params: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The four group convs' weights and biases."""
    weights = [params[_INDEX[f"{conv}.weight"]] for conv in GROUP_CONVS]
    biases = [params[_INDEX[f"{conv}.bias"]] for conv in GROUP_CONVS]
    return weights, biases


def _normalize(values: torch.Tensor, groups: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """GroupNorm without affine of a (B, C, L) tensor: normalised values and 1 / std per (sample, group)."""
    grouped = values.reshape(values.shape[0], groups, -1)
    var, mean = torch.var_mean(grouped, dim=-1, correction=0, keepdim=True)
    rstd = torch.rsqrt(var + eps)
    return ((grouped - mean) * rstd).view_as(values), rstd.view(values.shape[0], groups)


def _normalize_backward(grad_normed: torch.Tensor, normed: torch.Tensor, rstd: torch.Tensor) -> torch.Tensor:
    """Gradient of ``_normalize``'s input from that of its output: rstd (dn - mean(dn) - normed mean(dn normed))."""
    b, groups = rstd.shape
    dn, n = grad_normed.reshape(b, groups, -1), normed.reshape(b, groups, -1)
    mean_dn = dn.mean(dim=-1, keepdim=True)
    mean_dn_n = (dn * n).mean(dim=-1, keepdim=True)
    return ((dn - mean_dn - n * mean_dn_n) * rstd.unsqueeze(-1)).view_as(grad_normed)


def _padded_kernels(weights: list[torch.Tensor]) -> torch.Tensor:
    """The four groups' (C/4, 1, k) conv kernels as one (C, longest k) tensor, each zero-padded on both sides."""
    longest = max(weight.shape[-1] for weight in weights)
    return torch.cat(
        [F.pad(weight.view(weight.shape[0], -1), ((longest - weight.shape[-1]) // 2,) * 2) for weight in weights]
    )


def _profile_gates(
    profile: torch.Tensor, kernels: torch.Tensor, bias: torch.Tensor, gamma, beta, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SMSA gate of a (B, C, L) profile (one Triton program per sample and group); returns normed, gate, rstd."""
    b, c, length = profile.shape
    normed, gate = torch.empty_like(profile), torch.empty_like(profile)
    rstd = torch.empty(b, GROUPS, dtype=profile.dtype, device=profile.device)
    group_chans = c // GROUPS
    _profile_gates_kernel[(b, GROUPS)](
        profile, kernels, bias, gamma, beta, normed, gate, rstd, c, length, group_chans, eps,
        KMAX=kernels.shape[1], BLOCK_C=triton.next_power_of_2(group_chans), BLOCK_L=triton.next_power_of_2(length),
    )  # fmt: skip
    return normed, gate, rstd


def _profile_gates_backward(
    grad_gate: torch.Tensor,
    profile: torch.Tensor,
    normed: torch.Tensor,
    gate: torch.Tensor,
    rstd: torch.Tensor,
    kernels: torch.Tensor,
    gamma: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Back through sigmoid, GroupNorm(4) and the group convs of ``_profile_gates``.

    Returns:
        (tuple): d profile (B, C, L), d padded kernels (C, longest k), d conv bias (C), d gamma (C), d beta (C).
    """
    b, c, length = profile.shape
    group_chans = c // GROUPS
    grad_conv, grad_profile = torch.empty_like(profile), torch.empty_like(profile)
    grad_kernels = profile.new_empty(b, c, kernels.shape[1])
    grad_bias, grad_gamma, grad_beta = (profile.new_empty(b, c) for _ in range(3))
    _profile_gates_backward_kernel[(b, GROUPS)](
        grad_gate, profile, normed, gate, rstd, kernels, gamma, grad_conv, grad_profile, grad_kernels, grad_bias,
        grad_gamma, grad_beta, c, length, group_chans,
        KMAX=kernels.shape[1], BLOCK_C=triton.next_power_of_2(group_chans), BLOCK_L=triton.next_power_of_2(length),
    )  # fmt: skip
    return grad_profile, *(_batch_sum(grad) for grad in (grad_kernels, grad_bias, grad_gamma, grad_beta))


def _batch_sum(per_sample: torch.Tensor) -> torch.Tensor:
    """Sum over the leading batch axis (a view of the only sample at batch 1: one launch fewer per gradient)."""
    return per_sample[0] if per_sample.shape[0] == 1 else per_sample.sum(0)


def _project(
    pooled_normed: torch.Tensor, params: list[torch.Tensor], heads: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """GroupNorm(1)'s affine and the q, k scales: y (B, C, N), q and k (B, heads, d, N), and the v scale/bias."""
    b, c, n = pooled_normed.shape
    y = torch.addcmul(params[_INDEX["norm.bias"]][:, None], pooled_normed, params[_INDEX["norm.weight"]][:, None])
    scales = [params[_INDEX[f"{name}.weight"]].view(c, 1) for name in "qk"]
    has_bias = params[_INDEX["q.bias"]].numel() > 0
    q, k = (
        torch.addcmul(params[_INDEX[f"{name}.bias"]][:, None], y, scale) if has_bias else y * scale
        for name, scale in zip("qk", scales)
    )
    return y, q.view(b, heads, c // heads, n), k.view(b, heads, c // heads, n), has_bias


def _channel_attention(
    pooled: torch.Tensor, params: list[torch.Tensor], heads: int, scaler: float, eps: float
) -> tuple[torch.Tensor, ...]:
    """PCSA from the (B, C, N) window means: normed, rstd (B,), attention, mean(v), logits, channel gate.

    One Triton program per (sample, head) within ``MAX_HEAD_DIM`` and ``MAX_ATTENTION_OPERAND`` (every YOLOv8n block
    at 640 is); tensor ops otherwise.
    """
    b, c, n = pooled.shape
    head_dim = c // heads
    block_d, block_n = _attention_blocks(head_dim, n)
    has_bias = params[_INDEX["q.bias"]].numel() > 0
    if _attention_in_program(head_dim, n):
        normed, rstd = torch.empty_like(pooled), pooled.new_empty(b)
        attention = pooled.new_empty(b, heads, head_dim, head_dim)
        mean_v, logits, gate = (pooled.new_empty(b, c) for _ in range(3))
        scales = [params[_INDEX[f"{name}.weight"]] for name in "qkv"]
        biases = [params[_INDEX[f"{name}.bias"]] if has_bias else scales[0] for name in "qkv"]  # unread stand-ins
        try:
            _channel_attention_kernel[(b, heads)](
                pooled, params[_INDEX["norm.weight"]], params[_INDEX["norm.bias"]], *scales, *biases,
                normed, rstd, attention, mean_v, logits, gate, c, n, head_dim, scaler, eps,
                HAS_BIAS=has_bias, BLOCK_C=max(1, min(triton.next_power_of_2(c), MAX_TILE // block_n)),
                BLOCK_D=block_d, BLOCK_N=block_n, num_warps=8 if block_d >= 128 else 4,
            )  # fmt: skip
            return normed, rstd, attention, mean_v, logits, gate
        except OutOfResources:  # raised when compiled for this card, before it runs: tensor ops from now on
            _out_of_resources.add((block_d, block_n))
    normed, rstd = _normalize(pooled, 1, eps)
    y, q, k, has_bias = _project(normed, params, heads)
    mean_v = params[_INDEX["v.weight"]].view(c) * y.mean(dim=-1)
    if has_bias:
        mean_v = mean_v + params[_INDEX["v.bias"]]
    attention = (q @ k.transpose(-2, -1) * scaler).softmax(dim=-1)  # (B, heads, d, d)
    logits = (attention @ mean_v.view(b, heads, -1, 1)).view(b, c)
    return normed, rstd.view(b), attention, mean_v, logits, torch.sigmoid(logits)


def _channel_attention_backward(
    grad_channel_gate: torch.Tensor,
    channel_gate: torch.Tensor,
    attention: torch.Tensor,
    mean_v: torch.Tensor,
    logits: torch.Tensor,
    pooled_normed: torch.Tensor,
    pooled_rstd: torch.Tensor,
    params: list[torch.Tensor],
    heads: int,
    scaler: float,
    grads: dict[str, torch.Tensor],
) -> torch.Tensor:
    """Back through ``_channel_attention`` to the (B, C, N) window means, adding the PCSA parameter grads to ``grads``.

    One Triton program per (sample, head) where ``_channel_attention`` ran one, tensor ops otherwise; GroupNorm(1)'s
    backward across the heads as tensor ops.
    """
    b, c, n = pooled_normed.shape
    d = c // heads
    has_bias = params[_INDEX["q.bias"]].numel() > 0
    names = ("q.weight", "k.weight", "v.weight", "q.bias", "k.bias", "v.bias", "norm.weight", "norm.bias")
    if _attention_in_program(d, n):
        grad_normed, partials = torch.empty_like(pooled_normed), pooled_normed.new_empty(b, len(names), c)
        scales = [params[_INDEX[f"{name}.weight"]] for name in "qkv"]
        biases = [params[_INDEX[f"{name}.bias"]] if has_bias else scales[0] for name in "qk"]  # unread stand-ins
        block_d, block_n = _attention_blocks(d, n)
        try:
            _channel_attention_backward_kernel[(b, heads)](
                grad_channel_gate, channel_gate, attention, mean_v, logits, pooled_normed,
                params[_INDEX["norm.weight"]], params[_INDEX["norm.bias"]], *scales, *biases, grad_normed, partials,
                c, n, d, scaler, HAS_BIAS=has_bias, BLOCK_D=block_d, BLOCK_N=block_n, num_warps=8 if d > 64 else 4,
            )  # fmt: skip
            summed = _batch_sum(partials)
            absent = () if has_bias else ("q.bias", "k.bias", "v.bias")
            grads.update({name: summed[i] for i, name in enumerate(names) if name not in absent})
            return _normalize_backward(grad_normed, pooled_normed, pooled_rstd.view(b, 1)).contiguous()
        except OutOfResources:  # as in _channel_attention
            _out_of_resources.add((block_d, block_n))
    # cg = sigmoid(o), o = A mean_v, A = softmax(scaler q k^T); dS = A do (mean_v^T - o) scaler.
    grad_logits = (grad_channel_gate * channel_gate * (1 - channel_gate)).view(b, heads, d, 1)
    weighted = attention * grad_logits
    grad_scores = weighted * (mean_v.view(b, heads, 1, d) - logits.view(b, heads, d, 1)) * scaler
    grad_mean_v = weighted.sum(dim=2).reshape(b, c)
    y, q, k, has_bias = _project(pooled_normed, params, heads)
    grad_q = (grad_scores @ k).view(b, c, n)
    grad_k = (grad_scores.transpose(-2, -1) @ q).view(b, c, n)
    grad_v = grad_mean_v / n  # at every pooled pixel
    grads["q.weight"] = (grad_q * y).sum(dim=(0, 2))
    grads["k.weight"] = (grad_k * y).sum(dim=(0, 2))
    grads["v.weight"] = (grad_v * y.sum(dim=2)).sum(dim=0)
    if has_bias:
        grads["q.bias"], grads["k.bias"] = grad_q.sum(dim=(0, 2)), grad_k.sum(dim=(0, 2))
        grads["v.bias"] = grad_mean_v.sum(dim=0)
    scale = {name: params[_INDEX[f"{name}.weight"]].view(c, 1) for name in "qkv"}
    grad_y = scale["q"] * grad_q + scale["k"] * grad_k + scale["v"] * grad_v.unsqueeze(-1)
    grads["norm.weight"] = (grad_y * pooled_normed).sum(dim=(0, 2))
    grads["norm.bias"] = grad_y.sum(dim=(0, 2))
    return _normalize_backward(
        grad_y * params[_INDEX["norm.weight"]][:, None], pooled_normed, pooled_rstd.view(b, 1)
    ).contiguous()


def _attention_blocks(head_dim: int, pooled: int) -> tuple[int, int]:
    """BLOCK_D and BLOCK_N of the channel-attention programs (``tl.dot`` takes sides of 16 and more)."""
    return max(16, triton.next_power_of_2(head_dim)), max(16, triton.next_power_of_2(pooled))


def _attention_in_program(head_dim: int, pooled: int) -> bool:
    """Whether a head of ``head_dim`` channels over ``pooled`` window means fits the channel-attention programs."""
    block_d, block_n = _attention_blocks(head_dim, pooled)
    return (
        block_d <= MAX_HEAD_DIM
        and block_d * block_n <= MAX_ATTENTION_OPERAND
        and (block_d, block_n) not in _out_of_resources
    )


def _geometry(x: torch.Tensor, window_h: int, window_w: int) -> tuple[int, int, int, int, int, int]:
    b, c, h, w = x.shape
    return b, c, h, w, h // window_h, w // window_w


def _outside_autocast(function: Callable[..., list[torch.Tensor]]) -> Callable[..., list[torch.Tensor]]:
    """Run ``function`` with autocast off on its first argument's device.

    Autocast has no rule for the op, so its kernel is called with autocast still on: the small maths' tensor ops
    (matmuls, GroupNorm statistics) would drop to float16 under AMP, and the statistics would leave the float32
    the fake promises.
    """

    @functools.wraps(function)
    def run(*args):
        with torch.autocast(args[0].device.type, enabled=False):
            return function(*args)

    return run


@_outside_autocast
def forward(
    x: torch.Tensor,
    params: list[torch.Tensor],
    window_h: int,
    window_w: int,
    heads: int,
    scaler: float,
    eps_h: float,
    eps_w: float,
    eps: float,
    keep_statistics: bool,
) -> list[torch.Tensor]:
    """The op's forward on a CUDA tensor (or a CPU tensor under Triton's interpreter); see ``scsa_fused.scsa``.

    Raises:
        TypeError: For inputs other than float32, float16 and bfloat16 (the fake promises float64 statistics for
            float64 inputs, which these float32 passes do not give).
    """
    if x.dtype not in INPUT_DTYPES:
        raise TypeError(f"scsa_yolo::scsa on CUDA takes float32, float16 or bfloat16 inputs, got {x.dtype}")
    x = x.contiguous()
    params = [p.float() for p in params]
    b, c, h, w, pooled_h, pooled_w = _geometry(x, window_h, window_w)
    planes, block_w = b * c, _block_w(w)
    block_wh = triton.next_power_of_2(window_h)
    stats = {"dtype": torch.float32, "device": x.device}

    row_means, col_means = torch.empty(b, c, h, **stats), torch.empty(b, c, w, **stats)
    _profiles_kernel[(planes,)](x, row_means, col_means, h, w, BLOCK_H=_block_rows(h, w), BLOCK_W=block_w)
    weights, biases = _group_convs(params)
    kernels, bias = _padded_kernels(weights), torch.cat(biases)
    row_normed, row_gate, row_rstd = _profile_gates(
        row_means, kernels, bias, params[_INDEX["norm_h.weight"]], params[_INDEX["norm_h.bias"]], eps_h
    )
    col_normed, col_gate, col_rstd = _profile_gates(
        col_means, kernels, bias, params[_INDEX["norm_w.weight"]], params[_INDEX["norm_w.bias"]], eps_w
    )

    pooled = torch.empty(b, c, pooled_h * pooled_w, **stats)
    _window_means_kernel[(planes,)](
        x, row_gate, col_gate, pooled, h, w, window_h, window_w, pooled_h, pooled_w,
        BLOCK_WH=block_wh, BLOCK_W=block_w, BLOCK_PW=triton.next_power_of_2(pooled_w),
    )  # fmt: skip
    pooled_normed, pooled_rstd, attention, mean_v, logits, channel_gate = _channel_attention(
        pooled, params, heads, scaler, eps
    )

    out = torch.empty_like(x)
    _output_kernel[(planes,)](
        x, row_gate, col_gate, channel_gate, out, h, w, BLOCK_H=_block_rows(h, w), BLOCK_W=block_w
    )
    if not keep_statistics:
        return [out]
    return [
        out, row_means, col_means, row_normed, col_normed, row_gate, col_gate, row_rstd, col_rstd,
        pooled_normed, pooled_rstd, attention, mean_v, logits, channel_gate,
    ]  # fmt: skip


@_outside_autocast
def backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    params: list[torch.Tensor],
    saved: list[torch.Tensor],
    window_h: int,
    window_w: int,
    heads: int,
    scaler: float,
    input_needs_grad: bool,
) -> list[torch.Tensor]:
    """The op's backward (see ``scsa_fused.scsa_backward``): [d x (empty if not needed), *parameter gradients]."""
    x, grad = x.contiguous(), grad.contiguous()
    param_dtypes = [p.dtype for p in params]
    params = [p.float() for p in params]
    (
        row_means, col_means, row_normed, col_normed, row_gate, col_gate, row_rstd, col_rstd,
        pooled_normed, pooled_rstd, attention, mean_v, logits, channel_gate,
    ) = saved  # fmt: skip
    b, c, h, w, pooled_h, pooled_w = _geometry(x, window_h, window_w)
    planes, block_w, block_wh = b * c, _block_w(w), triton.next_power_of_2(window_h)
    stats = {"dtype": torch.float32, "device": x.device}
    grads: dict[str, torch.Tensor] = {}

    grad_rows, grad_cols = torch.empty(b, c, h, **stats), torch.empty(b, c, w, **stats)
    grad_channel_gate = torch.empty(b, c, **stats)
    band = torch.empty(b, c, pooled_h, w, **stats)
    _gate_sums_kernel[(planes,)](
        grad, x, row_gate, col_gate, grad_rows, grad_cols, grad_channel_gate, band, h, w, window_h, pooled_h,
        BLOCK_WH=block_wh, BLOCK_W=block_w,
    )  # fmt: skip

    grad_pooled = _channel_attention_backward(
        grad_channel_gate, channel_gate, attention, mean_v, logits, pooled_normed, pooled_rstd, params, heads, scaler,
        grads,
    )  # fmt: skip

    grad_row_gate, grad_col_gate = torch.empty(b, c, h, **stats), torch.empty(b, c, w, **stats)
    _gate_grads_kernel[(planes,)](
        x, col_gate, channel_gate, grad_rows, grad_cols, band, grad_pooled, grad_row_gate, grad_col_gate,
        h, w, window_h, window_w, pooled_h, pooled_w, BLOCK_WH=block_wh, BLOCK_W=block_w,
    )  # fmt: skip

    weights, _ = _group_convs(params)
    kernels = _padded_kernels(weights)
    grad_profiles, grad_kernels, grad_bias = [], 0, 0
    for axis, grad_gate, profile, normed, gate, rstd in (
        ("h", grad_row_gate, row_means, row_normed, row_gate, row_rstd),
        ("w", grad_col_gate, col_means, col_normed, col_gate, col_rstd),
    ):
        grad_profile, axis_kernels, axis_bias, grad_gamma, grad_beta = _profile_gates_backward(
            grad_gate, profile, normed, gate, rstd, kernels, params[_INDEX[f"norm_{axis}.weight"]]
        )
        grad_profiles.append(grad_profile)
        grads[f"norm_{axis}.weight"], grads[f"norm_{axis}.bias"] = grad_gamma, grad_beta
        grad_kernels, grad_bias = grad_kernels + axis_kernels, grad_bias + axis_bias
    group_chans = c // GROUPS
    for group, (conv, weight) in enumerate(zip(GROUP_CONVS, weights)):
        channels = slice(group * group_chans, (group + 1) * group_chans)
        start = (kernels.shape[1] - weight.shape[-1]) // 2  # the padded kernel is centred
        grads[f"{conv}.weight"] = grad_kernels[channels, start : start + weight.shape[-1]]
        grads[f"{conv}.bias"] = grad_bias[channels]

    grad_x = x.new_empty(0)
    if input_needs_grad:
        grad_x = torch.empty_like(x)
        _input_grad_kernel[(planes,)](
            grad, row_gate, col_gate, channel_gate, grad_pooled, *grad_profiles, grad_x,
            h, w, window_h, window_w, pooled_h, pooled_w, BLOCK_WH=block_wh, BLOCK_W=block_w,
        )  # fmt: skip
    grad_params = [
        grads[name].reshape(param.shape).to(dtype) if name in grads else torch.zeros_like(param, dtype=dtype)
        for name, param, dtype in zip(PARAMETERS, params, param_dtypes)
    ]
    return [grad_x, *grad_params]
