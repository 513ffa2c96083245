"""The SCSA op: its registration (opcheck, torch.compile) and its CUDA kernel under Triton's interpreter.

The Triton kernel (``scsa_yolo.nn.kernels.triton_scsa``) runs here on CPU tensors under ``TRITON_INTERPRET=1``,
against ``forward_reference``: outputs, input and parameter gradients, statistics against the CPU kernel's, on
small odd shapes (maps smaller than the window, H != W, rows and columns past the last full window), in float32,
float16 and bfloat16. Shapes stay tiny: the interpreter runs every program in Python.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
import torch
from helpers import randomised

from scsa_yolo.nn import SCSA, functional, scsa_fused, switches
from scsa_yolo.nn.kernels import PARAMETERS, STATISTICS
from scsa_yolo.nn.kernels import cpu as cpu_kernel

pytest.importorskip("triton")

CASES = [
    ({}, (2, 8, 13, 9)),  # H != W, rows and columns past the last full window, a batch
    ({}, (1, 8, 5, 11)),  # shorter than the window on one axis
    ({"head_num": 2, "qkv_bias": True}, (1, 8, 1, 7)),  # one row; two heads; q/k/v biases
    ({"window_size": -1}, (1, 8, 6, 10)),  # global pooling; PCSA as tensor ops, on a card too small (see the test)
    ({"window_size": 3, "group_kernel_sizes": (1, 3, 5, 11)}, (1, 8, 8, 7)),  # 3x3 windows, trailing row and column
]
"""(block options, input shape): every option of the op's kernels and every kind of odd map, on few planes."""


@pytest.fixture(scope="module")
def triton_kernel() -> ModuleType:
    """The Triton kernel module: on CUDA where there is a GPU, else under the interpreter (set in conftest.py)."""
    import triton

    if not torch.cuda.is_available() and not triton.knobs.runtime.interpret:
        pytest.skip("no GPU, and triton was imported before TRITON_INTERPRET=1 was set")
    from scsa_yolo.nn.kernels import triton_scsa

    return triton_scsa


@pytest.fixture(scope="module")
def device() -> torch.device:
    """Where the Triton kernel runs: the GPU, or the CPU under Triton's interpreter."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def op_arguments(block: SCSA, x: torch.Tensor) -> tuple:
    """The op's arguments after the input for ``block(x)``."""
    window_h, window_w = functional.pooling_window(x.shape[2], x.shape[3], block.window_size)
    eps = (block.norm_h.eps, block.norm_w.eps, block.norm.eps)
    return block._kernel_parameters(x), window_h, window_w, block.head_num, block.scaler, *eps


def by_name(block: SCSA, x: torch.Tensor, grads: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """The kernel's [input grad, *parameter grads] by parameter name (absent q/k/v biases dropped)."""
    params = block._kernel_parameters(x)
    return {"input": grads[0], **{n: g for n, g, p in zip(PARAMETERS, grads[1:], params) if p.numel()}}


def grads_by_name(block: SCSA, x: torch.Tensor, out: torch.Tensor, grad_out: torch.Tensor) -> dict[str, torch.Tensor]:
    """Autograd's gradients of ``out`` to the input and every parameter, by parameter name."""
    names, params = zip(*block.named_parameters())
    return dict(zip(("input", *names), torch.autograd.grad(out, [x, *params], grad_out)))


@pytest.mark.parametrize(("options", "shape"), CASES, ids=lambda v: str(v) if isinstance(v, tuple) else str(v or ""))
def test_triton_kernel_matches_reference(
    triton_kernel: ModuleType,
    device: torch.device,
    options: dict,
    shape: tuple[int, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Forward (max abs diff <= 1e-5) and backward (input and every parameter) agree with the reference.

    The global-pooling case runs PCSA as tensor ops, the path of heads too large for the channel-attention programs
    and of cards whose shared memory they overflow: there both programs raise Triton's OutOfResources, as on a GPU.
    """
    out_of_resources = set()
    monkeypatch.setattr(triton_kernel, "_out_of_resources", out_of_resources, raising=False)
    if options.get("window_size") == -1:
        from triton.runtime.errors import OutOfResources

        class TooLargeForThisCard:
            def __getitem__(self, grid: tuple) -> Callable:
                def launch(*args, **kwargs) -> None:
                    raise OutOfResources(147456, 101376, "shared memory")

                return launch

        monkeypatch.setattr(triton_kernel, "_channel_attention_kernel", TooLargeForThisCard())
        monkeypatch.setattr(triton_kernel, "_channel_attention_backward_kernel", TooLargeForThisCard())
    block = randomised(SCSA(shape[1], **options), seed=shape[2]).to(device)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(100)).to(device).requires_grad_(True)
    grad_out = torch.randn(shape, generator=torch.Generator().manual_seed(200)).to(device)
    params, *settings = op_arguments(block, x)
    with torch.no_grad():
        result = triton_kernel.forward(x, params, *settings, True)
    # The reference runs in float64: in float32 its own rounding on a one-row map (GroupNorm over 2 values) is 1e-4.
    block64, x64 = copy.deepcopy(block).double(), x.detach().double().requires_grad_(True)
    reference = block64.forward_reference(x64)
    assert len(result) == 1 + len(STATISTICS)
    assert (result[0] - reference).abs().max().item() <= 1e-5, (shape, options)
    if options.get("window_size") == -1:  # AMP: the tensor ops inside the op must not follow autocast
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
            under_autocast = triton_kernel.forward(x, params, *settings, True)
        fake = scsa_fused._scsa_fake(x, params, *settings, True)
        assert [t.dtype for t in under_autocast] == [t.dtype for t in fake]
        torch.testing.assert_close(under_autocast, result)

    wanted = {name: g.float() for name, g in grads_by_name(block64, x64, reference, grad_out.double()).items()}
    got = by_name(block, x, triton_kernel.backward(grad_out, x.detach(), params, result[1:], *settings[:4], True))
    assert out_of_resources == ({(16, 16)} if options.get("window_size") == -1 else set())
    assert got.keys() == wanted.keys()
    overall = max(g.abs().max().item() for g in wanted.values())
    for name, value in got.items():
        torch.testing.assert_close(
            value, wanted[name], rtol=1e-4, atol=1e-5 * overall, msg=lambda m, n=name: f"{shape} {n}: {m}"
        )


def test_triton_statistics_match_the_cpu_kernel_and_the_fake(triton_kernel: ModuleType, device: torch.device) -> None:
    """Both kernels return the same statistics (one contract for the backward), in the fake's shapes and dtypes."""
    assert cpu_kernel.load() is not None
    block = randomised(SCSA(8, head_num=2), seed=3)
    x = torch.randn(2, 8, 15, 10)
    args = op_arguments(block, x)
    on_device = op_arguments(copy.deepcopy(block).to(device), x.to(device))
    with torch.no_grad():
        triton_result = [t.cpu() for t in triton_kernel.forward(x.to(device), *on_device, True)]
        cpu_result = scsa_fused.scsa_op(x, *args, True)
        fake_result = scsa_fused._scsa_fake(x, *args, True)
        only_output = [t.cpu() for t in triton_kernel.forward(x.to(device), *on_device, False)]
    assert len(only_output) == 1 and torch.equal(only_output[0], triton_result[0])
    with pytest.raises(TypeError, match="float32, float16 or bfloat16 inputs, got torch.float64"):
        triton_kernel.forward(x.double().to(device), *on_device, False)  # the fake's float64 statistics
    for name, got, want, fake in zip(("out", *STATISTICS), triton_result, cpu_result, fake_result):
        assert got.shape == want.shape == fake.shape and got.dtype == want.dtype == fake.dtype, name
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_triton_kernel_half_precision(triton_kernel: ModuleType, device: torch.device, dtype: torch.dtype) -> None:
    """AMP inputs with float32 parameters: output and input gradient in the input's dtype, parameter gradients in
    float32, statistics in float32 as the fake says; values close to the float32 reference of the same input."""
    block = randomised(SCSA(8), seed=5).to(device)
    x = torch.randn(1, 8, 9, 12).to(device, dtype)
    params, *settings = op_arguments(block, x)
    result = triton_kernel.forward(x, params, *settings, True)
    fake = scsa_fused._scsa_fake(x, params, *settings, True)
    assert [(t.dtype, t.shape) for t in result] == [(t.dtype, t.shape) for t in fake]
    x32 = x.float().requires_grad_(True)
    reference = block.forward_reference(x32)
    tolerance = {"rtol": 2e-2, "atol": 2e-2} if dtype == torch.float16 else {"rtol": 5e-2, "atol": 5e-2}
    torch.testing.assert_close(result[0].float(), reference, **tolerance)
    grad_out = torch.randn(x.shape).to(device, dtype)
    grads = triton_kernel.backward(grad_out, x, params, result[1:], *settings[:4], True)
    assert grads[0].dtype == dtype and all(g.dtype == torch.float32 for g in grads[1:])
    wanted = grads_by_name(block, x32, reference, grad_out.float())
    for name, got in by_name(block, x, grads).items():
        scale = max(wanted[name].abs().max().item(), 1.0)
        torch.testing.assert_close(got.float(), wanted[name], rtol=5e-2, atol=5e-2 * scale, msg=name)


def test_opcheck_on_cpu() -> None:
    """torch.library.opcheck: schema, fake (meta) implementation, registered autograd, AOT dispatch."""
    assert cpu_kernel.load() is not None
    block = randomised(SCSA(8, qkv_bias=True), seed=7)
    x = torch.randn(1, 8, 9, 8, requires_grad=True)
    params, *settings = op_arguments(block, x)
    torch.library.opcheck(scsa_fused.scsa_op, (x, params, *settings, True))


def test_op_has_cpu_and_cuda_kernels_and_needs_no_scsa_import() -> None:
    """Both device kernels are registered, and the kernel modules never import the SCSA module."""
    for op in ("scsa_yolo::scsa", "scsa_yolo::scsa_backward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "CPU")
        assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA")
    from pathlib import Path

    kernel_sources = [Path(scsa_fused.__file__), *Path(cpu_kernel.__file__).parent.glob("*.py")]
    for source in kernel_sources:
        assert "scsa_yolo.nn.scsa " not in source.read_text() and "import SCSA" not in source.read_text(), source


def test_reloading_the_module_registers_the_op_once() -> None:
    """importlib.reload (notebooks' autoreload) re-registers the op instead of failing on a second namespace."""
    import importlib

    assert cpu_kernel.load() is not None
    importlib.reload(scsa_fused)
    block = randomised(SCSA(8), seed=8)
    x = torch.randn(1, 8, 9, 8, requires_grad=True)
    assert block.uses_kernel(x)
    out = block(x)
    assert out.grad_fn.name() == "_ScsaFunctionBackward"
    out.sum().backward()
    assert torch._C._dispatch_has_kernel_for_dispatch_key("scsa_yolo::scsa", "CPU")


def test_compile_traces_the_op() -> None:
    """torch.compile captures the op in one graph (fake implementation) and matches the reference; export does not."""
    assert cpu_kernel.load() is not None
    block = randomised(SCSA(8), seed=9)
    x = torch.randn(1, 8, 14, 11, requires_grad=True)
    graphs = []

    def capture(graph: torch.fx.GraphModule, inputs: list) -> object:
        graphs.append(graph)
        return graph.forward

    compiled = torch.compile(block, backend=capture, fullgraph=True)
    out = compiled(x)
    targets = {str(node.target) for graph in graphs for node in graph.graph.nodes}
    assert "scsa_yolo.scsa.default" in targets, targets
    reference = block.forward_reference(x)
    assert (out - reference).abs().max().item() <= 1e-5
    grad_out = torch.randn_like(out)
    got = torch.autograd.grad(out, x, grad_out)[0]
    want = torch.autograd.grad(reference, x, grad_out)[0]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * want.abs().max().item())

    exported = torch.export.export(block.eval(), (x.detach(),))  # export records the PyTorch ops, not the op
    assert not any("scsa_yolo" in str(node.target) for node in exported.graph.nodes)
    torch.testing.assert_close(exported.module()(x.detach()), reference.detach(), rtol=1e-5, atol=1e-5)


def test_cuda_kernel_is_opt_in() -> None:
    """On CUDA tensors the op is used only with SCSA_YOLO_CUDA_KERNEL=1 (checked with a stand-in for a CUDA tensor)."""
    x = torch.empty(1, 8, 7, 7, device="meta")
    assert not scsa_fused.kernel_supports(x, torch.float32)  # no kernel for other devices

    class FakeCuda:  # kernel_supports reads only device.type and dtype
        device = torch.device("cuda")
        dtype = torch.float16

    with switches.kernel_switches_set(cuda_kernel=False):
        assert not scsa_fused.kernel_supports(FakeCuda(), torch.float32)
    with switches.kernel_switches_set(cuda_kernel=True):
        assert scsa_fused.kernel_supports(FakeCuda(), torch.float32)
        assert "Triton kernel (SCSA_YOLO_CUDA_KERNEL=1)" in scsa_fused.kernel_status()
        with scsa_fused.fused_kernel_disabled():
            assert not scsa_fused.kernel_supports(FakeCuda(), torch.float32)


# ---- on a GPU only (scripts/gpu_check.sh runs these) -------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def cuda_kernel_on() -> Iterator[None]:
    """The Triton kernel switched on for the test (as ``SCSA_YOLO_CUDA_KERNEL=1`` at start-up does)."""
    with switches.kernel_switches_set(cuda_kernel=True):
        yield


@needs_cuda
def test_cuda_forward_runs_the_op_and_matches_reference(cuda_kernel_on: None) -> None:
    """With SCSA_YOLO_CUDA_KERNEL=1, SCSA.forward on CUDA runs the op, in float32 and under float16 autocast."""
    block = randomised(SCSA(64, head_num=2), seed=11).cuda()
    x = torch.randn(2, 64, 40, 33, device="cuda", requires_grad=True)
    assert block.uses_kernel(x)
    out = block(x)
    # The reference in float64: in float32 on a GPU its convolutions may run in TF32.
    block64, x64 = copy.deepcopy(block).double(), x.detach().double().requires_grad_(True)
    reference = block64.forward_reference(x64)
    assert (out - reference).abs().max().item() <= 1e-4
    grad_out = torch.randn_like(x)
    got = grads_by_name(block, x, out, grad_out)
    want = grads_by_name(block64, x64, reference, grad_out.double())
    for name, value in got.items():
        scale = max(want[name].abs().max().item(), 1.0)
        torch.testing.assert_close(value.double(), want[name], rtol=1e-3, atol=1e-4 * scale, msg=name)
    reference = reference.float()
    with torch.autocast("cuda", dtype=torch.float16):
        half = x.detach().half().requires_grad_(True)
        assert block.uses_kernel(half)
        out = block(half)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), reference.detach(), rtol=2e-2, atol=2e-2)
    out.float().sum().backward()
    assert half.grad.dtype == torch.float16 and torch.isfinite(half.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in block.parameters())


@needs_cuda
def test_cuda_opcheck() -> None:
    """opcheck on CUDA tensors: the Triton kernel against the fake implementation and the registered autograd."""
    block = randomised(SCSA(16), seed=13).cuda()
    x = torch.randn(2, 16, 15, 12, device="cuda", requires_grad=True)
    params, *settings = op_arguments(block, x)
    torch.library.opcheck(scsa_fused.scsa_op, (x, params, *settings, True))


def tensors_in(outputs: object) -> list[torch.Tensor]:
    """Every tensor of a (nested) model output: dicts, lists, tuples."""
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    values = outputs.values() if isinstance(outputs, dict) else outputs
    return [tensor for value in values for tensor in tensors_in(value)]


@needs_cuda
def test_cuda_model_amp_train_step_matches_ops_path(cuda_kernel_on: None) -> None:
    """YOLOv8n-SCSA on CUDA under AMP: the kernel and the PyTorch-op path give close head outputs and finite grads."""
    from ultralytics import YOLO

    import scsa_yolo  # noqa: F401  (registers SCSA with Ultralytics)

    model = YOLO("yolov8n-scsa.yaml").model.cuda().train()
    images = torch.rand(4, 3, 256, 256, device="cuda")
    outputs = {}
    for path in ("kernel", "ops"):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16):
            if path == "ops":
                with scsa_fused.fused_kernel_disabled():
                    heads = model(images)
            else:
                heads = model(images)
        flat = torch.cat([t.float().flatten() for t in tensors_in(heads)])
        flat.sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None), path
        outputs[path] = flat.detach()
    torch.testing.assert_close(outputs["kernel"], outputs["ops"], rtol=5e-2, atol=5e-2)
