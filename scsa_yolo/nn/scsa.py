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

The module holds the parameters and calls ``scsa_yolo.nn.functional.scsa``, which decides how a forward runs: the
registered op ``torch.ops.scsa_yolo.scsa`` (fused C++ on CPU, Triton on CUDA when switched on: ``scsa_fused``,
``switches``), the export graph while a model is exported (``export_graph``) or the PyTorch-op fallback
(``scsa_torch``). All of them return the outputs and gradients of the straightforward port, ``SCSA.forward_reference``,
up to float rounding (about 1e-6), and read the official parameters, so ``state_dict`` is unchanged.

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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from scsa_yolo.nn import functional, scsa_fused

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

    def _compress(self, x: torch.Tensor) -> torch.Tensor:
        """Pool (B, C, H, W) to (B, C, H', W') with the PCSA window, shrunk to the map on axes shorter than it."""
        if self.window_size == -1:
            return x.mean(dim=(2, 3), keepdim=True)
        window = functional.pooling_window(x.shape[2], x.shape[3], self.window_size)
        if isinstance(window[0], torch.Tensor):  # graph-valued (ONNX export): pooling kernels must be constants
            window = functional.traced_int(window[0]), functional.traced_int(window[1])
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

    def uses_kernel(self, x: torch.Tensor) -> bool:
        """Whether ``forward(x)`` runs the registered op ``torch.ops.scsa_yolo.scsa`` (``functional.select_path``).

        The op takes the avg-pool sigmoid-gate configuration (every official config) without active attention
        dropout, submodules without hooks (``forward`` runs ``forward_reference`` then) or parametrizations, in eager
        mode or under ``torch.compile`` (not while a graph is exported), where its device has a kernel switched on for
        the dtypes (``scsa_fused.kernel_supports``).
        """
        if self._hooked_submodules():
            return False
        plain = self._plain_submodules()
        path = functional.select_path(x, self._kernel_parameters(x, plain), self.options(), self.training, plain)
        return path is functional.Path.KERNEL

    def _plain_submodules(self) -> bool:
        """No parametrizations on the submodules the op reads (their ``weight`` is then computed, not stored)."""
        return all("weight" in self._modules[module]._parameters for module in KERNEL_MODULES)

    def _hooked_submodules(self) -> bool:
        """Whether a submodule has hooks (FLOP counters, feature taps, pruning masks, weight norm).

        Hooks fire, and pruning or weight norm recompute ``weight``, only when their module is called, which only
        ``forward_reference`` does: the other paths read the parameters directly.
        """
        return any(
            child._forward_hooks or child._forward_pre_hooks or child._backward_hooks or child._backward_pre_hooks
            for child in self._modules.values()
        )

    def _kernel_parameters(self, x: torch.Tensor, plain: bool = True) -> list[torch.Tensor]:
        """The tensors in ``functional.scsa``'s order; absent q/k/v biases are empty tensors (zeros if only some are).

        With ``plain`` it reads the modules' parameter dicts directly: this runs on every forward, and
        ``nn.Module.__getattr__`` for the twenty lookups would cost more than a small block's arithmetic. Otherwise
        (parametrizations) it reads the computed attributes.
        """
        modules = self._modules
        if plain:
            params = [modules[module]._parameters[name] for module, name in KERNEL_PARAMETERS]
        else:
            params = [getattr(modules[module], name) for module, name in KERNEL_PARAMETERS]
        missing = [index for index in QKV_BIASES if params[index] is None]
        if missing:
            empty = len(missing) == len(QKV_BIASES)
            for index in missing:
                params[index] = x.new_empty(0, dtype=params[0].dtype) if empty else params[8].new_zeros(self.dim)
        return params

    def options(self) -> functional.ScsaOptions:
        """The settings ``functional.scsa`` takes besides the tensors."""
        modules = self._modules
        return functional.ScsaOptions(
            self.head_num,
            self.window_size,
            self.down_sample_mode,
            self.gate_layer,
            modules["attn_drop"].p,
            modules["norm_h"].eps,
            modules["norm_w"].eps,
            modules["norm"].eps,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply SMSA, then PCSA through ``functional.scsa`` (same results as ``forward_reference``).

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Output of shape (B, C, H, W).
        """
        if self._hooked_submodules():
            return self.forward_reference(x)
        plain = self._plain_submodules()
        return functional.scsa(x, self._kernel_parameters(x, plain), self.options(), self.training, plain)
