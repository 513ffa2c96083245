"""Where the shipped model and dataset YAMLs live, in a wheel install and in a source checkout alike.

The repository keeps them at the top level (``cfg/``, ``datasets/``); a wheel carries them inside the package as
``scsa_yolo/_resources/{cfg,datasets}``; an editable install reads the checkout's folders.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(kind: str) -> Path:
    """Return the folder holding one kind of shipped YAML.

    Args:
        kind (str): 'cfg' (model YAMLs) or 'datasets' (dataset YAMLs).

    Returns:
        (Path): The first existing candidate folder.

    Raises:
        FileNotFoundError: If neither the wheel's nor the checkout's folder exists (a broken install).
    """
    candidates = (PACKAGE_DIR / "_resources" / kind, PACKAGE_DIR.parent / kind)
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise FileNotFoundError(f"scsa_yolo resource folder '{kind}' not found in {[str(c) for c in candidates]}")


def model_yaml(name: str) -> Path | None:
    """Return the shipped model YAML called ``name`` (e.g. 'yolov8-scsa.yaml'), or None if there is none."""
    path = resource_dir("cfg") / Path(name).name
    return path if path.is_file() else None


def model_yamls() -> list[Path]:
    """Return every shipped model YAML, sorted by name."""
    return sorted(resource_dir("cfg").glob("*.yaml"))
