"""Train the plain and the SCSA model on the same data and compare them (see docs/benchmark.md).

With no arguments: yolov8n.yaml vs yolov8n-scsa.yaml on the embedded deepforest tree-crown tiles, one seed, sized
for about 8 to 12 minutes on a 2-core CPU; the table is printed at the end and written to runs/benchmark/.
"""

from __future__ import annotations

import argparse
import sys


def seed_list(text: str) -> list[int]:
    """Parse '0,1,2' into seeds, with an argparse error naming the bad item."""
    try:
        return [int(seed) for seed in text.split(",") if seed.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be comma-separated integers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark's flags to ``parser``."""
    from scsa_yolo.benchmark import PRESETS, TrainSettings
    from scsa_yolo.benchmark.runner import DEFAULT_OUT, DEFAULT_PRESET, ENGINES

    defaults = TrainSettings()
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--models", help="comma-separated model YAMLs/checkpoints, reference first")
    group.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help=f"named model list (default {DEFAULT_PRESET}: {', '.join(PRESETS[DEFAULT_PRESET])})",
    )
    parser.add_argument(
        "--data",
        help="dataset YAML, or several comma-separated: one table, comparisons per dataset "
        "(default: the embedded deepforest tree-crown dataset)",
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


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; the table is printed and written under ``args.out``.

    Returns:
        (int): 0 on success; 2 on bad set-up, nothing trained (the demo data's wheel or Ray missing, a resource
        request the cluster cannot meet, an output folder holding runs with other settings); 1 when some Ray trials
        failed (each named). The reason is printed to stderr.
    """
    from scsa_yolo.benchmark import TrainSettings, resolve_models, run_benchmark
    from scsa_yolo.benchmark.engines import EngineOptionError, RayOptions, RunsFailedError
    from scsa_yolo.benchmark.runner import SettingsMismatchError, plan_benchmark
    from scsa_yolo.data.deepforest import MissingWheelError

    datasets = [name.strip() for name in args.data.split(",") if name.strip()] if args.data else None
    settings = TrainSettings(
        epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, workers=args.workers, device=args.device
    )
    ray_options = RayOptions(address=args.ray_address, gpus_per_run=args.gpus_per_run, cpus_per_run=args.cpus_per_run)
    try:  # every model, dataset and option is checked before the first run trains: these are the user's to fix
        models = resolve_models(args.models, args.preset)
        plan_benchmark(models, settings, args.seeds, args.out, datasets)
    except (MissingWheelError, ValueError, FileNotFoundError, ModuleNotFoundError, SettingsMismatchError) as error:
        print(f"scsa-yolo benchmark: error: {error}", file=sys.stderr)
        return 2
    try:
        run_benchmark(
            models, settings, args.seeds, args.out, datasets=datasets, engine=args.engine, ray_options=ray_options
        )
    except (ImportError, EngineOptionError, SettingsMismatchError) as error:  # nothing trained
        print(f"scsa-yolo benchmark: error: {error}", file=sys.stderr)
        return 2
    except RunsFailedError as error:
        print(f"scsa-yolo benchmark: error: {error}", file=sys.stderr)
        return 1
    return 0
