"""Other attention blocks placed where SCSA goes, for like-for-like comparisons.

Each block takes its input channels first (``c1``) and keeps the input shape, like SCSA. SE, CBAM, ECA and CA wrap
``timm.layers`` (optional extra ``compare``; without timm they raise an ImportError naming the install command when
built); EMA, SimAM and ELA are written here because no maintained library has them in their paper's form.
"""

from __future__ import annotations

from torch import nn

from scsa_yolo.nn.attention.cbam import CBAM
from scsa_yolo.nn.attention.coord import CA
from scsa_yolo.nn.attention.eca import ECA
from scsa_yolo.nn.attention.ela import ELA
from scsa_yolo.nn.attention.ema import EMA
from scsa_yolo.nn.attention.se import SE
from scsa_yolo.nn.attention.simam import SimAM

__all__ = ["ATTENTION_BLOCKS", "CA", "CBAM", "ECA", "ELA", "EMA", "SE", "SimAM"]

ATTENTION_BLOCKS: dict[str, type[nn.Module]] = {
    "SE": SE,
    "CBAM": CBAM,
    "ECA": ECA,
    "CA": CA,
    "EMA": EMA,
    "SimAM": SimAM,
    "ELA": ELA,
}
"""YAML module name to block class; each takes ``c1`` first and keeps the input shape."""
