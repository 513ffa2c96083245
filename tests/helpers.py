"""Helpers shared by the SCSA test modules."""

import torch

from scsa_yolo.nn import SCSA


def randomised(block: SCSA, seed: int) -> SCSA:
    """Give every parameter seeded random values (norm weights and biases around 1), so identity-like defaults
    (GroupNorm 1/0) cannot hide a bug."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in block.parameters():
            centre = 1.0 if parameter.dim() == 1 else 0.0
            parameter.copy_(centre + 0.5 * torch.randn(parameter.shape, generator=generator))
    return block
