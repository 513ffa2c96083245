"""Helpers shared by the SCSA test modules."""

import torch

from scsa_yolo.nn import SCSA

SHAPES = [(1, 16, 28, 28), (2, 32, 13, 9), (1, 16, 5, 11), (3, 16, 6, 6), (1, 16, 1, 7), (2, 16, 23, 17)]
"""Square, non-square, odd, maps shorter than the window on one or both axes, a one-row map, batches > 1."""

OPTIONS = [
    {},
    {"head_num": 2},
    {"head_num": 4, "qkv_bias": True},
    {"window_size": -1},
    {"window_size": 3},
    {"down_sample_mode": "max_pool"},
    {"gate_layer": "softmax"},
    {"qkv_bias": True},
    {"group_kernel_sizes": (1, 3, 5, 11)},
]
"""SCSA settings off the defaults, one at a time (and heads with biases), for the path-equality tests."""


def options_id(options: dict) -> str:
    """Test id of one ``OPTIONS`` entry."""
    return ",".join(f"{k}={v}" for k, v in options.items()) or "default"


def randomised(block: SCSA, seed: int) -> SCSA:
    """Give every parameter seeded random values (norm weights and biases around 1), so identity-like defaults
    (GroupNorm 1/0) cannot hide a bug."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in block.parameters():
            centre = 1.0 if parameter.dim() == 1 else 0.0
            parameter.copy_(centre + 0.5 * torch.randn(parameter.shape, generator=generator))
    return block
