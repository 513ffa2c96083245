"""ELA: Efficient Local Attention.

Paper: "ELA: Efficient Local Attention for Deep Convolutional Neural Networks", Xu, Wan, 2024,
https://arxiv.org/abs/2403.01123. Written here: timm's ``EfficientLocalAttn`` is a variant (separate convs for the two
axes, GroupNorm with one group, a SiLU before the gate) that cannot be configured into the paper's block, in which
one depthwise conv and one GroupNorm serve both axes.
"""

from __future__ import annotations

import torch
from torch import nn

from scsa_yolo.nn.attention._common import check_channels, largest_divisor_up_to

__all__ = ["ELA"]


class ELA(nn.Module):
    """ELA: the row and column average profiles go through one shared depthwise 1-D conv and GroupNorm, then sigmoid.

    Paper defaults: kernel size 7 and GroupNorm with 16 groups, the setting of the paper's reference code (and of the
    SCSA paper's comparison); the depthwise conv has no bias. Deviation: GroupNorm needs the channels divisible by the
    groups, and a group of one channel is a single value on a 1-pixel profile (which GroupNorm rejects); here the
    groups are the largest divisor of ``c1`` not above ``groups`` nor ``c1 // 2`` (so 16 for every YOLOv8 width, which
    are all at least 64, and 8 for 16 channels), recorded in ``norm.num_groups``.

    Attributes:
        conv (nn.Conv1d): Depthwise 1-D conv shared by both profiles.
        norm (nn.GroupNorm): GroupNorm shared by both profiles.
    """

    def __init__(self, c1: int, kernel_size: int = 7, groups: int = 16) -> None:
        """Build the block for ``c1`` channels.

        Args:
            c1 (int): Input (and output) channels.
            kernel_size (int): Odd kernel size of the 1-D conv.
            groups (int): Requested GroupNorm groups (clamped as described above).

        Raises:
            ValueError: If an argument is out of range.
        """
        super().__init__()
        check_channels("ELA", c1)
        if kernel_size <= 0 or kernel_size % 2 == 0:
            raise ValueError(f"ELA kernel_size must be odd and positive, got {kernel_size}")
        if groups <= 0:
            raise ValueError(f"ELA groups must be positive, got {groups}")
        self.conv = nn.Conv1d(c1, c1, kernel_size, padding=kernel_size // 2, groups=c1, bias=False)
        self.norm = nn.GroupNorm(largest_divisor_up_to(c1, min(groups, c1 // 2)), c1)

    def _gate(self, profile: torch.Tensor) -> torch.Tensor:
        """Turn a (B, C, L) profile into (B, C, L) gates in (0, 1)."""
        return self.norm(self.conv(profile)).sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate the input by its height-wise and width-wise local attention.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Output of shape (B, C, H, W).
        """
        return x * self._gate(x.mean(dim=3)).unsqueeze(3) * self._gate(x.mean(dim=2)).unsqueeze(2)
