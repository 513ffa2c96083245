"""Grad-CAM attention maps of YOLO detection models, one column per model, one row per image (docs/attention.md).

Example: scsa-yolo cam --model runs/plain/weights/best.pt --model runs/scsa/weights/best.pt --source images/
writes runs/cam/cam_grid.jpg. Needs the extra: pip install 'scsa-yolo[compare]'.

Target: per image, the sum of the best-class logit of every Detect anchor whose best class score reaches --conf (the
--top-k best anchors if none does). Default layers: the inputs of the Detect head (the attention blocks in the
scsa_yolo comparison configs, the neck C2f layers in plain YOLOv8).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the attention-map flags to ``parser`` (no heavy import: ``--help`` stays fast)."""
    parser.add_argument("--model", action="append", required=True, help=".pt checkpoint or .yaml config; repeatable")
    parser.add_argument("--source", required=True, help="image file or folder of images")
    parser.add_argument(
        "--layer", type=int, nargs="+", help="indices of the model layers to explain (default: the Detect inputs)"
    )
    parser.add_argument(
        "--method", default="gradcam", help="gradcam, gradcam++, xgradcam, layercam, hirescam, eigencam"
    )
    parser.add_argument("--imgsz", type=int, default=640, help="square input size, a multiple of 32 (default 640)")
    parser.add_argument("--conf", type=float, default=0.25, help="class-score threshold of the target (default 0.25)")
    parser.add_argument("--top-k", type=int, default=10, help="anchors of the target when none reaches --conf")
    parser.add_argument("--max-images", type=int, help="cap on the images of a folder (default 8)")
    parser.add_argument("--device", default="", help="device as Ultralytics takes it: 0 or cpu (default: GPU 0 or CPU)")
    parser.add_argument("--output", default="runs/cam/cam_grid.jpg", help="grid image to write")


def run(args: argparse.Namespace) -> int:
    """Write the grid and say where it is; a bad argument is a one-line error (exit 2) before any model loads."""
    from scsa_yolo.cam import MAX_IMAGES, write_cam_grid

    output = write_cam_grid(
        args.model,
        args.source,
        layers=args.layer,
        method=args.method,
        imgsz=args.imgsz,
        conf=args.conf,
        top_k=args.top_k,
        max_images=MAX_IMAGES if args.max_images is None else args.max_images,
        device=args.device,
        output=args.output,
    )
    print(f"attention maps of {len(args.model)} model(s): {output}")
    return 0
