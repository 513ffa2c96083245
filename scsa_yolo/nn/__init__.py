"""Attention blocks that Ultralytics model YAMLs can name, and the name-to-class table the registration reads.

Every block takes its input channels first (``c1``), followed by the optional arguments a YAML row may give, and
returns a map of the same shape, so ``[-1, 1, Name, [args...]]`` works at any scale.
"""

from __future__ import annotations

from torch import nn

from scsa_yolo.nn.attention import ATTENTION_BLOCKS
from scsa_yolo.nn.scsa import SCSA

__all__ = ["BLOCKS", "SCSA", "create_block"]

BLOCKS: dict[str, type[nn.Module]] = {"SCSA": SCSA, **ATTENTION_BLOCKS}
"""YAML module name to block class."""


def create_block(name: str, c1: int, *args, **kwargs) -> nn.Module:
    """Build a registered block by its YAML name.

    Args:
        name (str): Name as written in a model YAML (a key of ``BLOCKS``).
        c1 (int): Input channels.
        *args: Positional arguments after ``c1``, as in the YAML row.
        **kwargs: Keyword arguments of the block.

    Returns:
        (nn.Module): The block.
    """
    if name not in BLOCKS:
        raise KeyError(f"unknown attention block {name!r}; registered: {', '.join(sorted(BLOCKS))}")
    return BLOCKS[name](c1, *args, **kwargs)
