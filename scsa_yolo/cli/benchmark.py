"""Train the plain and the SCSA model on the same data and compare them (see docs/benchmark.md).

With no arguments: yolov8n.yaml vs yolov8n-scsa.yaml on the embedded deepforest tree-crown tiles, one seed, sized
for about 8 to 12 minutes on a 2-core CPU; the table is printed at the end and written to runs/benchmark/.

Exit status: 0 done; 2 bad input, nothing trained (the message names the flag or file); 1 some runs failed (each
named; the others are recorded, the same command again retries the failed ones) or an internal error (with a
traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse

from scsa_yolo.benchmark.settings import DEFAULT_OUT, DEFAULT_PRESET, ENGINES, TrainSettings


def seed_list(text: str) -> list[int]:
    """Parse '0,1,2' into seeds, with an argparse error naming the bad item."""
    try:
        return [int(seed) for seed in text.split(",") if seed.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's flags to ``parser`` (reads only the light settings module: no torch, no Ultralytics)."""
    defaults = TrainSettings()
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--models",
        help="comma-separated model YAMLs/checkpoints of one task (detect, segment, pose, obb, classify, semantic, "
        "depth), reference first",
    )
    group.add_argument(
        "--preset",
        help=f"named model list: scsa (default: yolov8n vs yolov8n-scsa), attention, attention-<yolov8n|yolo11n|"
        f"yolo26n>, families, placements (default {DEFAULT_PRESET})",
    )
    parser.add_argument(
        "--data",
        help="dataset YAML (classifiers: a folder with train/ and val/), or several comma-separated: one table, "
        "comparisons per dataset (default: the embedded deepforest tree-crown dataset, for detection)",
    )
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--imgsz", type=int, default=defaults.imgsz)
    parser.add_argument("--batch", type=int, default=defaults.batch)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--device", default=defaults.device, help="training device, e.g. cpu or 0 (default: auto)")
    parser.add_argument("--seeds", type=seed_list, default=[0], help="comma-separated training seeds (default 0)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default runs/benchmark)")
    engine = parser.add_argument_group("engine", "where the runs happen (the Ray engine needs scsa-yolo[cluster])")
    engine.add_argument(
        "--engine",
        choices=ENGINES,
        default="sequential",
        help="sequential: one run after another in this process (default); ray: one Ray Tune trial per run",
    )
    engine.add_argument(
        "--gpus-per-run", type=int, help="Ray: GPUs per run, >1 trains with DDP (default: 1 if the cluster has GPUs)"
    )
    engine.add_argument(
        "--cpus-per-run", type=float, help="Ray: CPUs per run (default: 1 on CPU, else the cluster's CPUs per GPU)"
    )
    engine.add_argument(
        "--ray-address", help="Ray: cluster address, e.g. 10.0.0.1:6379 (default: $RAY_ADDRESS, else a local Ray)"
    )


def request_from_args(args: argparse.Namespace):
    """The :class:`~scsa_yolo.benchmark.settings.BenchmarkRequest` the flags ask for (nothing checked yet)."""
    from scsa_yolo.benchmark.settings import BenchmarkRequest, RayOptions

    models = tuple(name.strip() for name in (args.models or "").split(",") if name.strip())
    datasets = tuple(name.strip() for name in (args.data or "").split(",") if name.strip())
    settings = TrainSettings(
        epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, workers=args.workers, device=args.device
    )
    return BenchmarkRequest(
        models=models,
        preset=args.preset,
        datasets=datasets,
        settings=settings,
        seeds=tuple(args.seeds),
        out=args.out,
        engine=args.engine,
        ray_options=RayOptions(
            address=args.ray_address, gpus_per_run=args.gpus_per_run, cpus_per_run=args.cpus_per_run
        ),
    )


def run(args: argparse.Namespace) -> int:
    """Plan the benchmark once (every check), run the plan; the table is printed and written under ``args.out``.

    Returns:
        (int): 0 on success; 1 when some runs failed (each named). Bad input raises a
        :class:`~scsa_yolo.errors.UsageError` before anything trains (the command prints it and exits 2).
    """
    import sys

    from scsa_yolo.benchmark.engines import RunsFailedError
    from scsa_yolo.benchmark.plan import plan_benchmark
    from scsa_yolo.benchmark.runner import run_benchmark

    plan = plan_benchmark(request_from_args(args))
    try:
        run_benchmark(plan)
    except RunsFailedError as error:
        print(f"scsa-yolo benchmark: runs failed: {error}", file=sys.stderr)
        return 1
    return 0
