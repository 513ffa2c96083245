"""CA: Coordinate Attention.

Paper: "Coordinate Attention for Efficient Mobile Network Design", Hou, Zhou, Feng, CVPR 2021,
https://arxiv.org/abs/2103.02907 (official code: https://github.com/houqb/CoordAttention).
Implementation: ``timm.layers.coord_attn.CoordAttn``.
"""

from __future__ import annotations

import torch
from torch import nn

from scsa_yolo.nn.attention._common import check_channels, timm_module

__all__ = ["CA"]


class CA(nn.Module):
    """Coordinate Attention: row and column average profiles share a 1x1 conv bottleneck, then get one gate each.

    Paper defaults (official code): reduction 32 with a bottleneck of ``max(8, c1 // 32)`` channels, 1x1 convs with
    bias, BatchNorm and h-swish in the bottleneck, sigmoid gates. timm's ``CoordAttn`` defaults differ in two places,
    which the wrapper overrides: its bottleneck is ``c1 / 16 * 2/3`` rounded to a multiple of 8, and its convs have
    no bias. (The bias of the conv before BatchNorm is redundant and gets no gradient in training; it is kept so the
    parameters match the official block.)

    Attributes:
        ca (timm.layers.coord_attn.CoordAttn): The wrapped module.
    """

    def __init__(self, c1: int, reduction: int = 32) -> None:
        """Build the block for ``c1`` channels.

        Args:
            c1 (int): Input (and output) channels.
            reduction (int): Channel reduction ratio of the shared bottleneck (which keeps at least 8 channels).

        Raises:
            ImportError: If timm is not installed.
            ValueError: If ``c1`` or ``reduction`` is not positive.
        """
        super().__init__()
        check_channels("CA", c1)
        if reduction <= 0:
            raise ValueError(f"CA reduction must be positive, got {reduction}")
        self.reduction = reduction
        coord_attn = timm_module("CA", "timm.layers.coord_attn")
        self.ca = coord_attn.CoordAttn(c1, rd_channels=max(8, c1 // reduction), bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate the input by its height-wise and width-wise attention maps.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Output of shape (B, C, H, W).
        """
        return self.ca(x)
