"""Print the model table: layers, parameters and GFLOPs of plain vs SCSA models of every family and task.

Same as `scsa-yolo models ARGS`; see `scsa-yolo models --help`."""

import sys

from scsa_yolo_command import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main("models", argv)


if __name__ == "__main__":
    sys.exit(main())
