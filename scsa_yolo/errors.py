"""The one error style of the ``scsa-yolo`` command.

A problem with the user's input (an argument, a file, a missing extra) is raised as :class:`UsageError` (or a subclass
of it) anywhere in the package; the command prints it as one line, ``scsa-yolo SUB: error: MESSAGE``, and exits with
:data:`EXIT_USAGE`. Anything else that escapes a subcommand is a bug: the command prints the traceback and asks for a
report (:data:`EXIT_BUG`). Subcommands return their own documented codes for outcomes that are not errors (e.g. the
benchmark's "runs failed").
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input from the user: the message names the argument, file or line and says how to fix it.

    Args:
        message (str): One line: what is wrong, where, and the fix.
    """


class MissingExtraError(UsageError):
    """A feature needs an optional dependency group (``pip install 'scsa-yolo[EXTRA]'``) that is not installed.

    Args:
        feature (str): What the user asked for, e.g. '--engine ray'.
        extra (str): The extra that provides it, e.g. 'cluster'.
        module (str): The module that failed to import.
    """

    def __init__(self, feature: str, extra: str, module: str):
        """Build the one-line message naming the extra and the pip command."""
        self.feature, self.extra, self.module = feature, extra, module
        super().__init__(
            f"{feature} needs the '{extra}' extra ({module} is not installed): pip install 'scsa-yolo[{extra}]'"
        )


def require_extra(module: str, feature: str, extra: str):
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra.

    Args:
        module (str): Module to import, e.g. 'ray.tune'.
        feature (str): What the user asked for, for the message.
        extra (str): The extra that installs it.

    Returns:
        (ModuleType): The imported module.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(feature, extra, module.split(".")[0]) from None
