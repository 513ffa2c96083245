"""Other attention blocks placed where SCSA goes, for like-for-like comparisons (filled in by issue 7)."""

from __future__ import annotations

from torch import nn

ATTENTION_BLOCKS: dict[str, type[nn.Module]] = {}
"""YAML module name to block class; each takes ``c1`` first and keeps the input shape."""
