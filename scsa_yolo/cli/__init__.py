"""The ``scsa-yolo`` command: one subcommand per task, each in its own module of this package.

Every subcommand module defines ``add_arguments(parser)`` (its flags) and ``run(args) -> int`` (the work, exit status
returned). :data:`SUBCOMMANDS` is the name-to-module table the parser is built from; ``scripts/*.py`` call
:func:`main` with their subcommand's name, so the command and the scripts share one parser each.

The command is launched through the top-level ``scsa_yolo_command`` module, which sets the offline environment before
this package (and with it Ultralytics) is imported.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from types import ModuleType

from scsa_yolo.cli import benchmark, cam, demo_data, models, prepare, profile, speed

SUBCOMMANDS: dict[str, ModuleType] = {
    "benchmark": benchmark,
    "prepare": prepare,
    "profile": profile,
    "cam": cam,
    "speed": speed,
    "models": models,
    "demo-data": demo_data,
}


def build_parser(prog: str = "scsa-yolo") -> argparse.ArgumentParser:
    """Build the parser of the whole command, one subparser per entry of :data:`SUBCOMMANDS`.

    Args:
        prog (str): Program name shown in usage lines.

    Returns:
        (argparse.ArgumentParser): Parser whose result carries the chosen module as ``args.subcommand_module``.
    """
    from scsa_yolo import __version__

    parser = argparse.ArgumentParser(
        prog=prog,
        description="SCSA attention for Ultralytics YOLO: benchmark, dataset preparation and inspection tools. "
        "Training, validation and prediction use the stock `yolo` command (it sees the SCSA models).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", required=True)
    for name, module in SUBCOMMANDS.items():
        doc = (module.__doc__ or "").strip()
        subparser = subparsers.add_parser(
            name,
            help=doc.splitlines()[0] if doc else None,
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
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
    args = build_parser().parse_args(argv)
    return args.subcommand_module.run(args)
