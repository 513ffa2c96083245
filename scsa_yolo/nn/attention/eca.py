"""ECA: Efficient Channel Attention.

Paper: "ECA-Net: Efficient Channel Attention for Deep Convolutional Neural Networks", Wang, Wu, Zhu, Li, Zuo, Hu,
CVPR 2020, https://arxiv.org/abs/1910.03151. Implementation: ``timm.layers.EcaModule``.
"""

from __future__ import annotations

import torch
from torch import nn

from scsa_yolo.nn.attention._common import check_channels, timm_module

__all__ = ["ECA"]


class ECA(nn.Module):
    """ECA: global average pool, a 1-D conv across channels (no bias, no reduction), sigmoid gate per channel.

    Paper defaults: the kernel size adapts to the channels, k = |(log2(C) + b) / gamma|_odd with gamma = 2, b = 1
    (k = 3 for C = 64, 5 for C = 128 to 640). timm computes the same k, except that it never goes below 3 (the paper's
    formula would give 1 for C < 8, where a 1-wide conv is no cross-channel interaction at all); timm's defaults are
    used unchanged.

    Attributes:
        eca (timm.layers.EcaModule): The wrapped module.
    """

    def __init__(self, c1: int, gamma: float = 2.0, b: float = 1.0) -> None:
        """Build the block for ``c1`` channels.

        Args:
            c1 (int): Input (and output) channels; they set the adaptive kernel size.
            gamma (float): Slope of the channels-to-kernel mapping.
            b (float): Offset of the channels-to-kernel mapping.

        Raises:
            ImportError: If timm is not installed.
            ValueError: If ``c1`` or ``gamma`` is not positive.
        """
        super().__init__()
        check_channels("ECA", c1)
        if gamma <= 0:
            raise ValueError(f"ECA gamma must be positive, got {gamma}")
        self.eca = timm_module("ECA", "timm.layers.eca").EcaModule(channels=c1, gamma=gamma, beta=b)

    @property
    def kernel_size(self) -> int:
        """Return the adaptive 1-D kernel size chosen for the channel count."""
        return self.eca.conv.kernel_size[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate each channel by a weight computed from its neighbours' pooled values.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Output of shape (B, C, H, W).
        """
        return self.eca(x)
