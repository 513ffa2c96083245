"""Start-up hook that lets the stock ``yolo`` command (and any Python process) use scsa_yolo's blocks.

``scsa_yolo_autoload.pth`` imports this module when Python starts. Unless ``SCSA_YOLO_AUTOLOAD=0``, it imports
``scsa_yolo``, which loads neither torch nor Ultralytics: it only puts a finder on ``sys.meta_path`` that registers
the blocks right after ``ultralytics.nn.tasks`` (where model YAMLs are parsed) has run (see ``scsa_yolo.hook``).
``scsa-yolo doctor`` says whether this hook is active in an environment, and if not, why.

Installers copy this file into site-packages (editable installs too): after editing it, reinstall the package.
"""

import os

if os.environ.get("SCSA_YOLO_AUTOLOAD", "1") != "0":
    try:
        import scsa_yolo  # noqa: F401  (light: installs the registration hook)
    except Exception as error:  # a broken install must not break every Python process of the environment
        import warnings

        warnings.warn(f"scsa_yolo's start-up hook failed: {error!r}; run 'scsa-yolo doctor'", stacklevel=1)
