"""The Ultralytics YOLO detection layout: label rows and the dataset YAML, shared by every dataset writer here.

Light on purpose (PyYAML only, imported when a YAML is written), so command-line help never loads Ultralytics.
"""

from __future__ import annotations

from pathlib import Path

LABEL_DECIMALS = 6


def to_yolo_line(class_id: int, xyxy: tuple[float, float, float, float], size: tuple[int, int]) -> str:
    """Format one label row ``class x_center y_center width height`` normalised to 0-1.

    Args:
        class_id: Index into the dataset's names.
        xyxy: Box corners in pixels of the image (or tile) the row belongs to.
        size: (width, height) the coordinates are normalised by.
    """
    width, height = size
    x1, y1, x2, y2 = xyxy
    values = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
    return f"{class_id} " + " ".join(f"{v:.{LABEL_DECIMALS}f}" for v in values)


def write_label_file(path: Path, lines: list[str]) -> None:
    """Write one label file, one row a line (an empty file marks a background image)."""
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def save_data_yaml(path: Path, splits: dict[str, str], names: tuple[str, ...] | list[str], header: str = "",
                   root: Path | None = None) -> Path:  # fmt: skip
    """Write an Ultralytics dataset YAML.

    Args:
        path: The YAML file.
        splits: ``{"train": "images/train", ...}`` in train/val/test order.
        names: Class names; the index is the class id.
        header: Comment lines (each starting with ``#``) written above the keys.
        root: Written as ``path:`` (absolute); without it Ultralytics resolves the folders relative to the YAML.

    Returns:
        ``path``.
    """
    import yaml

    data = {"path": str(Path(root).resolve())} if root is not None else {}
    data.update(splits)
    data["names"] = dict(enumerate(names))
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1 << 20)
    path.write_text(header + text, encoding="utf-8")
    return path
