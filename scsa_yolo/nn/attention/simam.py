"""SimAM: a Simple, parameter-free Attention Module.

Paper: "SimAM: A Simple, Parameter-Free Attention Module for Convolutional Neural Networks", Yang, Zhang, Li, Xie,
ICML 2021, https://proceedings.mlr.press/v139/yang21o.html (no arXiv version; official code:
https://github.com/ZjjConan/SimAM). Written here: neither timm nor Ultralytics has it.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SimAM"]


class SimAM(nn.Module):
    """SimAM: weights every activation by a sigmoid of its inverse minimal energy; no learnable parameters.

    For each channel with mean mu and variance sigma^2 over its n + 1 = H * W pixels, the inverse energy of a pixel t is
    (t - mu)^2 / (4 * (sigma^2 + lambda)) + 0.5, with sigma^2 = sum (t - mu)^2 / n; the output is
    ``x * sigmoid(inverse energy)``.

    Paper defaults: lambda = 1e-4. Deviation: the official code divides by n = H * W - 1, which is 0 (giving NaN) for
    a 1x1 map; here n is at least 1, so a 1x1 map (where every t equals mu) gets the gate sigmoid(0.5). For larger maps
    this is the official formula.

    Attributes:
        e_lambda (float): The regulariser lambda.
    """

    def __init__(self, c1: int | None = None, e_lambda: float = 1e-4) -> None:
        """Build the block; it has no weights, so the channels only keep the YAML signature uniform.

        Args:
            c1 (int | None): Input channels (unused).
            e_lambda (float): The energy regulariser lambda.

        Raises:
            ValueError: If ``e_lambda`` is not positive.
        """
        super().__init__()
        if e_lambda <= 0:
            raise ValueError(f"SimAM e_lambda must be positive, got {e_lambda}")
        self.e_lambda = e_lambda

    def extra_repr(self) -> str:
        """Summarise the hyper-parameters in ``print(model)``."""
        return f"e_lambda={self.e_lambda}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gate every activation by its distinctiveness within its channel.

        Args:
            x (torch.Tensor): Input of shape (B, C, H, W).

        Returns:
            (torch.Tensor): Output of shape (B, C, H, W).
        """
        n = max(x.shape[2] * x.shape[3] - 1, 1)
        squared_deviation = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)
        variance = squared_deviation.sum(dim=(2, 3), keepdim=True) / n
        inverse_energy = squared_deviation / (4 * (variance + self.e_lambda)) + 0.5
        return x * inverse_energy.sigmoid()
