"""Time the SCSA block and YOLOv8n vs YOLOv8n-SCSA on this machine's CPU, or its GPU with --device cuda.

Same as `scsa-yolo speed ARGS`; see `scsa-yolo speed --help`."""

import sys

from scsa_yolo_command import script_main


def main(argv: list[str] | None = None) -> int:
    return script_main("speed", argv)


if __name__ == "__main__":
    sys.exit(main())
