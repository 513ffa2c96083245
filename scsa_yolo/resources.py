"""Where the shipped dataset YAMLs live, in a wheel install and in a source checkout alike.

The repository keeps them at the top level (``datasets/``); a wheel carries them inside the package as
``scsa_yolo/_resources/datasets``; an editable install reads the checkout's folder. (Model YAMLs are not shipped:
``scsa_yolo.models`` derives them from Ultralytics' own.) The benchmark resolves ``--data datasets/<Name>.yaml`` here
when the working directory has no such file (``scsa_yolo.benchmark.plan.shipped_dataset``).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(kind: str) -> Path:
    """Return the folder holding one kind of shipped YAML.

    Args:
        kind (str): 'datasets' (dataset YAMLs).

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
