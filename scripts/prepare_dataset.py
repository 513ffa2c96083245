"""Convert a downloaded complex-scene dataset into the Ultralytics YOLO layout.

Same as `scsa-yolo prepare ARGS`; see `scsa-yolo prepare --help`."""

import sys

from scsa_yolo_command import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main("prepare", argv)


if __name__ == "__main__":
    sys.exit(main())
