"""Grad-CAM attention maps of one or several YOLO detection models, side by side (see docs/attention.md).

Example: python scripts/cam.py --model runs/plain/weights/best.pt --model runs/scsa/weights/best.pt --source images/
writes runs/cam/cam_grid.jpg: one row per image, one column per model.
Needs the extra: pip install 'scsa-yolo[compare]'.
"""

import os

# Before Ultralytics is imported: no connectivity checks or downloads while drawing maps.
os.environ.setdefault("YOLO_OFFLINE", "1")

from scsa_yolo.cam import main  # noqa: E402

if __name__ == "__main__":
    main()
