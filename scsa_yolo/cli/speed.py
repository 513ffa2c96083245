"""Time the SCSA block (reference, PyTorch-op and default paths) and YOLOv8n vs YOLOv8n-SCSA on this machine's CPU.

Prints a markdown report; ratios are measured in one process, candidates interleaved (see docs/speed.md).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the speed benchmark's flags to ``parser``."""
    parser.add_argument("--repeats", type=int, default=100, help="interleaved rounds per module measurement")
    parser.add_argument("--model-repeats", type=int, default=30, help="interleaved inference rounds per model")
    parser.add_argument(
        "--train-repeats", type=int, default=12, help="interleaved training steps per model (fewer is noisy)"
    )
    parser.add_argument("--train-batch", type=int, default=2, help="training batch size")
    parser.add_argument("--imgsz", type=int, default=640, help="model input side (inference and training)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the model (default: torch's)")
    parser.add_argument("--skip-model", action="store_true", help="time only the SCSA block")


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks and print the markdown report."""
    import torch

    from scsa_yolo.benchmark.speed import bench_model, bench_module, device_description, format_report

    module_rows = bench_module(repeats=args.repeats)
    model_result = None
    if not args.skip_model:
        model_result = bench_model(
            imgsz=args.imgsz,
            repeats=args.model_repeats,
            train_batch=args.train_batch,
            train_imgsz=args.imgsz,
            train_repeats=args.train_repeats,
            threads=args.threads,
        )
    threads = model_result["threads"] if model_result else torch.get_num_threads()
    print(format_report(module_rows, model_result, f"{device_description()}, model threads {threads}"))
    return 0
