"""SE: Squeeze-and-Excitation channel attention.

Paper: "Squeeze-and-Excitation Networks", Hu, Shen, Sun, CVPR 2018, https://arxiv.org/abs/1709.01507.
Implementation: ``timm.layers.SEModule``.
"""

from __future__ import annotations

import torch
from torch import nn

from scsa_yolo.nn.attention._common import check_channels, timm_module

__all__ = ["SE"]


class SE(nn.Module):
    """Squeeze-and-Excitation: global average pool, FC-ReLU-FC bottleneck, sigmoid gate per channel.

    Paper defaults: reduction ratio r = 16, so the bottleneck has ``c1 // 16`` channels (at least 1), fully connected
    layers with bias, ReLU, sigmoid. timm's ``SEModule`` would round the bottleneck up to a multiple of 8 (its
    ``rd_divisor``); the wrapper passes the paper's width explicitly instead. Everything else is timm's default.

    Attributes:
        se (timm.layers.SEModule): The wrapped module.
    """

    def __init__(self, c1: int, reduction: int = 16) -> None:
        """Build the block for ``c1`` channels.

        Args:
            c1 (int): Input (and output) channels.
            reduction (int): Channel reduction ratio of the bottleneck.

        Raises:
            ImportError: If timm is not installed.
            ValueError: If ``c1`` or ``reduction`` is not positive.
        """
        super().__init__()
        check_channels("SE", c1)
        if reduction <= 0:
            raise ValueError(f"SE reduction must be positive, got {reduction}")
        self.reduction = reduction
        self.se = timm_module("SE", "timm.layers.squeeze_excite").SEModule(c1, rd_channels=max(1, c1 // reduction))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate each channel by its squeezed-and-excited weight.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Output of shape (B, C, H, W).
        """
        return self.se(x)
