"""SCSA fast paths (``forward``) against the reference formulation (``forward_reference``): outputs and gradients.

Every comparison runs twice: on the registered op's CPU kernel (``scsa_fused``, the C++ kernel, what ``forward`` runs
on CPU here) and on the PyTorch-op path (kernel switched off; what runs wherever no kernel applies). The op's CUDA
kernel (Triton) is checked under Triton's interpreter in ``test_scsa_triton.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator

import pytest
import torch
from helpers import OPTIONS, SHAPES, options_id, randomised

from scsa_yolo.nn import SCSA
from scsa_yolo.nn.kernels import cpu as cpu_kernel
from scsa_yolo.nn.scsa_fused import fused_kernel_disabled, kernel_status


@pytest.fixture(params=["fused", "ops"])
def path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test on the fused kernel (which must build on this machine) or with it switched off."""
    if request.param == "fused":
        assert cpu_kernel.load() is not None, "the fused SCSA CPU kernel did not build"
        yield "fused"
    else:
        with fused_kernel_disabled():
            yield "ops"


def assert_same_gradients(fast: list[torch.Tensor], reference: list[torch.Tensor], names: list[str]) -> None:
    """Gradients agree to float32 rounding, measured against the largest gradient of the same tensor or overall.

    Some gradients are zero in exact arithmetic (a softmax gate cancels the GroupNorm bias), so their float32 values
    are rounding noise; the absolute tolerance therefore scales with the largest gradient anywhere.
    """
    overall = max(grad.abs().max().item() for grad in reference)
    for name, got, want in zip(names, fast, reference):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * overall, msg=lambda m, n=name: f"{n}: {m}")


def assert_matches_reference(block: SCSA, x: torch.Tensor, grad_out: torch.Tensor) -> None:
    """``block(x)`` equals ``forward_reference(x)`` (max abs diff <= 1e-5), and so do the input and parameter grads."""
    fast, reference = block(x), block.forward_reference(x)
    assert fast.shape == x.shape
    assert (fast - reference).abs().max().item() <= 1e-5, (tuple(x.shape), block)
    inputs = [x, *block.parameters()]
    names = ["input"] + [name for name, _ in block.named_parameters()]
    assert_same_gradients(
        list(torch.autograd.grad(fast, inputs, grad_out)),
        list(torch.autograd.grad(reference, inputs, grad_out)),
        names,
    )


@pytest.mark.parametrize("options", OPTIONS, ids=options_id)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fast_path_matches_reference(options: dict, mode: str, path: str) -> None:
    """Same outputs (max abs diff <= 1e-5) and same input and parameter gradients for every shape."""
    for index, shape in enumerate(SHAPES):
        block = randomised(SCSA(shape[1], **options), seed=index)
        block.train(mode == "train")
        x = torch.randn(shape, generator=torch.Generator().manual_seed(100 + index), requires_grad=True)
        grad_out = torch.randn(shape, generator=torch.Generator().manual_seed(200 + index))
        assert_matches_reference(block, x, grad_out)


def test_fast_path_matches_reference_in_float64(path: str) -> None:
    """In float64 the two paths agree to ~1e-12: they compute the same maths, not an approximation."""
    block = randomised(SCSA(32, head_num=2), seed=7).double()
    x = torch.randn(2, 32, 23, 17, dtype=torch.float64, requires_grad=True)
    fast, reference = block(x), block.forward_reference(x)
    torch.testing.assert_close(fast, reference, rtol=1e-12, atol=1e-12)
    grad_out = torch.randn_like(x)
    for got, want in zip(torch.autograd.grad(fast, x, grad_out), torch.autograd.grad(reference, x, grad_out)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_no_grad_output_matches_and_input_untouched(path: str) -> None:
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


def test_training_path_gradcheck_float64(path: str) -> None:
    """The hand-written backward of the training path passes torch.autograd.gradcheck (input and parameters)."""
    for options, shape in [({}, (2, 8, 9, 8)), ({"head_num": 2, "qkv_bias": True, "window_size": 3}, (1, 8, 7, 5))]:
        block = randomised(SCSA(8, **options), seed=13).double()
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        params = tuple(block.parameters())
        names = [name for name, _ in block.named_parameters()]

        def run(inp: torch.Tensor, *values: torch.Tensor, b: SCSA = block, keys: list = names) -> torch.Tensor:
            return torch.func.functional_call(b, dict(zip(keys, values)), (inp,))

        assert torch.autograd.gradcheck(run, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-5, fast_mode=True)


def test_training_path_partial_and_repeated_backward(path: str) -> None:
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


def test_kernel_applies_only_where_it_computes_the_same() -> None:
    """The fused kernel takes CPU float32/float64 avg-pool sigmoid blocks in eager mode, and nothing else."""
    assert cpu_kernel.load() is not None
    x = torch.randn(1, 16, 14, 14)
    assert SCSA(16).eval().uses_kernel(x)
    assert SCSA(16, window_size=-1, qkv_bias=True, head_num=4).double().train().uses_kernel(x.double())
    assert SCSA(16, attn_drop_ratio=0.2).eval().uses_kernel(x)  # dropout inactive in eval
    assert not SCSA(16, attn_drop_ratio=0.2).train().uses_kernel(x)
    assert not SCSA(16, down_sample_mode="max_pool").uses_kernel(x)
    assert not SCSA(16, gate_layer="softmax").uses_kernel(x)
    assert not SCSA(16).bfloat16().uses_kernel(x.bfloat16())
    assert not SCSA(16).uses_kernel(x.double())  # parameters in another dtype: the ops path raises as torch does
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not SCSA(16).uses_kernel(x)
    with fused_kernel_disabled():
        assert not SCSA(16).uses_kernel(x)


def test_fused_kernel_uses_several_threads_consistently() -> None:
    """With two intra-op threads the channel loops split across threads; outputs and gradients stay the reference's."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        block = randomised(SCSA(32, head_num=2), seed=21).train()
        x = torch.randn(3, 32, 40, 33, requires_grad=True)
        assert_matches_reference(block, x, torch.randn_like(x))
    finally:
        torch.set_num_threads(threads)


def test_unbuildable_kernel_warns_once_and_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the kernel cannot be compiled, the first SCSA call warns with the reason and every call runs the ops."""

    def no_headers() -> None:  # what torch raises: ninja's log, the compiler's error in the middle
        raise RuntimeError(
            "Error building extension 'scsa_yolo_cpu'\n[1/2] c++ -MMD -c scsa_cpu.cpp\n"
            "scsa_cpu.cpp:14:10: fatal error: Python.h: No such file or directory\n"
            "compilation terminated.\nninja: build stopped: subcommand failed."
        )

    monkeypatch.setattr(cpu_kernel, "_kernel", None)
    monkeypatch.setattr(cpu_kernel, "_unavailable_reason", None)
    monkeypatch.setattr(cpu_kernel, "_build", no_headers)
    block = randomised(SCSA(16), seed=23).eval()
    x = torch.randn(1, 16, 14, 14)
    with pytest.warns(UserWarning, match="could not be built .*fatal error: Python.h: No such file"):
        first = block(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = block(x)
    reference = block.forward_reference(x)
    assert (first - reference).abs().max().item() <= 1e-5
    assert torch.equal(first, second)
    assert "unavailable" in kernel_status()


def test_environment_switch_turns_the_kernel_off() -> None:
    """SCSA_YOLO_FUSED=0 keeps SCSA on the PyTorch ops, and the status line says why."""
    code = (
        "import torch; from scsa_yolo.nn import SCSA;"
        "from scsa_yolo.nn.scsa_fused import kernel_status;"
        "assert not SCSA(8).uses_kernel(torch.randn(1, 8, 7, 7)); print(kernel_status())"
    )
    env = {**os.environ, "SCSA_YOLO_FUSED": "0"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "SCSA_YOLO_FUSED=0" in result.stdout


def test_bad_inputs_raise_instead_of_reaching_the_kernel(path: str) -> None:
    """A wrong channel count or an empty map raises a Python error on both paths (the kernel never sees them)."""
    block = SCSA(16).eval()
    with pytest.raises(RuntimeError):
        block(torch.randn(1, 32, 14, 14))
    with pytest.raises(ValueError, match="empty 0x8 map"):
        block(torch.randn(1, 16, 0, 8))


def test_kernel_checks_its_arguments() -> None:
    """Called directly with parameters of another block size or a window larger than the map, the kernel raises."""
    kernel = cpu_kernel.load()
    block = SCSA(16)
    x = torch.randn(1, 32, 14, 14)
    params = block._kernel_parameters(x)
    with pytest.raises(RuntimeError, match="scsa_cpu: parameter 0 has 12 values for 32 channels"):
        kernel.forward(x, params, 7, 7, 1, block.scaler, 1e-5, 1e-5, 1e-5, False)
    with pytest.raises(RuntimeError, match="scsa_cpu: window 7x7 for a 5x14 map"):
        kernel.forward(torch.randn(1, 16, 5, 14), params, 7, 7, 1, block.scaler, 1e-5, 1e-5, 1e-5, False)


def test_hooked_or_pruned_submodules_run_the_reference() -> None:
    """Hooks on the submodules (FLOP counters, feature taps, pruning masks) fire, and pruned weights follow training.

    Only ``forward_reference`` calls the submodules: pruning recomputes ``weight`` from ``weight_orig`` in a
    forward pre-hook, so a path that reads ``weight`` directly would train on a stale tensor (and fail on the second
    backward, as its graph is freed).
    """
    from torch.nn.utils import prune

    block = randomised(SCSA(16), seed=29).train()
    x = torch.randn(1, 16, 14, 14)
    assert block.uses_kernel(x)
    calls = []
    handle = block.sa_gate.register_forward_hook(lambda *args: calls.append(args[0]))
    assert not block.uses_kernel(x)
    block(x)
    assert len(calls) == 2  # the row and the column gate
    handle.remove()
    prune.l1_unstructured(block.q, "weight", amount=0.5)
    assert not block.uses_kernel(x)
    optimizer = torch.optim.SGD(block.parameters(), lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        block(x).square().mean().backward()
        optimizer.step()
    with torch.no_grad():
        out = block(x)
        assert torch.equal(block.q.weight, block.q.weight_orig * block.q.weight_mask)  # recomputed by the forward
        assert (out - block.forward_reference(x)).abs().max().item() <= 1e-5


def test_torch_func_and_forward_ad_run_plain_ops() -> None:
    """torch.func transforms (grad, vmap, higher orders) and forward-mode AD give the reference's derivatives.

    Neither the op nor the fast path's hand-written Functions take them, so SCSA steps aside to plain PyTorch ops.
    """
    from torch.autograd import forward_ad

    assert cpu_kernel.load() is not None
    block = randomised(SCSA(8), seed=31).double().train()
    x = torch.randn(2, 8, 9, 7, dtype=torch.float64)

    def loss(forward: Callable[[torch.Tensor], torch.Tensor], t: torch.Tensor) -> torch.Tensor:
        return forward(t).square().sum()

    def per_sample_grad(f: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        return torch.vmap(torch.func.grad(lambda sample: f(sample.unsqueeze(0))))

    def gradient_penalty_grad(f: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        return torch.func.grad(lambda t: torch.func.grad(f)(t).square().sum())  # a second order

    for transform in (torch.func.grad, per_sample_grad, gradient_penalty_grad):
        got = transform(lambda t: loss(block, t))(x)
        want = transform(lambda t: loss(block.forward_reference, t))(x)
        torch.testing.assert_close(got, want)
    tangent = torch.randn_like(x)
    with forward_ad.dual_level():
        got = forward_ad.unpack_dual(block(forward_ad.make_dual(x, tangent))).tangent
        want = forward_ad.unpack_dual(block.forward_reference(forward_ad.make_dual(x, tangent))).tangent
    torch.testing.assert_close(got, want)


def test_double_backward_raises_a_clear_error(path: str) -> None:
    """The hand-written backward passes build no graph: create_graph=True stops with a message naming torch.func.

    Without the check the op's gradients came back graph-less, so a gradient penalty silently missed the block.
    """
    block = randomised(SCSA(8), seed=31).double()
    x = torch.randn(1, 8, 9, 7, dtype=torch.float64, requires_grad=True)
    with pytest.raises(RuntimeError, match="has no double backward .*use torch.func"):
        torch.autograd.grad(block(x).square().sum(), x, create_graph=True)
    torch.autograd.grad(block(x).square().sum(), x)  # first order, grad mode off in backward: no error


def test_each_checkout_gets_its_own_build(tmp_path) -> None:
    """Two copies of the kernel source build into two cache folders (one shared folder was rebuilt at every switch)."""
    copy = tmp_path / "scsa_cpu.cpp"
    copy.write_bytes(cpu_kernel.SOURCE.read_bytes())
    here = cpu_kernel._build_name(cpu_kernel.SOURCE, "AVX2")
    assert here == cpu_kernel._build_name(cpu_kernel.SOURCE, "AVX2")
    assert here != cpu_kernel._build_name(copy, "AVX2")
    assert here != cpu_kernel._build_name(cpu_kernel.SOURCE, "AVX512")
    assert cpu_kernel._build_name(cpu_kernel.SOURCE, "NO AVX").isidentifier()
