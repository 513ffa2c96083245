"""Attention inside the bottlenecks of Ultralytics' CSP layers (C2f, C3k2 and the C3k inside it).

The SCSA paper (https://arxiv.org/abs/2407.05128) places SCSA inside every ResNet bottleneck, after the 3x3 conv and
before the 1x1 expansion, i.e. on the bottleneck's narrow middle map. An Ultralytics ``Bottleneck`` is two convs,
``cv1`` (c1 -> c_) and ``cv2`` (c_ -> c2), with an optional residual add; the equivalent place is between them.

A model YAML asks for this with the row name ``<CSP layer>_<Block>`` (``[-1, 3, C2f_SCSA, [128, True]]``): the
registration builds the stock layer from the same row, so Ultralytics' channel, width and depth handling apply
unchanged, and then puts an ``AttentionBottleneck`` around each of its bottlenecks. The layer keeps its class and
every parameter name, so stock checkpoints load into every stock tensor; the blocks add ``<...>.attn.*`` tensors.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from ultralytics.nn.modules.block import Bottleneck

__all__ = ["CSP_LAYERS", "AttentionBottleneck", "attend_bottlenecks", "csp_row_name", "split_csp_row_name"]

CSP_LAYERS = ("C2f", "C3k2")
"""Ultralytics CSP layers whose bottlenecks can host a block (C3k2's C3k children are reached through it)."""


def csp_row_name(layer: str, block: str) -> str:
    """The YAML module name for ``layer`` with ``block`` in its bottlenecks, e.g. 'C2f_SCSA'."""
    return f"{layer}_{block}"


def split_csp_row_name(name: str, blocks: dict) -> tuple[str, str] | None:
    """Return (layer, block) for a name made by ``csp_row_name`` with a block in ``blocks``, else None."""
    layer, _, block = name.partition("_")
    return (layer, block) if layer in CSP_LAYERS and block in blocks else None


class AttentionBottleneck(Bottleneck):
    """An Ultralytics ``Bottleneck`` with an attention block on its middle map: ``x + cv2(attn(cv1(x)))``.

    Attributes:
        cv1, cv2 (ultralytics.nn.modules.conv.Conv): The wrapped bottleneck's convs (same names, same tensors).
        attn (nn.Module): The attention block on ``cv1``'s output channels.
        add (bool): Whether the residual is added (the wrapped bottleneck's setting).
    """

    def __init__(self, bottleneck: Bottleneck, attn: nn.Module) -> None:
        """Wrap a built bottleneck.

        Args:
            bottleneck (Bottleneck): The stock bottleneck; its convs are taken over, not copied.
            attn (nn.Module): Block for ``bottleneck.cv1``'s output channels that keeps the shape.
        """
        nn.Module.__init__(self)
        self.cv1, self.cv2, self.add = bottleneck.cv1, bottleneck.cv2, bottleneck.add
        self.attn = attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Bottleneck with attention between its convs.

        Args:
            x (torch.Tensor): Input of shape (B, C1, H, W).

        Returns:
            (torch.Tensor): Output of shape (B, C2, H, W).
        """
        y = self.cv2(self.attn(self.cv1(x)))
        return x + y if self.add else y


def attend_bottlenecks(layer: nn.Module, make_block: Callable[[int], nn.Module]) -> int:
    """Replace every plain ``Bottleneck`` inside ``layer`` by an ``AttentionBottleneck``.

    Args:
        layer (nn.Module): A built CSP layer (C2f, C3k2).
        make_block (Callable[[int], nn.Module]): Builds the attention block for a channel count.

    Returns:
        (int): How many bottlenecks received a block.

    Raises:
        ValueError: If the block cannot take a bottleneck's width; the message names the width and the submodule.
    """
    targets = [
        (parent, name, child)
        for parent in layer.modules()
        for name, child in parent.named_children()
        if type(child) is Bottleneck
    ]
    for parent, name, child in targets:
        width = child.cv1.conv.out_channels
        try:
            block = make_block(width)
        except ValueError as error:
            path = next(n for n, m in layer.named_modules() if m is child)
            raise ValueError(f"bottleneck '{path}' has {width} middle channels: {error}") from error
        setattr(parent, name, AttentionBottleneck(child, block))
    return len(targets)
