"""SCSA fast path (``forward``) against the reference formulation (``forward_reference``): outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from helpers import randomised

from scsa_yolo.nn import SCSA

SHAPES = [(1, 16, 28, 28), (2, 32, 13, 9), (1, 16, 5, 11), (3, 16, 6, 6), (1, 16, 1, 7), (2, 16, 20, 20)]
"""Square, non-square, odd, maps shorter than the window on one or both axes, a one-row map, batches > 1."""

OPTIONS = [
    {},
    {"head_num": 2},
    {"window_size": -1},
    {"window_size": 3},
    {"down_sample_mode": "max_pool"},
    {"gate_layer": "softmax"},
    {"qkv_bias": True},
    {"group_kernel_sizes": (1, 3, 5, 11)},
]


def assert_same_gradients(fast: list[torch.Tensor], reference: list[torch.Tensor], names: list[str]) -> None:
    """Gradients agree to float32 rounding, measured against the largest gradient of the same tensor or overall.

    Some gradients are zero in exact arithmetic (a softmax gate cancels the GroupNorm bias), so their float32 values
    are rounding noise; the absolute tolerance therefore scales with the largest gradient anywhere.
    """
    overall = max(grad.abs().max().item() for grad in reference)
    for name, got, want in zip(names, fast, reference):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * overall, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fast_path_matches_reference(options: dict, mode: str) -> None:
    """Same outputs (max abs diff <= 1e-5) and same input and parameter gradients for every shape."""
    for index, shape in enumerate(SHAPES):
        block = randomised(SCSA(shape[1], **options), seed=index)
        block.train(mode == "train")
        x = torch.randn(shape, generator=torch.Generator().manual_seed(100 + index), requires_grad=True)
        fast, reference = block(x), block.forward_reference(x)
        assert fast.shape == x.shape
        assert (fast - reference).abs().max().item() <= 1e-5, (shape, options)
        grad_out = torch.randn(shape, generator=torch.Generator().manual_seed(200 + index))
        inputs = [x, *block.parameters()]
        names = ["input"] + [name for name, _ in block.named_parameters()]
        assert_same_gradients(
            list(torch.autograd.grad(fast, inputs, grad_out)),
            list(torch.autograd.grad(reference, inputs, grad_out)),
            names,
        )


def test_fast_path_matches_reference_in_float64() -> None:
    """In float64 the two paths agree to ~1e-12: they compute the same maths, not an approximation."""
    block = randomised(SCSA(32, head_num=2), seed=7).double()
    x = torch.randn(2, 32, 23, 17, dtype=torch.float64, requires_grad=True)
    fast, reference = block(x), block.forward_reference(x)
    torch.testing.assert_close(fast, reference, rtol=1e-12, atol=1e-12)
    grad_out = torch.randn_like(x)
    for got, want in zip(torch.autograd.grad(fast, x, grad_out), torch.autograd.grad(reference, x, grad_out)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_no_grad_output_matches_and_input_untouched() -> None:
    """Inference reuses a temporary in place; the input must stay unchanged and the output equal."""
    block = randomised(SCSA(16), seed=3).eval()
    x = torch.randn(1, 16, 15, 15)
    before = x.clone()
    with torch.no_grad():
        fast, reference = block(x), block.forward_reference(x)
    assert torch.equal(x, before)
    assert (fast - reference).abs().max().item() <= 1e-5


def test_dropout_draws_the_same_mask() -> None:
    """With attention dropout in training, the fast path draws the same mask as the reference for the same seed."""
    block = randomised(SCSA(16, attn_drop_ratio=0.3), seed=5).train()
    x = torch.randn(2, 16, 14, 14)
    torch.manual_seed(11)
    fast = block(x)
    torch.manual_seed(11)
    reference = block.forward_reference(x)
    assert (fast - reference).abs().max().item() <= 1e-5


def test_trace_matches_at_other_sizes() -> None:
    """A TorchScript trace taken at one size gives the reference output at other sizes (no baked shapes)."""
    block = randomised(SCSA(16), seed=9).eval()
    with torch.no_grad():
        traced = torch.jit.trace(block, torch.randn(1, 16, 32, 32), check_trace=False)
        for shape in [(1, 16, 32, 32), (2, 16, 24, 40), (1, 16, 21, 14)]:
            x = torch.randn(shape)
            assert (traced(x) - block.forward_reference(x)).abs().max().item() <= 1e-5, shape


def test_training_path_gradcheck_float64() -> None:
    """The hand-written backward of the training path passes torch.autograd.gradcheck (input and parameters)."""
    for options, shape in [({}, (2, 8, 9, 8)), ({"head_num": 2, "qkv_bias": True, "window_size": 3}, (1, 8, 7, 5))]:
        block = randomised(SCSA(8, **options), seed=13).double()
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        params = tuple(block.parameters())
        names = [name for name, _ in block.named_parameters()]

        def run(inp: torch.Tensor, *values: torch.Tensor, b: SCSA = block, keys: list = names) -> torch.Tensor:
            return torch.func.functional_call(b, dict(zip(keys, values)), (inp,))

        assert torch.autograd.gradcheck(run, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


def test_training_path_partial_and_repeated_backward() -> None:
    """Input without grad, frozen parameters, retain_graph twice and a channels_last input all match the reference."""
    block = randomised(SCSA(16, head_num=2), seed=17).train()
    x = torch.randn(2, 16, 15, 10)
    params = list(block.parameters())
    grad_out = torch.randn_like(x)
    fast, reference = block(x), block.forward_reference(x)  # x needs no grad: parameter gradients only
    assert_same_gradients(
        list(torch.autograd.grad(fast, params, grad_out)), list(torch.autograd.grad(reference, params, grad_out)), []
    )

    for parameter in params:
        parameter.requires_grad_(False)
    try:
        x_grad = x.clone().requires_grad_(True)
        got = torch.autograd.grad(block(x_grad), x_grad, grad_out)[0]
        want = torch.autograd.grad(block.forward_reference(x_grad), x_grad, grad_out)[0]
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())
    finally:
        for parameter in params:
            parameter.requires_grad_(True)

    x_last = x.clone().to(memory_format=torch.channels_last).requires_grad_(True)
    out = block(x_last)
    first = torch.autograd.grad(out, [x_last, *params], grad_out, retain_graph=True)
    second = torch.autograd.grad(out, [x_last, *params], grad_out)
    want = torch.autograd.grad(block.forward_reference(x_last), [x_last, *params], grad_out)
    assert_same_gradients(list(first), list(want), ["input"] + [name for name, _ in block.named_parameters()])
    assert_same_gradients(list(second), list(want), ["input"] + [name for name, _ in block.named_parameters()])
