"""``python -m scsa_yolo ARGS``: the stock ``yolo`` command with scsa_yolo registered first.

Same arguments as ``yolo`` (``python -m scsa_yolo train model=yolov8n-scsa.yaml data=...``); for environments where
the start-up hook does not run (``python -S``, or ``SCSA_YOLO_AUTOLOAD=0``). This is deliberate: the package's
module entry point is Ultralytics' command, which is what people train with. This project's own tools (benchmark,
prepare, cam, speed, ...) are the ``scsa-yolo`` command, also reachable as ``python -m scsa_yolo_command``.
An unsupported Ultralytics is one line naming it and the supported range (exit 2).
"""

import sys

from ultralytics.cfg import entrypoint

import scsa_yolo
from scsa_yolo.errors import EXIT_USAGE
from scsa_yolo.integration import UnsupportedUltralytics

try:
    scsa_yolo.register()
except UnsupportedUltralytics as error:
    print(f"python -m scsa_yolo: error: {error}", file=sys.stderr)
    sys.exit(EXIT_USAGE)

entrypoint()
