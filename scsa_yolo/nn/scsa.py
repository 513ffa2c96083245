"""SCSA: Spatial and Channel Synergistic Attention.

Paper: "SCSA: Exploring the Synergistic Effects Between Spatial and Channel Attention", Si et al., 2024,
https://arxiv.org/abs/2407.05128 (Neurocomputing 2025). Official code: https://github.com/HZAI-ZJNU/SCSA
(`mmpretrain/models/attentions/SCSA.py`).

SCSA runs two parts in sequence on a (B, C, H, W) map and keeps its shape:

* SMSA (shareable multi-semantic spatial attention): the row and column mean profiles (B, C, H) and (B, C, W) are split
  into four channel groups, each filtered by its own depthwise 1-D conv (kernels 3, 5, 7, 9). The same four convs
  serve both profiles; each profile then has its own GroupNorm(4) and a sigmoid gate, and the input is multiplied by
  both gates.
* PCSA (progressive channel-wise self-attention): the spatially gated map is average-pooled with a 7x7 window,
  normalised by GroupNorm(1) and scaled per channel into q, k, v; channels are the tokens (their pooled pixels are the
  features) in a softmax self-attention scaled by head_dim^-0.5, whose spatial mean goes through a sigmoid to give
  one gate per channel.

Output: channel gate x spatially gated input. Parameter names and shapes match the official module, so its
``state_dict`` loads with ``strict=True``; the learnable parameter count is 16 * C.

Three implementations of the same maths serve this class. Where a kernel applies, ``SCSA.forward`` runs the whole block
as one registered op, ``torch.ops.scsa_yolo.scsa`` (``scsa_yolo.nn.scsa_fused``): on CPU a fused C++ kernel with a
hand-written backward (compiled on first use), on CUDA a Triton kernel (opt-in, ``SCSA_YOLO_CUDA_KERNEL=1``, until its
GPU speed is measured), for the avg-pool sigmoid-gate configuration of every official config, no active attention
dropout, float32/float64 on CPU and float32/float16/bfloat16 on CUDA, eager mode or ``torch.compile`` (see
``uses_kernel``). Everywhere else (other devices or dtypes, the other options, TorchScript tracing and export) it runs a
fast path of PyTorch ops: the four depthwise convs run as one conv with their kernels zero-padded to the longest one,
over the H and W profiles joined along the length with a zero gap (so neither sees the other); q, k and v are
per-channel scales applied in one broadcast multiply; the spatial mean of ``attn @ v`` is taken as ``attn @ mean(v)``;
the average pooling is a window sum whose 1 / window-area factor is folded into the GroupNorm epsilon (GroupNorm(a * x,
eps) == GroupNorm(x, eps / a**2)); and the channel gate is folded into the column gate, so the map is multiplied twice
instead of three times. The op and this path return the same outputs and gradients as the straightforward port,
``SCSA.forward_reference``, up to float rounding (about 1e-6), and use the official parameters, so ``state_dict`` is
unchanged. ``max_pool`` mode multiplies by both gates before pooling, as pooling a max cannot be folded. In eager
training (grad enabled, not tracing) the avg-pool path runs its three full-size steps as custom autograd Functions with
hand-written backward passes that share one gradient buffer for the input: on CPU each fresh full-size buffer costs page
faults comparable to the arithmetic, and autograd of the plain ops allocates about ten per step. Traced graphs
(TorchScript, ONNX), inference, ``torch.func`` transforms and forward-mode AD use the plain ops (which, unlike those
Functions and the op, also take double backward there).

Submodules with hooks (FLOP counters, feature taps, pruning, weight norm) make ``forward`` run ``forward_reference``,
the only formulation that calls them (the op and the fast path read their parameters directly).

Deviations from the official code, none of which changes an output the official code produces beyond float rounding:

* Maps smaller than the window: the official ``AvgPool2d(7, 7)`` raises for H < 7 or W < 7. Here the window along
  an axis shrinks to that axis' length (``min(window_size, H)`` by ``min(window_size, W)``), so a short axis is
  averaged whole. For H, W >= window_size this is the official pooling, floor mode included.
* Channel counts that GroupNorm(4) or the head split cannot take raise a ``ValueError`` naming the count at
  construction, instead of a GroupNorm or reshape traceback.
* The arguments the official module accepts but never uses (``fuse_bn``, ``norm_cfg``, ``act_cfg``) and the
  ``down_sample_mode='recombination'`` branch, which raises ``AttributeError`` there, are left out.
* Two non-persistent buffers (a gather index for the padded kernels and a zero) serve the fast path; they are not in
  the ``state_dict``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scsa_yolo.nn import scsa_fused

__all__ = ["SCSA"]

GATES: dict[str, Callable[[int], nn.Module]] = {"sigmoid": lambda dim: nn.Sigmoid(), "softmax": nn.Softmax}
"""Gate name to a constructor taking the axis a softmax gate normalises over (space in SMSA, channels in PCSA)."""

POOLS = {"avg_pool": F.avg_pool2d, "max_pool": F.max_pool2d}
"""Down-sampling mode name to the pooling function PCSA compresses with."""

KERNEL_PARAMETERS: tuple[tuple[str, str], ...] = tuple(tuple(name.split(".")) for name in scsa_fused.PARAMETERS)
"""(submodule, parameter) of each tensor the op takes, in its order."""
KERNEL_MODULES = tuple(dict.fromkeys(module for module, _ in KERNEL_PARAMETERS))
"""Submodules whose parameters the op reads (it never calls them)."""
QKV_BIASES = tuple(
    index for index, (module, name) in enumerate(KERNEL_PARAMETERS) if name == "bias" and module in "qkv"
)
"""Positions of the q, k and v biases among the op's parameters (empty tensors when the block has none)."""


class SCSA(nn.Module):
    """Spatial and Channel Synergistic Attention (SMSA followed by PCSA); keeps the input shape.

    Attributes:
        local_dwc, global_dwc_s, global_dwc_m, global_dwc_l (nn.Conv1d): Depthwise 1-D convs, one per channel group,
            shared by the H and W profiles.
        norm_h, norm_w (nn.GroupNorm): GroupNorm(4, C) of the H and W profiles.
        norm (nn.GroupNorm): GroupNorm(1, C) of the pooled map.
        q, k, v (nn.Conv2d): Per-channel 1x1 scalings (depthwise, no bias by default).
    """

    def __init__(
        self,
        c1: int,
        head_num: int = 1,
        window_size: int = 7,
        group_kernel_sizes: Sequence[int] = (3, 5, 7, 9),
        qkv_bias: bool = False,
        down_sample_mode: str = "avg_pool",
        attn_drop_ratio: float = 0.0,
        gate_layer: str = "sigmoid",
    ) -> None:
        """Build the block for ``c1`` channels.

        Args:
            c1 (int): Input (and output) channels; a multiple of 4 and of ``head_num``.
            head_num (int): Attention heads in PCSA; 1 in every official config.
            window_size (int): Side of the PCSA pooling window; -1 pools the whole map to 1x1.
            group_kernel_sizes (Sequence[int]): Kernel sizes of the four SMSA channel groups (odd).
            qkv_bias (bool): Whether q, k and v have a bias.
            down_sample_mode (str): 'avg_pool' (official default) or 'max_pool'.
            attn_drop_ratio (float): Dropout on the channel attention matrix.
            gate_layer (str): 'sigmoid' (official default) or 'softmax'.

        Raises:
            ValueError: If an argument is outside what the block can build (the message names it).
        """
        super().__init__()
        if c1 <= 0 or c1 % 4:
            raise ValueError(f"SCSA needs channels divisible by 4 (one group per SMSA kernel size), got c1={c1}")
        if head_num <= 0 or c1 % head_num:
            raise ValueError(f"SCSA needs channels divisible by head_num, got c1={c1}, head_num={head_num}")
        if len(group_kernel_sizes) != 4 or any(k % 2 == 0 for k in group_kernel_sizes):
            raise ValueError(f"SCSA needs four odd group_kernel_sizes, got {tuple(group_kernel_sizes)}")
        if window_size == 0 or window_size < -1:
            raise ValueError(f"SCSA window_size must be positive or -1 (global), got {window_size}")
        if down_sample_mode not in POOLS:
            raise ValueError(f"SCSA down_sample_mode must be one of {sorted(POOLS)}, got {down_sample_mode!r}")
        if gate_layer not in GATES:
            raise ValueError(f"SCSA gate_layer must be one of {sorted(GATES)}, got {gate_layer!r}")

        self.dim = c1
        self.head_num = head_num
        self.head_dim = c1 // head_num
        self.scaler = self.head_dim**-0.5
        self.window_size = window_size
        self.group_chans = group_chans = c1 // 4
        self.down_sample_mode = down_sample_mode
        self.gate_layer = gate_layer

        def depthwise_1d(kernel: int) -> nn.Conv1d:
            return nn.Conv1d(group_chans, group_chans, kernel, padding=kernel // 2, groups=group_chans)

        kernel_s, kernel_m, kernel_l, kernel_xl = group_kernel_sizes
        self.local_dwc = depthwise_1d(kernel_s)
        self.global_dwc_s = depthwise_1d(kernel_m)
        self.global_dwc_m = depthwise_1d(kernel_l)
        self.global_dwc_l = depthwise_1d(kernel_xl)
        self.norm_h = nn.GroupNorm(4, c1)
        self.norm_w = nn.GroupNorm(4, c1)
        self.sa_gate = GATES[gate_layer](2)
        self.ca_gate = GATES[gate_layer](1)

        self.norm = nn.GroupNorm(1, c1)
        self.q = nn.Conv2d(c1, c1, 1, bias=qkv_bias, groups=c1)
        self.k = nn.Conv2d(c1, c1, 1, bias=qkv_bias, groups=c1)
        self.v = nn.Conv2d(c1, c1, 1, bias=qkv_bias, groups=c1)
        self.attn_drop = nn.Dropout(attn_drop_ratio)

        self._prepare_fast_path()

    def _prepare_fast_path(self) -> None:
        """Derive the fast path's helpers from the four convs: the padded-kernel gather index, bias offset, a zero.

        The fast path gathers the four kernels, zero-padded to the longest, and the four biases from one flat
        concatenation of the parameters, so the state_dict keeps the official layout.
        """
        convs = self._group_convs()
        group_chans, device = self.group_chans, self.local_dwc.weight.device
        self.longest_kernel = max(conv.weight.shape[-1] for conv in convs)
        weight_numel = sum(conv.weight.numel() for conv in convs)
        zero_slot = weight_numel + self.dim  # the zero appended after all weights and biases
        kernel_index = torch.full((self.dim, self.longest_kernel), zero_slot, dtype=torch.long)
        offset = 0
        for group, conv in enumerate(convs):
            kernel = conv.weight.shape[-1]
            start = (self.longest_kernel - kernel) // 2
            rows = slice(group * group_chans, (group + 1) * group_chans)
            kernel_index[rows, start : start + kernel] = offset + torch.arange(group_chans * kernel).view(-1, kernel)
            offset += group_chans * kernel
        self.bias_offset = weight_numel
        self.register_buffer("kernel_index", kernel_index.flatten().to(device), persistent=False)
        self.register_buffer("zero", torch.zeros(1, device=device, dtype=self.local_dwc.weight.dtype), persistent=False)

    def __setstate__(self, state: dict) -> None:
        """Unpickle (checkpoints pickle whole modules), re-deriving helpers that older versions did not store."""
        super().__setstate__(state)
        if "kernel_index" not in self._buffers:
            self._prepare_fast_path()

    def extra_repr(self) -> str:
        """Summarise the hyper-parameters in ``print(model)``."""
        return (
            f"c1={self.dim}, head_num={self.head_num}, window_size={self.window_size}, "
            f"down_sample_mode={self.down_sample_mode!r}, gate_layer={self.gate_layer!r}"
        )

    def _group_convs(self) -> tuple[nn.Conv1d, nn.Conv1d, nn.Conv1d, nn.Conv1d]:
        """The four depthwise convs in channel-group order."""
        return self.local_dwc, self.global_dwc_s, self.global_dwc_m, self.global_dwc_l

    def _multi_semantic(self, profile: torch.Tensor) -> torch.Tensor:
        """Filter each channel group of a (B, C, L) profile with its own depthwise conv; returns (B, C, L)."""
        groups = profile.split(self.group_chans, dim=1)
        return torch.cat([conv(group) for conv, group in zip(self._group_convs(), groups)], dim=1)

    def _window(self, h: int, w: int) -> tuple[int, int]:
        """PCSA pooling window for an (h, w) map: ``window_size`` per axis, shrunk to axes shorter than it."""
        if isinstance(h, torch.Tensor) and self.down_sample_mode == "avg_pool":
            # Traced sizes (TorchScript, ONNX): keep the shrink in the graph, so a dynamic export pools like PyTorch
            # at every input size; a Python min() would freeze the traced map's window (and a window longer than a
            # later map gave a zero-sized Reshape that ONNX Runtime rejects).
            return (h, w) if self.window_size == -1 else (h.clamp(max=self.window_size), w.clamp(max=self.window_size))
        if h < 1 or w < 1:
            raise ValueError(f"SCSA got an empty {h}x{w} map")
        if self.window_size == -1:
            return h, w
        if (h < self.window_size or w < self.window_size) and torch.jit.is_tracing():
            warnings.warn(
                f"SCSA traced on a {h}x{w} map, smaller than its {self.window_size}x{self.window_size} window: the "
                f"exported graph pools with a {min(self.window_size, h)}x{min(self.window_size, w)} window at every "
                "input size. Export at the image size you deploy at (P5 >= 7 px, i.e. imgsz >= 224, for dynamic use).",
                stacklevel=2,
            )
        return min(self.window_size, h), min(self.window_size, w)

    def _compress(self, x: torch.Tensor) -> torch.Tensor:
        """Pool (B, C, H, W) to (B, C, H', W') with the PCSA window, shrunk to the map on axes shorter than it."""
        if self.window_size == -1:
            return x.mean(dim=(2, 3), keepdim=True)
        window = self._window(x.shape[2], x.shape[3])
        return POOLS[self.down_sample_mode](x, window, window)

    def forward_reference(self, x: torch.Tensor) -> torch.Tensor:
        """Apply SMSA, then PCSA, op for op as the official code does (the reference for the fast ``forward``).

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Output of shape (B, C, H, W).
        """
        b, c = x.shape[:2]
        attn_h = self.sa_gate(self.norm_h(self._multi_semantic(x.mean(dim=3))))  # (B, C, H)
        attn_w = self.sa_gate(self.norm_w(self._multi_semantic(x.mean(dim=2))))  # (B, C, W)
        x = x * attn_h.unsqueeze(3) * attn_w.unsqueeze(2)

        y = self.norm(self._compress(x))  # (B, C, H', W')
        q, k, v = (proj(y).reshape(b, self.head_num, self.head_dim, -1) for proj in (self.q, self.k, self.v))
        attn = self.attn_drop((q @ k.transpose(-2, -1) * self.scaler).softmax(dim=-1))  # (B, heads, d, d)
        channel_attn = (attn @ v).mean(dim=-1).reshape(b, c, 1, 1)
        return self.ca_gate(channel_attn) * x

    def _gate(self, logits: torch.Tensor, dim: int) -> torch.Tensor:
        """The configured gate (sigmoid, or softmax over ``dim``) as one functional call."""
        return torch.sigmoid(logits) if self.gate_layer == "sigmoid" else logits.softmax(dim)

    def _spatial_gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SMSA gates of a (B, C, H, W) map: (B, C, H) for rows and (B, C, W) for columns.

        Both profiles go through one depthwise conv: they are joined along the length with zero gaps of half the
        longest kernel, which is exactly the zero padding each would get alone, and the kernel of each channel is
        its group's kernel zero-padded to the longest one.
        """
        return self._gates_from_profiles(x.mean(dim=3), x.mean(dim=2))

    def _gates_from_profiles(
        self, row_means: torch.Tensor, col_means: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """SMSA gates from the (B, C, H) row and (B, C, W) column mean profiles (see ``_spatial_gates``)."""
        b, c, h = row_means.shape
        gap = self.longest_kernel // 2
        zeros = self.zero.view(1, 1, 1).expand(b, c, gap)
        profiles = torch.cat((zeros, row_means, zeros, col_means, zeros), dim=2)
        flat = torch.cat([p.reshape(-1) for p in self._flat_conv_params()] + [self.zero])
        kernels = flat.index_select(0, self.kernel_index).view(c, 1, self.longest_kernel)
        filtered = F.conv1d(profiles, kernels, flat[self.bias_offset : self.bias_offset + c], groups=c)
        # Output position i is centred on padded position i + gap: rows start at 0, columns after the middle gap.
        rows = F.group_norm(filtered[..., :h], 4, self.norm_h.weight, self.norm_h.bias, self.norm_h.eps)
        cols = F.group_norm(filtered[..., h + gap :], 4, self.norm_w.weight, self.norm_w.bias, self.norm_w.eps)
        return self._gate(rows, -1), self._gate(cols, -1)

    def _flat_conv_params(self) -> list[torch.Tensor]:
        """The four conv weights, then the four biases, in the order ``kernel_index`` and ``bias_offset`` assume."""
        convs = self._group_convs()
        return [conv.weight for conv in convs] + [conv.bias for conv in convs]

    def _channel_logits(self, pooled: torch.Tensor, window_area: int) -> torch.Tensor:
        """PCSA before its gate: (B, C) logits from the (B, C, H', W') pooled map (window sums when avg-pooling).

        Args:
            pooled (torch.Tensor): Window sums (``window_area`` > 1 means divide by it) or maxima, (B, C, H', W').
            window_area (int): Pixels per pooling window for sums, 1 for maxima.

        Returns:
            (torch.Tensor): Channel logits of shape (B, C).
        """
        b, c = pooled.shape[:2]
        if isinstance(window_area, torch.Tensor):  # traced: the area is a graph value, GroupNorm's eps is a constant
            y = F.group_norm(pooled / window_area, 1, self.norm.weight, self.norm.bias, self.norm.eps)
        else:  # GroupNorm(s / a) with eps equals GroupNorm(s) with eps * a**2, so the window mean needs no division
            y = F.group_norm(pooled, 1, self.norm.weight, self.norm.bias, self.norm.eps * window_area**2)
        y = y.reshape(b, 1, self.head_num, self.head_dim, -1)
        scales = torch.cat((self.q.weight * self.scaler, self.k.weight, self.v.weight))
        scales = scales.view(3, self.head_num, self.head_dim, 1)
        if self.q.bias is None:
            qkv = y * scales
        else:
            biases = torch.cat((self.q.bias * self.scaler, self.k.bias, self.v.bias))
            qkv = torch.addcmul(biases.view(3, self.head_num, self.head_dim, 1), y, scales)
        q, k, v = qkv.unbind(1)  # (B, heads, d, N) each; q carries head_dim**-0.5
        attn = F.dropout((q @ k.transpose(-2, -1)).softmax(dim=-1), self.attn_drop.p, self.training)
        return (attn @ v.mean(dim=-1, keepdim=True)).reshape(b, c)  # mean(attn @ v) == attn @ mean(v)

    def uses_kernel(self, x: torch.Tensor) -> bool:
        """Whether ``forward(x)`` runs the registered op ``torch.ops.scsa_yolo.scsa`` (else the PyTorch-op path).

        The op takes the avg-pool sigmoid-gate configuration (every official config) without active attention
        dropout, whole q/k/v biases or none, submodules without parametrizations (and without hooks: ``forward``
        runs ``forward_reference`` then), in eager mode or under ``torch.compile`` (not while
        TorchScript traces or scripts, nor under ONNX or ``torch.export``, which record the PyTorch ops), where its
        device has a kernel in use for the dtypes (``scsa_fused.kernel_supports``).
        """
        return (
            # Graph capture first: under tracing the shape checks below would be recorded as tensor comparisons.
            not torch.jit.is_tracing()
            and not torch.jit.is_scripting()
            and not torch.onnx.is_in_onnx_export()
            and not getattr(torch.compiler, "is_exporting", lambda: False)()  # absent in torch 2.4
            and x.dim() == 4
            and x.shape[1] == self.dim
            and x.numel() > 0
            and self.down_sample_mode == "avg_pool"
            and self.gate_layer == "sigmoid"
            and not (self.training and self._modules["attn_drop"].p > 0)
            and self._plain_submodules()
            and not self._hooked_submodules()
            and scsa_fused.kernel_supports(x, self._modules["q"]._parameters["weight"].dtype)
        )

    def _plain_submodules(self) -> bool:
        """No parametrizations on the submodules the op reads, and q/k/v biases all or none."""
        if any("weight" not in self._modules[module]._parameters for module in KERNEL_MODULES):
            return False
        biases = [self._modules[name]._parameters.get("bias") is None for name in ("q", "k", "v")]
        return all(biases) or not any(biases)

    def _hooked_submodules(self) -> bool:
        """Whether a submodule has hooks (FLOP counters, feature taps, pruning masks, weight norm).

        Hooks fire, and pruning or weight norm recompute ``weight``, only when their module is called, which only
        ``forward_reference`` does: the op and the PyTorch-op path read the parameters directly.
        """
        return any(
            child._forward_hooks or child._forward_pre_hooks or child._backward_hooks or child._backward_pre_hooks
            for child in self._modules.values()
        )

    def _kernel_parameters(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The parameters in the op's order; absent q/k/v biases are empty tensors.

        Reads the modules' parameter dicts directly: this runs on every forward, and ``nn.Module.__getattr__`` for
        the twenty lookups would cost more than a small block's arithmetic.
        """
        modules = self._modules
        params = [modules[module]._parameters[name] for module, name in KERNEL_PARAMETERS]
        if params[QKV_BIASES[0]] is None:
            for index in QKV_BIASES:
                params[index] = x.new_empty(0, dtype=params[0].dtype)
        return params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply SMSA, then PCSA: the registered op or the PyTorch-op fast path (same results as the reference).

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Output of shape (B, C, H, W).
        """
        b, c, h, w = x.shape
        window_h, window_w = self._window(h, w)
        if self._hooked_submodules():
            return self.forward_reference(x)
        if self.uses_kernel(x):
            return scsa_fused.scsa(
                x,
                self._kernel_parameters(x),
                window_h,
                window_w,
                self.head_num,
                self.scaler,
                self.norm_h.eps,
                self.norm_w.eps,
                self.norm.eps,
            )
        if self.down_sample_mode == "max_pool" and self.window_size != -1:
            row_gate, col_gate = self._spatial_gates(x)
            gated = x * row_gate.unsqueeze(3) * col_gate.unsqueeze(2)
            logits = self._channel_logits(F.max_pool2d(gated, (window_h, window_w)), 1)
            return self._gate(logits, 1).view(b, c, 1, 1) * gated
        if torch.is_grad_enabled() and not torch.jit.is_tracing() and not scsa_fused.autograd_transforms_active():
            return self._forward_train(x, window_h, window_w)
        row_gate, col_gate = self._spatial_gates(x)
        rows_gated = x * row_gate.unsqueeze(3)
        out_gate = self._out_gate(_window_row_sums(rows_gated, window_h), col_gate, window_h, window_w)
        if torch.jit.is_tracing() or torch.is_grad_enabled():  # traced: not on the grad mode; transforms: autograd
            return rows_gated * out_gate.unsqueeze(2)
        return rows_gated.mul_(out_gate.unsqueeze(2))  # eager inference: reuse the temporary, nothing needs it

    def _forward_train(self, x: torch.Tensor, window_h: int, window_w: int) -> torch.Tensor:
        """The avg-pool fast path with hand-written backward passes for its three full-size steps (eager autograd).

        The small gate computations stay ordinary autograd ops; the full-size steps (profiles, window row sums,
        output) are custom Functions that share one gradient buffer for ``x`` (see ``_FullSizeState``).
        """
        state = _FullSizeState(x.requires_grad)
        row_gate, col_gate = self._gates_from_profiles(*_Profiles.apply(x, state))
        row_sums = _WindowRowSums.apply(x, row_gate, window_h, state)
        out_gate = self._out_gate(row_sums, col_gate, window_h, window_w)
        return _GateOutput.apply(x, row_gate, out_gate, state)

    def _out_gate(self, row_sums: torch.Tensor, col_gate: torch.Tensor, window_h: int, window_w: int) -> torch.Tensor:
        """Column gate times the PCSA channel gate, (B, C, W), from the window row sums of ``x * row_gate``.

        Args:
            row_sums (torch.Tensor): (B, C, H', W) sums of ``x * row_gate`` over each window of rows.
            col_gate (torch.Tensor): (B, C, W) SMSA column gate.
            window_h (int): Rows per pooling window.
            window_w (int): Columns per pooling window.

        Returns:
            (torch.Tensor): (B, C, W) gate to multiply ``x * row_gate`` with along the columns.
        """
        b, c, pooled_h, w = row_sums.shape
        cols_used = w // window_w * window_w
        # Column-gate the small row sums, then sum each window of columns: the window sums of x * row * col gates.
        weighted = row_sums[..., :cols_used] * col_gate[:, :, None, :cols_used]
        pooled = weighted.reshape(b, c, pooled_h, -1, window_w).sum(dim=-1)
        logits = self._channel_logits(pooled, window_h * window_w)
        return self._gate(logits, 1).unsqueeze(2) * col_gate


def _window_row_sums(rows_gated: torch.Tensor, window: int) -> torch.Tensor:
    """(B, C, H // window, W) sums of each full window of ``window`` rows of a (B, C, H, W) map."""
    b, c, h, w = rows_gated.shape
    pooled = h // window
    return rows_gated[:, :, : pooled * window].reshape(b, c, pooled, window, w).sum(dim=3)


class _FullSizeState:
    """Buffers shared by the three full-size Functions of one training forward (``SCSA._forward_train``).

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
        return _window_row_sums(state.rows_gated, window)

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
