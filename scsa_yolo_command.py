"""Entry point of the ``scsa-yolo`` command and of ``scripts/*.py``: the offline environment, then the subcommand.

Ultralytics reads ``YOLO_OFFLINE`` once, when ``ultralytics.utils`` is first imported, and ``import scsa_yolo``
imports Ultralytics. So the variable is set here, in a top-level module that imports nothing else first, and not in
``scsa_yolo.cli`` (importing that package runs ``scsa_yolo/__init__.py`` before any of its code). The parsers and
the work live in :mod:`scsa_yolo.cli`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

# No connectivity checks, no on-the-fly pip installs, no telemetry: every run of a subcommand is offline. A value the
# user set (e.g. YOLO_OFFLINE=0) is kept.
OFFLINE_ENVIRONMENT = {"YOLO_OFFLINE": "1"}


def main(argv: Sequence[str] | None = None) -> int:
    """Set the offline environment and run ``scsa-yolo ARGS``.

    Args:
        argv (Sequence[str] | None): Arguments without the program name, the subcommand first; None reads
            ``sys.argv[1:]``.

    Returns:
        (int): The subcommand's exit status.
    """
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    from scsa_yolo.cli import main as cli_main

    return cli_main(sys.argv[1:] if argv is None else argv)


def script_main(subcommand: str, argv: Sequence[str] | None = None) -> int:
    """Run one subcommand with the arguments of a ``scripts/*.py`` wrapper.

    Args:
        subcommand (str): Subcommand name, e.g. 'benchmark'.
        argv (Sequence[str] | None): The script's arguments; None reads ``sys.argv[1:]``.

    Returns:
        (int): The subcommand's exit status.
    """
    return main([subcommand, *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
