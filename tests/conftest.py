"""Test-session set-up shared by every test module.

Ultralytics reads ``YOLO_CONFIG_DIR`` and ``YOLO_OFFLINE`` once, at import, so they are set here before any test
module imports it: settings go to a throw-away folder and nothing is fetched from the network.
"""

import os
import tempfile

os.environ["YOLO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="scsa-yolo-cfg-")
os.environ["YOLO_OFFLINE"] = "1"
