"""The ``scsa-yolo`` command: one subcommand per task, each in its own module of this package.

Every subcommand module defines ``add_arguments(parser)`` (its flags) and ``run(args) -> int`` (the work, exit status
returned). :data:`SUBCOMMANDS` is the name-to-module table the parser is built from; ``scripts/*.py`` call
:func:`main` with their subcommand's name, so the command and the scripts share one parser each. Only the chosen
subcommand's module is imported (the others are listed by their first docstring line, read without importing them),
and a subcommand imports torch and Ultralytics only inside ``run``, so ``--help`` stays fast.

Errors (see :mod:`scsa_yolo.errors`): a :class:`~scsa_yolo.errors.UsageError` raised anywhere below ``run`` is printed
as one line and exits 2; any other exception is a bug, printed with its traceback and a request to report it.

The command is launched through the top-level ``scsa_yolo_command`` module, which sets the offline environment before
this package (and with it Ultralytics) is imported.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from scsa_yolo.errors import EXIT_BUG, EXIT_INTERRUPTED, EXIT_USAGE, UsageError

# Subcommand name -> module name in this package.
SUBCOMMANDS: dict[str, str] = {
    "benchmark": "benchmark",
    "prepare": "prepare",
    "profile": "profile",
    "cam": "cam",
    "speed": "speed",
    "models": "models",
    "demo-data": "demo_data",
    "deploy": "deploy",
    "doctor": "doctor",
}


def load_subcommand(name: str) -> ModuleType:
    """Import the module of subcommand ``name``.

    Args:
        name (str): A key of :data:`SUBCOMMANDS`.

    Returns:
        (ModuleType): The module, with ``add_arguments`` and ``run``.
    """
    return importlib.import_module(f"{__name__}.{SUBCOMMANDS[name]}")


def subcommand_doc(name: str) -> str:
    """Docstring of subcommand ``name``'s module, read from its source without importing it."""
    source = Path(__file__).with_name(f"{SUBCOMMANDS[name]}.py").read_text(encoding="utf-8")
    return (ast.get_docstring(ast.parse(source)) or "").strip()


def build_parser(prog: str = "scsa-yolo", chosen: str | None = None) -> argparse.ArgumentParser:
    """Build the parser of the whole command, one subparser per entry of :data:`SUBCOMMANDS`.

    Args:
        prog (str): Program name shown in usage lines.
        chosen (str | None): The subcommand about to run: only its module is imported and its flags added.
            None imports every subcommand module (for tests and documentation).

    Returns:
        (argparse.ArgumentParser): Parser whose result carries the chosen module as ``args.subcommand_module``.
    """
    from scsa_yolo.version import __version__

    parser = argparse.ArgumentParser(
        prog=prog,
        description="SCSA attention for Ultralytics YOLO: benchmark, dataset preparation and inspection tools. "
        "Training, validation and prediction use the stock `yolo` command (it sees the SCSA models).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", required=True)
    for name in SUBCOMMANDS:
        doc = subcommand_doc(name)
        subparser = subparsers.add_parser(
            name,
            help=doc.splitlines()[0] if doc else None,
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        subparser.set_defaults(subcommand_name=name)
        if chosen is None or name == chosen:
            module = load_subcommand(name)
            module.add_arguments(subparser)
            subparser.set_defaults(subcommand_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when None) and run the chosen subcommand.

    Args:
        argv (Sequence[str] | None): Arguments without the program name, the subcommand first.

    Returns:
        (int): Exit status of the subcommand.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((arg for arg in argv if not arg.startswith("-")), None)
    chosen = chosen if chosen in SUBCOMMANDS else None
    parser = build_parser(chosen=chosen or "")
    args = parser.parse_args(argv)
    prefix = f"{parser.prog} {args.subcommand_name}"
    try:
        return args.subcommand_module.run(args)
    except UsageError as error:
        print(f"{prefix}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prefix}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        from scsa_yolo.version import __version__

        traceback.print_exc()
        print(
            f"{prefix}: internal error (a bug in scsa-yolo {__version__}, not in your input): please report it with "
            "the command line and the traceback above",
            file=sys.stderr,
        )
        return EXIT_BUG
