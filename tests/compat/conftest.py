"""The compatibility suite runs only where ``.ci/compat`` asks for it, in an environment made from the built wheel.

``.ci/compat`` sets ``SCSA_YOLO_COMPAT`` to the Ultralytics version it installed; a plain ``pytest`` in the
development environment does not collect this folder (it takes minutes and tests the installed wheel, not the
checkout).
"""

import os

collect_ignore_glob = [] if os.environ.get("SCSA_YOLO_COMPAT") else ["test_*.py"]
