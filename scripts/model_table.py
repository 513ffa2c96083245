"""Print the README's model table: layers, parameters and GFLOPs of plain vs SCSA YOLOv8 at every scale."""

import argparse
import os

# Before Ultralytics is imported: no connectivity checks, no downloads, no telemetry.
os.environ.setdefault("YOLO_OFFLINE", "1")

from scsa_yolo.summary import SCALES, model_table  # noqa: E402

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", default=SCALES, help="scale letters to include (default: %(default)s)")
    parser.add_argument("--imgsz", type=int, default=640, help="image size for GFLOPs (default: %(default)s)")
    args = parser.parse_args()
    print(model_table(args.scales, args.imgsz))
