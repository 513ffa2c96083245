"""Grad-CAM attention maps of YOLO detection models, side by side.

Same as `scsa-yolo cam ARGS`; see `scsa-yolo cam --help`."""

import sys

from scsa_yolo_command import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main("cam", argv)


if __name__ == "__main__":
    sys.exit(main())
