"""SCSA (Spatial and Channel Synergistic Attention) for Ultralytics YOLO.

``import scsa_yolo`` registers the package's blocks with Ultralytics, so model YAMLs can name ``SCSA``: at once when
Ultralytics' model code is already imported, otherwise right after it is (``scsa_yolo.hook``). The import itself
loads neither torch nor Ultralytics; the public names below are loaded on first use, so the ``scsa-yolo`` command's
``--help`` stays fast. The stock ``yolo`` command needs no import: the installed start-up hook
(``scsa_yolo_autoload.pth``) imports this package at interpreter start (``SCSA_YOLO_AUTOLOAD=0`` turns it off).

``scsa_yolo.register()`` registers at once and raises ``scsa_yolo.integration.UnsupportedUltralytics`` on an
Ultralytics outside the supported range; the import-time registration only warns, so plain models keep working.
"""

from __future__ import annotations

import importlib

from scsa_yolo import hook
from scsa_yolo.version import __version__

__all__ = ["BLOCKS", "SCSA", "__version__", "create_block", "model_yaml", "register"]

# Public name -> module that defines it (imported on first access; each imports torch).
_LAZY = {
    "BLOCKS": "scsa_yolo.nn",
    "SCSA": "scsa_yolo.nn",
    "create_block": "scsa_yolo.nn",
    "model_yaml": "scsa_yolo.models",
}


def register() -> None:
    """Make every block in ``scsa_yolo.nn.BLOCKS`` usable in Ultralytics model YAMLs now; safe to call repeatedly.

    Raises:
        scsa_yolo.integration.UnsupportedUltralytics: If the installed Ultralytics is outside the supported range or
            lacks an internal the registration relies on.
    """
    from scsa_yolo.integration import register as register_blocks

    register_blocks()


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scsa_yolo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


hook.install()
