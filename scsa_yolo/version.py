"""The package version, importable without torch or Ultralytics (``scsa-yolo --version``)."""

__version__ = "0.1.0"
