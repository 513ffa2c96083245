"""Build (or reuse) the embedded deepforest tree-crown dataset and print its counts.

Same as `scsa-yolo demo-data ARGS`; see `scsa-yolo demo-data --help`."""

import sys

from scsa_yolo_command import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main("demo-data", argv)


if __name__ == "__main__":
    sys.exit(main())
