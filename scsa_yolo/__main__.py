"""``python -m scsa_yolo ARGS``: the ``yolo`` command with scsa_yolo registered first.

Same arguments as ``yolo``; for environments where the start-up hook does not run (``python -S``, or
``SCSA_YOLO_AUTOLOAD=0``).
"""

from ultralytics.cfg import entrypoint

import scsa_yolo  # noqa: F401  (importing it registers the blocks)

entrypoint()
