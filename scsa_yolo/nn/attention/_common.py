"""Helpers shared by the comparison blocks: the optional ``timm`` import and argument checks.

timm is only needed for the blocks that wrap ``timm.layers`` (extra ``compare``), so it is imported when such a block
is built, not when ``scsa_yolo`` is imported: SCSA and the blocks written here keep working without it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINT = "pip install 'scsa-yolo[compare]'"
"""The command that installs the optional dependencies of the comparison blocks."""


def timm_module(block: str, module: str) -> ModuleType:
    """Import a ``timm.layers`` submodule for a block that wraps it.

    The submodule is imported by its full name because some of timm's attention layers (``CbamModule``,
    ``CoordAttn``) are not re-exported by ``timm.layers`` itself.

    Args:
        block (str): YAML name of the block being built, for the error message.
        module (str): Full module name, e.g. 'timm.layers.cbam'.

    Returns:
        (ModuleType): The imported module.

    Raises:
        ImportError: If timm, or a timm with that module, is not installed; the message names the install command.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        missing = "timm, which is not installed" if error.name == "timm" else f"{module}, which this timm lacks"
        raise ImportError(f"the {block} attention block is built from {missing}: {INSTALL_HINT}") from error


def check_channels(block: str, c1: int) -> None:
    """Reject a channel count no block can take, with a message naming the block.

    Args:
        block (str): YAML name of the block.
        c1 (int): Input channels.

    Raises:
        ValueError: If ``c1`` is not a positive integer.
    """
    if not isinstance(c1, int) or c1 <= 0:
        raise ValueError(f"{block} needs a positive channel count, got c1={c1!r}")


def largest_divisor_up_to(n: int, limit: int) -> int:
    """Return the largest divisor of ``n`` that is at most ``limit`` (1 if ``limit`` < 1).

    Args:
        n (int): A positive integer (a channel count).
        limit (int): The most the divisor may be (a requested number of groups).

    Returns:
        (int): The divisor.
    """
    return max(d for d in range(1, max(1, min(n, limit)) + 1) if n % d == 0)
