"""Time the SCSA block (reference, PyTorch-op and default paths) and YOLOv8n vs YOLOv8n-SCSA on the CPU or a GPU.

Prints a markdown report; ratios are measured in one process, candidates interleaved (see docs/speed.md).
--device cuda times the block at batch 1 and 16 in float32 and AMP, and the model at inference batch 1 and 32 and
an AMP train step, with the op's Triton kernel switched on; without a CUDA device it exits with status 1.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the speed benchmark's flags to ``parser``."""
    parser.add_argument("--repeats", type=int, default=100, help="interleaved rounds per module measurement")
    parser.add_argument("--model-repeats", type=int, default=30, help="interleaved inference rounds per model")
    parser.add_argument(
        "--train-repeats", type=int, default=12, help="interleaved training steps per model (fewer is noisy)"
    )
    parser.add_argument(
        "--train-batch", type=int, default=None, help="training batch size (default: 2 on cpu, 16 on cuda)"
    )
    parser.add_argument("--imgsz", type=int, default=640, help="model input side (inference and training)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the model (default: torch's)")
    parser.add_argument("--skip-model", action="store_true", help="time only the SCSA block")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where to time (cuda: the current CUDA device)"
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks and print the markdown report."""
    import torch

    from scsa_yolo.benchmark import speed

    if args.device == "cuda":
        return _run_cuda(args)
    module_rows = speed.bench_module(repeats=args.repeats)
    model_result = None
    if not args.skip_model:
        model_result = speed.bench_model(
            imgsz=args.imgsz,
            repeats=args.model_repeats,
            train_batch=args.train_batch or 2,
            train_imgsz=args.imgsz,
            train_repeats=args.train_repeats,
            threads=args.threads,
        )
    threads = model_result["threads"] if model_result else torch.get_num_threads()
    print(speed.format_report(module_rows, model_result, f"{speed.device_description()}, model threads {threads}"))
    return 0


def _run_cuda(args: argparse.Namespace) -> int:
    """The CUDA benchmark; a one-line error and status 1 where there is no CUDA device."""
    import torch

    from scsa_yolo.benchmark import speed

    reason = speed.cuda_unavailable_reason()
    if reason is not None:
        print(f"scsa-yolo speed --device cuda: {reason}", file=sys.stderr)
        return 1
    device = torch.device("cuda", torch.cuda.current_device())
    print(f"Timing on {speed.cuda_description(device)}", flush=True)
    module_rows = speed.bench_module_cuda(device, repeats=args.repeats)
    model_result = None
    if not args.skip_model:
        model_result = speed.bench_model_cuda(
            device,
            imgsz=args.imgsz,
            repeats=args.model_repeats,
            train_batch=args.train_batch or 16,
            train_repeats=args.train_repeats,
        )
    print(speed.format_cuda_report(module_rows, model_result, speed.cuda_description(device)))
    return 0
