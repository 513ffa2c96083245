"""Registration on Ultralytics' import: what ``import scsa_yolo`` and the start-up hook do, without importing torch.

``install()`` registers the blocks at once when Ultralytics' model code (``ultralytics.nn.tasks``) is already imported,
and otherwise puts a one-shot finder on ``sys.meta_path`` that registers right after that module has run. So
``import scsa_yolo`` stays cheap (the ``scsa-yolo`` command's ``--help`` imports neither torch nor Ultralytics), and a
Python API user who writes ``import scsa_yolo`` then ``from ultralytics import YOLO`` (or the other way round) finds
the blocks registered. The start-up hook (``scsa_yolo_autoload.pth``) imports this package at interpreter start unless
``SCSA_YOLO_AUTOLOAD=0``, which is how the stock ``yolo`` command sees SCSA.

A registration that fails inside Ultralytics' import (an unsupported Ultralytics) is reported as one warning and
leaves plain Ultralytics working; ``scsa_yolo.register()`` called explicitly raises instead.
"""

from __future__ import annotations

import sys
import warnings

TRIGGER = "ultralytics.nn.tasks"
"""The module whose import triggers registration: where Ultralytics parses model YAMLs."""

ENV_SWITCH = "SCSA_YOLO_AUTOLOAD"
"""Environment variable: ``0`` keeps the start-up hook (the ``.pth`` line) from importing scsa_yolo."""

PTH_FILE = "scsa_yolo_autoload.pth"
"""The start-up hook's file in site-packages."""

failure: Exception | None = None
"""The error of the last registration attempted by the hook, if it failed (``scsa-yolo doctor`` reports it)."""


class RegisterAfterImport:
    """A meta-path finder that only reacts to :data:`TRIGGER` and defers the real finding to the other finders."""

    def find_spec(self, fullname, path=None, target=None):
        """Find ``fullname`` with the other finders; for :data:`TRIGGER`, register after its module has run."""
        if fullname != TRIGGER:
            return None
        sys.meta_path.remove(self)  # one-shot; also keeps the lookup below from finding this finder again
        from importlib.util import find_spec

        spec = find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module_then_register(module):
            load(module)
            register_or_warn()

        spec.loader.exec_module = exec_module_then_register
        return spec


def register_or_warn() -> None:
    """Register the blocks; on an unsupported Ultralytics, warn once (plain models must keep working)."""
    global failure
    try:
        from scsa_yolo.integration import register

        register()
        failure = None
    except ImportError as error:
        failure = error
        warnings.warn(f"scsa_yolo is installed but not registered: {error}", stacklevel=3)


def pending() -> bool:
    """Whether a finder is waiting for :data:`TRIGGER` in this process."""
    return any(isinstance(finder, RegisterAfterImport) for finder in sys.meta_path)


def install() -> None:
    """Register now if Ultralytics' model code is imported, otherwise right after it is (idempotent).

    Raises:
        ImportError: If Ultralytics is already imported and cannot take the registration (unsupported version).
    """
    if TRIGGER in sys.modules:
        from scsa_yolo.integration import register

        register()
    elif not pending():
        sys.meta_path.insert(0, RegisterAfterImport())
