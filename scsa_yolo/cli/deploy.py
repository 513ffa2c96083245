"""Export models to every runtime Ultralytics supports on this CPU, validate each, and tabulate SCSA vs plain.

For each target (format x precision: torchscript, onnx[:fp16|:int8], openvino[:fp16|:int8], ncnn, mnn,
litert[:int8], saved_model, pb, executorch, paddle) every model is exported with Ultralytics' exporter, run through
Ultralytics' own backend (raw-output parity to PyTorch on the same images), validated with Ultralytics' validator on
--data, and timed at batch 1 in interleaved rounds. The first model is the reference (the plain detector): the table
gives each other model's latency ratio to it (95 % interval over rounds) and its INT8 mAP drop next to the
reference's (paired bootstrap over the val images). Writes deploy.csv, deploy.md and deploy.png into --out.

A format that cannot run here, a runtime package that is missing (with the pip command) or an INT8 target without
calibration images is one line; the others go on. Nothing is downloaded or pip-installed at run time.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the deploy command's flags to ``parser``."""
    parser.add_argument(
        "--models",
        nargs="+",
        type=Path,
        required=True,
        metavar="MODEL",
        help=".pt checkpoints or model .yaml files (built with --seed); the first is the reference (plain model)",
    )
    parser.add_argument("--data", required=True, help="dataset YAML: val split validated, --calib-split for INT8")
    parser.add_argument(
        "--formats",
        nargs="+",
        default=["all"],
        metavar="TARGET",
        help="FORMAT or FORMAT:PRECISION (fp32, fp16, int8, all), e.g. onnx onnx:int8 openvino:all; 'all' (default) "
        "is every target that runs on this CPU",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/deploy"), help="output folder (new or empty)")
    parser.add_argument("--exist-ok", action="store_true", help="write into a non-empty --out")
    parser.add_argument("--imgsz", type=int, default=320, help="square input size of every export (multiple of 32)")
    parser.add_argument("--rounds", type=int, default=30, help="interleaved latency rounds per target")
    parser.add_argument("--parity-images", type=int, default=4, help="val images the raw outputs are compared on")
    parser.add_argument("--calib-split", default="train", help="dataset split INT8 calibration reads")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap replicates of the INT8 drops")
    parser.add_argument("--seed", type=int, default=0, help="seed of YAML-built models and of the bootstrap")


def run(args: argparse.Namespace) -> int:
    """Check the arguments, run every target, print the table."""
    from scsa_yolo.deploy.runner import REPORT_MD, DeployConfig
    from scsa_yolo.deploy.runner import run as run_deploy

    config = DeployConfig(
        models=list(args.models),
        data=args.data,
        formats=list(args.formats),
        out=args.out,
        imgsz=args.imgsz,
        rounds=args.rounds,
        parity_images=args.parity_images,
        calib_split=args.calib_split,
        resamples=args.resamples,
        seed=args.seed,
        exist_ok=args.exist_ok,
    )
    run_deploy(config)
    print((config.out / REPORT_MD).read_text(encoding="utf-8"))
    return 0
