"""Train the plain and the SCSA model on the same data and compare them.

Same as `scsa-yolo benchmark ARGS`; see `scsa-yolo benchmark --help`."""

import sys

from scsa_yolo_command import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main("benchmark", argv)


if __name__ == "__main__":
    sys.exit(main())
