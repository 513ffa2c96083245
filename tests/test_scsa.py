"""SCSA block: parity with an independent re-derivation of the paper's maths, parameter layout, edge cases."""

import copy
import pickle

import pytest
import torch
import torch.nn.functional as F
from helpers import randomised

from scsa_yolo.nn import SCSA

KERNELS = (3, 5, 7, 9)


def group_norm(x: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5):
    """GroupNorm written out: statistics over (C/groups, *spatial) per sample and group, then a per-channel affine."""
    b, c = x.shape[:2]
    grouped = x.reshape(b, groups, -1)
    mean = grouped.mean(-1, keepdim=True)
    var = grouped.var(-1, unbiased=False, keepdim=True)
    normed = ((grouped - mean) / torch.sqrt(var + eps)).reshape(x.shape)
    shape = (1, c) + (1,) * (x.dim() - 2)
    return normed * weight.reshape(shape) + bias.reshape(shape)


def depthwise_same_conv(profile: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Depthwise 1-D cross-correlation with zero 'same' padding, as explicit shifted sums: (B, C, L) -> (B, C, L)."""
    k = weight.shape[-1]
    padded = F.pad(profile, (k // 2, k // 2))
    length = profile.shape[-1]
    out = sum(weight[:, 0, j].reshape(1, -1, 1) * padded[..., j : j + length] for j in range(k))
    return out + bias.reshape(1, -1, 1)


def window_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Non-overlapping window means, floor mode, windows shrunk to a side shorter than them: (B,C,H,W)->(B,C,H',W')."""
    wh, ww = min(window, x.shape[2]), min(window, x.shape[3])
    rows, cols = x.shape[2] // wh, x.shape[3] // ww
    cropped = x[:, :, : rows * wh, : cols * ww]
    return cropped.reshape(*x.shape[:2], rows, wh, cols, ww).mean(dim=(3, 5))


def scsa_by_hand(block: SCSA, x: torch.Tensor) -> torch.Tensor:
    """SCSA forward re-derived from the paper (arXiv 2407.05128, Sec. 3) with the block's parameters."""
    p = dict(block.named_parameters())
    b, c, h, w = x.shape
    g = c // 4
    conv_names = ("local_dwc", "global_dwc_s", "global_dwc_m", "global_dwc_l")

    def smsa_gate(profile, norm_name):  # profile: (B, C, L)
        filtered = torch.cat(
            [
                depthwise_same_conv(profile[:, i * g : (i + 1) * g], p[f"{name}.weight"], p[f"{name}.bias"])
                for i, name in enumerate(conv_names)
            ],
            dim=1,
        )
        return torch.sigmoid(group_norm(filtered, 4, p[f"{norm_name}.weight"], p[f"{norm_name}.bias"]))

    gate_h = smsa_gate(x.mean(dim=3), "norm_h")  # (B, C, H)
    gate_w = smsa_gate(x.mean(dim=2), "norm_w")  # (B, C, W)
    spatial = x * gate_h[:, :, :, None] * gate_w[:, :, None, :]

    pooled = group_norm(window_mean(spatial, block.window_size), 1, p["norm.weight"], p["norm.bias"])
    tokens = pooled.reshape(b, c, -1)  # channels are the tokens
    q, k, v = (tokens * p[f"{n}.weight"].reshape(1, c, 1) for n in "qkv")
    heads, d = block.head_num, c // block.head_num
    q, k, v = (t.reshape(b, heads, d, -1) for t in (q, k, v))
    attn = torch.softmax(torch.einsum("bhin,bhjn->bhij", q, k) / d**0.5, dim=-1)
    mixed = torch.einsum("bhij,bhjn->bhin", attn, v).reshape(b, c, -1)
    channel_gate = torch.sigmoid(mixed.mean(-1))[:, :, None, None]
    return channel_gate * spatial


@pytest.mark.parametrize(
    "channels, height, width, heads",
    [(64, 20, 20, 1), (32, 80, 80, 1), (16, 7, 30, 1), (48, 13, 9, 4), (128, 40, 24, 2), (16, 3, 5, 1), (8, 1, 1, 1)],
)
def test_matches_hand_derivation(channels, height, width, heads):
    block = randomised(SCSA(channels, head_num=heads), seed=channels + height).eval()
    x = torch.randn(2, channels, height, width, generator=torch.Generator().manual_seed(0)) * 3
    with torch.no_grad():
        difference = (block(x) - scsa_by_hand(block, x)).abs().max().item()
    assert difference <= 1e-5


def test_parameter_names_and_shapes_follow_the_official_layout():
    channels = 64
    g = channels // 4
    convs = ("local_dwc", "global_dwc_s", "global_dwc_m", "global_dwc_l")
    expected = {
        **{f"{name}.weight": (g, 1, k) for name, k in zip(convs, KERNELS)},
        **{f"{name}.bias": (g,) for name in convs},
        **{f"{norm}.{kind}": (channels,) for norm in ("norm_h", "norm_w", "norm") for kind in ("weight", "bias")},
        **{f"{proj}.weight": (channels, 1, 1, 1) for proj in "qkv"},
    }
    state = SCSA(channels).state_dict()
    assert {name: tuple(t.shape) for name, t in state.items()} == expected
    assert sum(t.numel() for t in state.values()) == 16 * channels


def test_loads_foreign_state_dict_strictly_and_reproduces_it():
    source = randomised(SCSA(32), seed=3).eval()
    target = SCSA(32).eval()
    target.load_state_dict(source.state_dict(), strict=True)
    x = torch.randn(1, 32, 14, 21)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))


@pytest.mark.parametrize("height, width", [(6, 6), (2, 2), (1, 9), (10, 3), (64, 2)])
def test_maps_smaller_than_window_pool_the_short_axis_whole(height, width):
    block = randomised(SCSA(16), seed=1).eval()
    x = torch.randn(1, 16, height, width)
    with torch.no_grad():
        out = block(x)
        assert out.shape == x.shape and torch.isfinite(out).all()
        assert (out - scsa_by_hand(block, x)).abs().max().item() <= 1e-5


def test_batch_samples_are_independent():
    block = randomised(SCSA(32), seed=2).eval()
    x = torch.randn(3, 32, 16, 24)
    with torch.no_grad():
        together = block(x)
        alone = torch.cat([block(x[i : i + 1]) for i in range(3)])
    assert (together - alone).abs().max().item() <= 1e-6


def test_gradients_reach_every_parameter():
    block = randomised(SCSA(16), seed=4).train()
    x = torch.randn(2, 16, 9, 11, requires_grad=True)
    block(x).square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"c1": 66}, "divisible by 4"),
        ({"c1": 6}, "divisible by 4"),
        ({"c1": 64, "head_num": 3}, "divisible by head_num"),
        ({"c1": 64, "window_size": 0}, "window_size"),
        ({"c1": 64, "down_sample_mode": "recombination"}, "down_sample_mode"),
        ({"c1": 64, "gate_layer": "tanh"}, "gate_layer"),
        ({"c1": 64, "group_kernel_sizes": (3, 5, 7)}, "group_kernel_sizes"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SCSA(**kwargs)


def test_unpickles_modules_saved_with_the_old_fast_path_helpers():
    """Checkpoints pickle whole modules: one saved by a version whose SCSA kept a gather index and a zero buffer (and
    two attributes) for its fast path must still load and run."""
    block = randomised(SCSA(32), seed=5).eval()
    old = copy.deepcopy(block)
    old.register_buffer("kernel_index", torch.zeros(32 * 9, dtype=torch.long), persistent=False)
    old.register_buffer("zero", torch.zeros(1), persistent=False)
    old.longest_kernel, old.bias_offset = 9, 24 * 8
    restored = pickle.loads(pickle.dumps(old))
    x = torch.randn(1, 32, 12, 17)
    with torch.no_grad():
        assert torch.equal(restored(x), block(x))
    assert restored.state_dict().keys() == block.state_dict().keys()


def test_traced_window_is_a_constant_and_tracing_below_it_warns():
    """Outside ONNX export the pooling window is traced as a constant (NCNN cannot take graph-valued slice bounds):
    a trace at or above the window pools right at every size at or above it; tracing below the window warns."""
    block = randomised(SCSA(16), seed=6).eval()
    with torch.no_grad():
        traced = torch.jit.trace(block, torch.randn(1, 16, 14, 9))
        for shape in [(1, 16, 15, 9), (2, 16, 7, 20), (1, 16, 33, 41)]:
            x = torch.randn(shape)
            torch.testing.assert_close(traced(x), block.forward_reference(x), atol=1e-5, rtol=1e-5)
        for mode in ("avg_pool", "max_pool"):
            with pytest.warns(UserWarning, match="smaller than its 7x7 window"):
                torch.jit.trace(SCSA(16, down_sample_mode=mode).eval(), torch.randn(1, 16, 4, 9))
