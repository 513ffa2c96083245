"""Device kernels of the ``scsa_yolo::scsa`` op (registered in ``scsa_yolo.nn.scsa_fused``), one module per device.

``cpu``: builds and loads the C++ kernel (``scsa_yolo/nn/csrc/cpu/scsa_cpu.cpp``) on first use.
``triton_scsa``: the CUDA kernel, written in Triton (imported only where it runs, or under Triton's interpreter).
The kernels know tensors and numbers only, never the ``SCSA`` module.
"""

from __future__ import annotations

__all__ = ["GROUP_CONVS", "PARAMETERS", "STATISTICS", "statistics_shapes"]

GROUP_CONVS = ("local_dwc", "global_dwc_s", "global_dwc_m", "global_dwc_l")
"""The four depthwise convs in channel-group order (kernel sizes 3, 5, 7, 9 by default)."""
PARAMETERS: tuple[str, ...] = (
    *(f"{conv}.weight" for conv in GROUP_CONVS),
    *(f"{conv}.bias" for conv in GROUP_CONVS),
    *("norm_h.weight", "norm_h.bias", "norm_w.weight", "norm_w.bias", "norm.weight", "norm.bias"),
    *("q.weight", "k.weight", "v.weight", "q.bias", "k.bias", "v.bias"),
)
"""The op's parameter tensors in order, named by the ``SCSA`` attribute each is (``Param`` in the C++ kernel): the
four group convs' weights (C/4, 1, kernel), their biases (C/4), the H, W and pooled GroupNorms' weight and bias (C),
the q, k, v scales (C, 1, 1, 1) and their biases (C, or all three empty when the block has none)."""

STATISTICS: tuple[str, ...] = (
    *("row_means", "col_means", "row_normed", "col_normed", "row_gate", "col_gate", "row_rstd", "col_rstd"),
    *("pooled_normed", "pooled_rstd", "attention", "mean_v", "channel_logits", "channel_gate"),
)
"""What the op returns after the output when asked to keep statistics, in order: the small tensors its backward
reuses (as ``aten::native_group_norm`` returns mean and rstd). Shapes in ``statistics_shapes``."""


def statistics_shapes(
    batch: int, channels: int, height: int, width: int, pooled: int, heads: int
) -> list[tuple[int, ...]]:
    """Shapes of ``STATISTICS`` for a (batch, channels, height, width) input pooled to ``pooled`` window means."""
    head_dim = channels // heads
    shapes = {
        "row_means": (batch, channels, height),
        "col_means": (batch, channels, width),
        "row_normed": (batch, channels, height),
        "col_normed": (batch, channels, width),
        "row_gate": (batch, channels, height),
        "col_gate": (batch, channels, width),
        "row_rstd": (batch, 4),
        "col_rstd": (batch, 4),
        "pooled_normed": (batch, channels, pooled),
        "pooled_rstd": (batch,),
        "attention": (batch, heads, head_dim, head_dim),
        "mean_v": (batch, channels),
        "channel_logits": (batch, channels),
        "channel_gate": (batch, channels),
    }
    return [shapes[name] for name in STATISTICS]
