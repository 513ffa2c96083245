"""Print the op histogram of SCSA's exported graph: one block in ONNX and TorchScript, and a whole model's extra ops.

What an exporting runtime sees of SCSA (ONNX Runtime, OpenVINO, MNN, LiteRT read the ONNX graph; NCNN's pnnx and
x2paddle read the TorchScript trace). Usage:

    python scripts/export_graph_ops.py [--channels 64] [--size 40] [--imgsz 320] [--no-model]

The model part exports ``yolov8n.yaml`` and ``yolov8n-scsa.yaml`` with Ultralytics (ONNX, simplified, static) and prints
the op counts the SCSA model has beyond the plain one.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import warnings
from pathlib import Path

import torch


def onnx_histogram(path: Path) -> collections.Counter:
    import onnx

    return collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def block_onnx(block: torch.nn.Module, x: torch.Tensor, folder: Path, simplify: bool) -> collections.Counter:
    import onnx
    from ultralytics.utils.export.engine import best_onnx_opset

    path = folder / "scsa.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(block, x, str(path), opset_version=best_onnx_opset(onnx), dynamo=False)
    if simplify:
        import onnxslim

        onnx.save(onnxslim.slim(onnx.load(str(path))), str(path))
    return onnx_histogram(path)


def block_torchscript(block: torch.nn.Module, x: torch.Tensor) -> collections.Counter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(block, x)
    graph = torch._C._jit_pass_inline(traced.graph) or traced.graph
    return collections.Counter(node.kind() for node in graph.nodes() if not node.kind().startswith("prim::"))


def model_extra_ops(imgsz: int, folder: Path) -> tuple[collections.Counter, int]:
    from ultralytics import YOLO

    counts = {}
    for name in ("yolov8n.yaml", "yolov8n-scsa.yaml"):
        model = YOLO(name)
        model.model.yaml_file = str(folder / name)  # the export lands in the temp folder
        path = model.export(format="onnx", imgsz=imgsz, simplify=True, verbose=False)
        counts[name] = onnx_histogram(Path(path))
    blocks = sum(type(m).__name__ == "SCSA" for m in YOLO("yolov8n-scsa.yaml").model.modules())
    return counts["yolov8n-scsa.yaml"] - counts["yolov8n.yaml"], blocks


def show(title: str, counts: collections.Counter) -> None:
    print(f"\n{title}: {sum(counts.values())} ops")
    for op, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {op:<28} {count}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--no-model", action="store_true", help="only the block")
    args = parser.parse_args()

    from scsa_yolo.nn import SCSA

    torch.manual_seed(0)
    block = SCSA(args.channels).eval().requires_grad_(False)
    x = torch.randn(1, args.channels, args.size, args.size)
    with tempfile.TemporaryDirectory() as folder:
        show(f"SCSA({args.channels}) on 1x{args.channels}x{args.size}x{args.size}, TorchScript trace (aten ops)",
             block_torchscript(block, x))  # fmt: skip
        show("same, ONNX as exported", block_onnx(block, x, Path(folder), simplify=False))
        show("same, ONNX simplified (onnxslim, as Ultralytics exports)", block_onnx(block, x, Path(folder), True))
        if not args.no_model:
            extra, blocks = model_extra_ops(args.imgsz, Path(folder))
            show(f"yolov8n-scsa minus yolov8n, ONNX at {args.imgsz} ({blocks} SCSA blocks)", extra)


if __name__ == "__main__":
    main()
