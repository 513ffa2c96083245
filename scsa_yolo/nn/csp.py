"""Attention inside the units of Ultralytics' backbone layers: one rule per unit type, one table of host layers.

The SCSA paper (https://arxiv.org/abs/2407.05128) places SCSA inside every ResNet bottleneck, after the 3x3 conv and
before the 1x1 expansion, i.e. on the unit's narrow middle map, right before the conv that closes its residual
branch; in MobileNetV2 after the depthwise 3x3 and before the 1x1 projection. Each Ultralytics unit gets the block at
the equivalent place, on the map that enters the unit's last conv (``UNIT_RULES``):

* ``Bottleneck`` (in C2f, C3k2, C3, C3k, A2C2f's C3k branches, and as ``RepBottleneck`` in RepNCSPELAN4's RepCSP
  branches): two convs ``cv1`` (3x3 or 1x1) and ``cv2`` (3x3); the block sits between them (``AttentionBottleneck``).
* ``ResNetBlock`` (in ResNetLayer): ``cv1`` 1x1, ``cv2`` 3x3, ``cv3`` 1x1 expansion; the block sits before ``cv3`` on
  the middle width, exactly the official ``BottleneckSCSA`` placement.
* ``CIB`` (in C2fCIB): an inverted bottleneck (depthwise 3x3, 1x1 expand, depthwise 3x3, 1x1 project, depthwise 3x3);
  the block sits before the 1x1 projection on the expanded width, the official MobileNetV2 placement.
* ``AAttn`` (the area attention in A2C2f's ABlocks): its spatial mixing (attention plus the 7x7 depthwise positional
  conv) is followed by a 1x1 projection; the block sits before that projection, on the unit's full width (ABlock's
  MLP has no spatial conv, and its hidden width ``int(1.2 * dim)`` is not a multiple of 4 at every scale).

A model YAML asks for this with the row name ``<layer>_<Block>`` (``[-1, 3, C2f_SCSA, [128, True]]``): the
registration builds the stock layer from the same row, so Ultralytics' channel, width and depth handling apply
unchanged, and then places the block in each of its units. The layer keeps its class and every parameter name, so
stock checkpoints load into every stock tensor; the blocks add ``<...>.attn.*`` tensors.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from ultralytics.nn.modules import block as ultralytics_blocks
from ultralytics.nn.modules.block import Bottleneck
from ultralytics.nn.modules.conv import Conv

__all__ = [
    "CSP_LAYERS",
    "UNIT_RULES",
    "WRAPPERS",
    "AttendedConv",
    "AttentionBottleneck",
    "attend_bottlenecks",
    "csp_row_name",
    "hosts_units",
    "split_csp_row_name",
]

CSP_LAYERS = ("C2f", "C3k2", "C3", "C3k", "C2fCIB", "RepNCSPELAN4", "A2C2f", "ResNetLayer")
"""Ultralytics layers whose units (``UNIT_RULES``) can host a block: the names a ``<layer>_<Block>`` row may use."""


def csp_row_name(layer: str, block: str) -> str:
    """The YAML module name for ``layer`` with ``block`` in its units, e.g. 'C2f_SCSA'."""
    return f"{layer}_{block}"


def split_csp_row_name(name: str, blocks: dict) -> tuple[str, str] | None:
    """Return (layer, block) for a name made by ``csp_row_name`` with a block in ``blocks``, else None."""
    layer, _, block = name.partition("_")
    return (layer, block) if layer in CSP_LAYERS and block in blocks else None


def hosts_units(module: str, args: list) -> bool:
    """Whether a YAML row ``[f, n, module, args]`` builds a layer with units.

    Every host layer has units except ResNetLayer's stem (``is_first``, the fourth argument of
    ``[c1, c2, s, is_first, n]``: a 7x7 conv and a max-pool).
    """
    if module == "ResNetLayer":
        return not (len(args) > 3 and args[3] is True)
    return module in CSP_LAYERS


class AttentionBottleneck(Bottleneck):
    """An Ultralytics ``Bottleneck`` with an attention block on its middle map: ``x + cv2(attn(cv1(x)))``.

    Attributes:
        cv1, cv2 (nn.Module): The wrapped bottleneck's convs (same names, same tensors).
        attn (nn.Module): The attention block on ``cv1``'s output channels.
        add (bool): Whether the residual is added (the wrapped bottleneck's setting).
    """

    def __init__(self, bottleneck: Bottleneck, attn: nn.Module) -> None:
        """Wrap a built bottleneck.

        Args:
            bottleneck (Bottleneck): The stock bottleneck (or RepBottleneck); its convs are taken over, not copied.
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


class AttendedConv(Conv):
    """An Ultralytics ``Conv`` with an attention block on its input: ``act(bn(conv(attn(x))))``.

    It takes over the wrapped conv's ``conv``, ``bn`` and ``act``, so the stock tensors keep their names
    (``<...>.cv3.conv.weight``) and the block's are ``<...>.cv3.attn.*``; Ultralytics' ``fuse()`` folds the BN as for
    any ``Conv`` and then calls ``forward_fuse``, which keeps the block.

    Attributes:
        conv (nn.Conv2d), bn (nn.BatchNorm2d), act (nn.Module): The wrapped conv's layers.
        attn (nn.Module): The attention block on the conv's input channels.
    """

    def __init__(self, conv: Conv, attn: nn.Module) -> None:
        """Wrap a built conv.

        Args:
            conv (Conv): The stock conv; its layers are taken over, not copied.
            attn (nn.Module): Block for ``conv``'s input channels that keeps the shape.
        """
        nn.Module.__init__(self)
        self.conv, self.act = conv.conv, conv.act
        if hasattr(conv, "bn"):
            self.bn = conv.bn
        self.attn = attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attention, then the conv, BN and activation.

        Args:
            x (torch.Tensor): Input of shape (B, C1, H, W).

        Returns:
            (torch.Tensor): Output of shape (B, C2, H', W').
        """
        return self.act(self.bn(self.conv(self.attn(x))))

    def forward_fuse(self, x: torch.Tensor) -> torch.Tensor:
        """Attention, then the BN-folded conv and activation (after ``fuse()``)."""
        return self.act(self.conv(self.attn(x)))


class _Width(ValueError):
    """A block that cannot take a unit's width; carries the width for the caller's message."""

    def __init__(self, width: int, error: ValueError) -> None:
        super().__init__(str(error))
        self.width = width


def _make(make_block: Callable[[int], nn.Module], width: int) -> nn.Module:
    try:
        return make_block(width)
    except ValueError as error:
        raise _Width(width, error) from error


def _in_bottleneck(unit: Bottleneck, make_block: Callable[[int], nn.Module]) -> nn.Module:
    return AttentionBottleneck(unit, _make(make_block, unit.cv2.conv.in_channels))  # cv1 may be a RepConv


def _before_conv(path: tuple) -> Callable:
    """A rule that puts the block in front of the ``Conv`` found at ``path`` (attribute names / Sequential indices)."""

    def place(unit: nn.Module, make_block: Callable[[int], nn.Module]) -> nn.Module:
        parent = unit
        for step in path[:-1]:
            parent = parent[step] if isinstance(step, int) else getattr(parent, step)
        last = path[-1]
        conv = parent[last] if isinstance(last, int) else getattr(parent, last)
        wrapped = AttendedConv(conv, _make(make_block, conv.conv.in_channels))
        if isinstance(last, int):
            parent[last] = wrapped
        else:
            setattr(parent, last, wrapped)
        return unit

    return place


_RULES_BY_UNIT_NAME: dict[str, Callable] = {
    "Bottleneck": _in_bottleneck,  # between cv1 and cv2 (RepBottleneck too: same two convs)
    "ResNetBlock": _before_conv(("cv3",)),  # after the 3x3 cv2, before the 1x1 expansion cv3 (the paper's place)
    "CIB": _before_conv(("cv1", 3)),  # after the depthwise 3x3 on the expanded width, before the 1x1 projection
    "AAttn": _before_conv(("proj",)),  # after attention + positional depthwise 7x7, before the 1x1 projection
}
# AAttn arrived with YOLO12 (8.3.7x), CIB with YOLOv10: older releases lack them
UNIT_RULES: dict[type[nn.Module], Callable] = {
    getattr(ultralytics_blocks, name): rule
    for name, rule in _RULES_BY_UNIT_NAME.items()
    if hasattr(ultralytics_blocks, name)
}
"""Unit type to the rule that places a block in it; a unit matches its own type or a subclass (RepBottleneck).
Unit types the installed Ultralytics does not have are left out (no config of that release can hold them)."""

WRAPPERS = (AttentionBottleneck, AttendedConv)
"""Classes the rules put into models (checkpoints pickle them)."""
if hasattr(torch.serialization, "add_safe_globals"):  # so torch's restricted loader (weights_only) takes them
    torch.serialization.add_safe_globals(list(WRAPPERS))


def _rule(module: nn.Module) -> Callable | None:
    if isinstance(module, WRAPPERS):
        return None
    return next((rule for unit, rule in UNIT_RULES.items() if isinstance(module, unit)), None)


def attend_bottlenecks(layer: nn.Module, make_block: Callable[[int], nn.Module]) -> int:
    """Place a block in every unit inside ``layer`` by its unit rule (``UNIT_RULES``).

    Args:
        layer (nn.Module): A built host layer (C2f, C3k2, ResNetLayer, ...).
        make_block (Callable[[int], nn.Module]): Builds the attention block for a channel count.

    Returns:
        (int): How many units received a block.

    Raises:
        ValueError: If the block cannot take a unit's width; the message names the width and the submodule.
    """
    paths = {id(m): n for n, m in layer.named_modules()}
    targets = [
        (parent, name, child, rule)
        for parent in layer.modules()
        for name, child in parent.named_children()
        if (rule := _rule(child)) is not None
    ]
    for parent, name, child, rule in targets:
        try:
            placed = rule(child, make_block)
        except _Width as error:
            where = f"bottleneck '{paths[id(child)]}'"
            raise ValueError(f"{where} has {error.width} middle channels: {error}") from error
        if placed is not child:
            setattr(parent, name, placed)
    return len(targets)
