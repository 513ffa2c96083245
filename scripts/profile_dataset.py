"""Profile a YOLO-format dataset: per-class counts, COCO object sizes, brightness.

Same as `scsa-yolo profile ARGS`; see `scsa-yolo profile --help`."""

import sys

from scsa_yolo_command import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main("profile", argv)


if __name__ == "__main__":
    sys.exit(main())
