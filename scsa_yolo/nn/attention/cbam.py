"""CBAM: Convolutional Block Attention Module (channel attention, then spatial attention).

Paper: "CBAM: Convolutional Block Attention Module", Woo, Park, Lee, Kweon, ECCV 2018, https://arxiv.org/abs/1807.06521
(official code: https://github.com/Jongchan/attention-module). Implementation: ``timm.layers.cbam.CbamModule``.

Ultralytics ships a ``CBAM`` too (``ultralytics.nn.modules.conv.CBAM``), but its channel attention is a single 1x1
conv on the average-pooled map: no reduction MLP and no max-pooled branch, so it is not the paper's block and is not
used here.
"""

from __future__ import annotations

import torch
from torch import nn

from scsa_yolo.nn.attention._common import check_channels, timm_module

__all__ = ["CBAM"]


class CBAM(nn.Module):
    """CBAM: a shared-MLP channel gate over average- and max-pooled descriptors, then a 7x7-conv spatial gate.

    Paper defaults: reduction ratio r = 16 (bottleneck ``c1 // 16``, at least 1), ReLU in the MLP, spatial kernel 7
    over the channel-wise mean and max, sigmoid gates. Where the paper's equations are silent the official code is
    followed: the MLP layers have a bias (timm's default has none, so the wrapper sets ``mlp_bias=True``), and the
    spatial conv is followed by BatchNorm (as in timm). Note: the BatchNorm needs more than one value per channel in
    training, so a training batch of one 1x1 map is rejected (any other size is fine).

    Attributes:
        cbam (timm.layers.cbam.CbamModule): The wrapped module (``channel`` then ``spatial``).
    """

    def __init__(self, c1: int, reduction: int = 16, kernel_size: int = 7) -> None:
        """Build the block for ``c1`` channels.

        Args:
            c1 (int): Input (and output) channels.
            reduction (int): Channel reduction ratio of the shared MLP.
            kernel_size (int): Odd kernel size of the spatial attention conv.

        Raises:
            ImportError: If timm is not installed.
            ValueError: If an argument is out of range.
        """
        super().__init__()
        check_channels("CBAM", c1)
        if reduction <= 0:
            raise ValueError(f"CBAM reduction must be positive, got {reduction}")
        if kernel_size <= 0 or kernel_size % 2 == 0:
            raise ValueError(f"CBAM kernel_size must be odd and positive, got {kernel_size}")
        self.reduction = reduction
        self.cbam = timm_module("CBAM", "timm.layers.cbam").CbamModule(
            c1, rd_channels=max(1, c1 // reduction), spatial_kernel_size=kernel_size, mlp_bias=True
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the channel gate, then the spatial gate.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Output of shape (B, C, H, W).
        """
        return self.cbam(x)
