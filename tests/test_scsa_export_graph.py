"""SCSA's dispatch and its export graph: the switches read once, the path chosen per call, and the export-friendly
graph (``scsa_yolo.nn.export_graph``) equal to ``forward_reference`` eagerly, traced, and exported to ONNX."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import warnings

import pytest
import torch
from helpers import OPTIONS, SHAPES, options_id, randomised

from scsa_yolo.nn import SCSA, functional, switches
from scsa_yolo.nn.export_graph import scsa_export
from scsa_yolo.nn.kernels import cpu as cpu_kernel


def export_output(block: SCSA, x: torch.Tensor) -> torch.Tensor:
    window = functional.pooling_window(x.shape[2], x.shape[3], block.window_size)
    return scsa_export(x, block._kernel_parameters(x), block.options(), block.training, window)


@pytest.mark.parametrize("options", OPTIONS, ids=options_id)
def test_export_graph_matches_reference_eager_and_traced(options: dict) -> None:
    """Eager (weights as constants and, with gradients, in the graph) and traced, at every shape: <= 1e-5."""
    for index, shape in enumerate(SHAPES):
        block = randomised(SCSA(shape[1], **options), seed=index).eval()
        x = torch.randn(shape, generator=torch.Generator().manual_seed(100 + index))
        reference = block.forward_reference(x).detach()
        assert (export_output(block, x) - reference).abs().max().item() <= 1e-5, (shape, "with grad")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # maps below the window warn when traced
            assert (export_output(block, x) - reference).abs().max().item() <= 1e-5, (shape, "no grad")
            traced = torch.jit.trace(block, x, check_trace=False)
            assert (traced(x) - reference).abs().max().item() <= 1e-5, (shape, "traced")


def test_export_graph_gradients_match_reference() -> None:
    """Traced with gradients enabled (weights in the graph), it differentiates like the reference."""
    block = randomised(SCSA(16, head_num=2), seed=3).train()
    x = torch.randn(2, 16, 15, 10, requires_grad=True)
    params = list(block.parameters())
    got = torch.autograd.grad(export_output(block, x).square().sum(), [x, *params])
    want = torch.autograd.grad(block.forward_reference(x).square().sum(), [x, *params])
    for name, g, w in zip(["input", *(n for n, _ in block.named_parameters())], got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5 * w.abs().max().item(), msg=lambda m, n=name: f"{n}: {m}")


def traced_ops(block: SCSA, x: torch.Tensor) -> collections.Counter:
    with torch.no_grad():
        graph = torch.jit.trace(block, x).graph
    return collections.Counter(node.kind() for node in graph.nodes())


def test_traced_graph_has_what_ncnn_and_paddle_take() -> None:
    """No unbind (x2paddle), no slices with graph-valued bounds (NCNN Crop), no kernel built from the weights in the
    graph (x2paddle): two convs with constant kernels, two pooling ops."""
    ops = traced_ops(randomised(SCSA(32), seed=1).eval().requires_grad_(False), torch.randn(1, 32, 20, 20))
    for absent in ("aten::unbind", "aten::slice", "aten::cat", "aten::index_select", "aten::clamp", "aten::split"):
        assert ops[absent] == 0, (absent, ops)
    assert ops["aten::_convolution"] == 2 and ops["aten::avg_pool2d"] == 2, ops  # rows, then columns


def test_onnx_export_of_the_block_matches_reference_static_and_dynamic(tmp_path) -> None:
    """The block exported to ONNX runs in ONNX Runtime like the reference; a dynamic graph also on maps below the
    window it was not traced on (graph-valued windows under ONNX)."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    block = randomised(SCSA(16, head_num=2), seed=4).eval().requires_grad_(False)
    path = str(tmp_path / "scsa.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            block, torch.randn(1, 16, 20, 20), path, dynamo=False, opset_version=17,
            input_names=["x"], dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}},
        )  # fmt: skip
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    for shape in [(1, 16, 20, 20), (2, 16, 13, 9), (1, 16, 3, 30)]:
        x = torch.randn(shape)
        got = session.run(None, {"x": x.numpy()})[0]
        torch.testing.assert_close(torch.from_numpy(got), block.forward_reference(x), rtol=1e-4, atol=1e-5)


def test_dispatch_picks_one_path_per_call() -> None:
    """The op in eager mode where it applies, the export graph under tracing, the PyTorch ops with the kernels off."""
    block = SCSA(16).eval()
    x = torch.randn(1, 16, 14, 14)
    params, options = block._kernel_parameters(x), block.options()
    with switches.kernel_switches_set(cpu_kernel=False):
        assert functional.select_path(x, params, options, False) is functional.Path.TORCH
    seen = []

    def spy(module: SCSA, inputs: tuple) -> None:
        seen.append(functional.select_path(inputs[0], params, options, False))

    handle = block.register_forward_pre_hook(spy)  # (a hook on the block itself, not a submodule)
    with torch.no_grad():
        torch.jit.trace(block, x, check_trace=False)  # (the check would rerun it eagerly: the op)
        block(x)
    handle.remove()
    eager = functional.Path.KERNEL if cpu_kernel.load() is not None else functional.Path.TORCH
    assert seen == [functional.Path.EXPORT, eager]


def test_switches_are_read_once_at_import() -> None:
    """The environment sets the switches at import; changing it later does nothing; set_kernel_switches does."""
    code = (
        "import os; from scsa_yolo.nn import switches, scsa_fused;"
        "first = switches.kernel_switches();"
        "os.environ['SCSA_YOLO_FUSED'] = '1'; os.environ['SCSA_YOLO_CUDA_KERNEL'] = '0';"
        "assert switches.kernel_switches() == first;"
        "print(first.describe()); print(scsa_fused.kernel_status());"
        "previous = switches.set_kernel_switches(cuda_kernel=False); assert previous == first;"
        "print(switches.kernel_switches().describe())"
    )
    env = {**os.environ, "SCSA_YOLO_FUSED": "0", "SCSA_YOLO_CUDA_KERNEL": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "SCSA_YOLO_FUSED=0 SCSA_YOLO_CUDA_KERNEL=1"
    assert "fused kernel unavailable: SCSA_YOLO_FUSED=0" in lines[1]
    assert lines[2] == "SCSA_YOLO_FUSED=0 SCSA_YOLO_CUDA_KERNEL=0"


def test_switch_context_restores() -> None:
    before = switches.kernel_switches()
    with switches.kernel_switches_set(cpu_kernel=not before.cpu_kernel):
        assert switches.kernel_switches().cpu_kernel is not before.cpu_kernel
    assert switches.kernel_switches() == before
