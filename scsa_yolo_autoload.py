"""Start-up hook that lets the stock ``yolo`` command (and any Python process) use scsa_yolo's blocks.

``scsa_yolo_autoload.pth`` imports this module when Python starts. It imports neither torch nor Ultralytics: it only
puts a finder on ``sys.meta_path`` that waits for ``ultralytics.nn.tasks`` (where model YAMLs are parsed) and imports
``scsa_yolo`` right after that module has run, which registers the blocks. Set ``SCSA_YOLO_AUTOLOAD=0`` to turn the
hook off.

Installers copy this file into site-packages (editable installs too): after editing it, reinstall the package.
"""

import os
import sys

_TRIGGER = "ultralytics.nn.tasks"


class _RegisterAfterTasksImport:
    """A meta-path finder that only reacts to ``ultralytics.nn.tasks`` and defers the real finding to the others."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _TRIGGER:
            return None
        sys.meta_path.remove(self)  # one-shot; also keeps the lookup below from finding this finder again
        from importlib.util import find_spec

        spec = find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module_then_register(module):
            load(module)
            try:
                import scsa_yolo  # noqa: F401  (importing it registers the blocks)
            except ImportError as error:  # e.g. an unsupported Ultralytics: plain models must keep working
                import warnings

                warnings.warn(f"scsa_yolo is installed but not registered: {error}", stacklevel=2)

        spec.loader.exec_module = exec_module_then_register
        return spec


if os.environ.get("SCSA_YOLO_AUTOLOAD", "1") != "0" and _TRIGGER not in sys.modules:
    sys.meta_path.insert(0, _RegisterAfterTasksImport())
