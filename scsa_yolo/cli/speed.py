"""Time the SCSA block (reference, PyTorch-op and default paths) and YOLOv8n vs YOLOv8n-SCSA on the CPU or a GPU.

Prints a markdown report; ratios are measured in one process, candidates interleaved (see docs/speed.md).
--device cuda times the block at batch 1 and 16 in float32 and AMP, and the model at inference batch 1 and 32 and
an AMP train step, with the op's Triton kernel switched on.

Exit status: 0 done; 2 bad input, nothing timed (a count below 1, an --imgsz that is not a positive multiple of 32,
--device cuda without a CUDA device: the message names the flag); 1 an internal error (with a traceback).
"""

from __future__ import annotations

import argparse

IMGSZ_STRIDE = 32  # the YOLO heads' largest stride: the input side must be a multiple of it


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


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse bad counts and sizes before anything is built, naming the flag.

    Raises:
        UsageError: For a count below 1 or a size that is not a positive multiple of 32.
    """
    from scsa_yolo.errors import UsageError

    counts = {"--repeats": args.repeats, "--model-repeats": args.model_repeats, "--train-repeats": args.train_repeats}
    counts |= {"--train-batch": args.train_batch, "--threads": args.threads}
    for flag, value in counts.items():
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value} must be at least 1")
    if args.imgsz < IMGSZ_STRIDE or args.imgsz % IMGSZ_STRIDE:
        raise UsageError(f"--imgsz {args.imgsz} must be a positive multiple of {IMGSZ_STRIDE}")


def run(args: argparse.Namespace) -> int:
    """Run the benchmarks on the chosen device and print the markdown report."""
    check_arguments(args)
    import torch

    from scsa_yolo.benchmark import speed
    from scsa_yolo.errors import UsageError

    if args.device == "cuda":
        reason = speed.cuda_unavailable_reason()
        if reason is not None:
            raise UsageError(f"--device cuda: {reason}; time the CPU with --device cpu")
        device = torch.device("cuda", torch.cuda.current_device())
        module_options = {"batches": speed.CUDA_BATCHES, "precisions": speed.PRECISIONS}
        model_options = {"infer_batches": (1, 32), "train_batch": args.train_batch or 16}
    else:
        device = torch.device("cpu")
        module_options = {}
        model_options = {"train_batch": args.train_batch or 2, "threads": args.threads}
    description = speed.device_description(device)
    print(f"Timing on {description}", flush=True)
    module_rows = speed.bench_module(device, repeats=args.repeats, **module_options)
    model_result = None
    if not args.skip_model:
        model_result = speed.bench_model(
            device, imgsz=args.imgsz, repeats=args.model_repeats, train_repeats=args.train_repeats, **model_options
        )
    print(speed.format_report(module_rows, model_result, description))
    return 0
