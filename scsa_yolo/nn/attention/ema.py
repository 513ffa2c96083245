"""EMA: Efficient Multi-scale Attention with cross-spatial learning.

Paper: "Efficient Multi-Scale Attention Module with Cross-Spatial Learning", Ouyang, He, Zhang, Luo, Guo, Zhan,
Huang, ICASSP 2023, https://arxiv.org/abs/2305.13563 (official code: https://github.com/YOLOonMe/EMA-attention-module).
Written here: neither timm nor Ultralytics has it.
"""

from __future__ import annotations

import torch
from torch import nn

from scsa_yolo.nn.attention._common import check_channels, largest_divisor_up_to

__all__ = ["EMA"]


class EMA(nn.Module):
    """EMA: channel groups attended by a 1x1 (coordinate) branch and a 3x3 branch that weight each other's pixels.

    The channels are split into ``groups`` sub-features (batched together). Per group, the 1x1 branch gates the map
    with sigmoid gates from its row and column profiles (one shared 1x1 conv) and normalises it with GroupNorm; the
    3x3 branch is a 3x3 conv. Each branch's softmax-normalised channel descriptor (global average) weights the other
    branch's pixels; the sum, through a sigmoid, gates the group.

    Paper defaults: factor (groups) = 32, as in the official code, with its layers (1x1 and 3x3 convs with bias,
    GroupNorm with one group per channel). Deviation: the official code needs ``c1`` divisible by the factor; here the
    groups are the largest divisor of ``c1`` not above ``factor`` (so 32 for every YOLOv8 width, which are all
    multiples of 32, and e.g. 24 for 48 channels), recorded in ``groups``.

    Attributes:
        groups (int): Channel groups actually used.
        gn (nn.GroupNorm): Normalisation of the 1x1 branch.
        conv1x1, conv3x3 (nn.Conv2d): The two branches' convs, on ``c1 // groups`` channels.
    """

    def __init__(self, c1: int, factor: int = 32) -> None:
        """Build the block for ``c1`` channels.

        Args:
            c1 (int): Input (and output) channels.
            factor (int): Requested number of channel groups (clamped to a divisor of ``c1``).

        Raises:
            ValueError: If ``c1`` or ``factor`` is not positive.
        """
        super().__init__()
        check_channels("EMA", c1)
        if factor <= 0:
            raise ValueError(f"EMA factor must be positive, got {factor}")
        self.groups = largest_divisor_up_to(c1, factor)
        group_channels = c1 // self.groups
        self.gn = nn.GroupNorm(group_channels, group_channels)
        self.conv1x1 = nn.Conv2d(group_channels, group_channels, kernel_size=1)
        self.conv3x3 = nn.Conv2d(group_channels, group_channels, kernel_size=3, padding=1)

    def extra_repr(self) -> str:
        """Summarise the hyper-parameters in ``print(model)``."""
        return f"groups={self.groups}"

    @staticmethod
    def _descriptor(x: torch.Tensor) -> torch.Tensor:
        """Softmax over channels of the global average of (N, c, H, W); returns (N, 1, c)."""
        return x.mean(dim=(2, 3)).softmax(dim=-1).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the two cross-weighted branches to every channel group.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Output of shape (B, C, H, W).
        """
        b, c, h, w = x.shape
        group_x = x.reshape(b * self.groups, c // self.groups, h, w)  # (N, c, H, W), N = B * groups
        profiles = torch.cat([group_x.mean(dim=3, keepdim=True), group_x.mean(dim=2, keepdim=True).transpose(2, 3)], 2)
        gate_h, gate_w = self.conv1x1(profiles).split([h, w], dim=2)  # (N, c, H, 1), (N, c, W, 1)
        branch_1x1 = self.gn(group_x * gate_h.sigmoid() * gate_w.transpose(2, 3).sigmoid())
        branch_3x3 = self.conv3x3(group_x)
        # each branch's channel descriptor weights the other branch's pixels: (N, 1, c) @ (N, c, HW) -> (N, 1, HW)
        weights = self._descriptor(branch_1x1) @ branch_3x3.flatten(2)
        weights = weights + self._descriptor(branch_3x3) @ branch_1x1.flatten(2)
        return (group_x * weights.reshape(-1, 1, h, w).sigmoid()).reshape(b, c, h, w)
