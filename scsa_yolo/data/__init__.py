"""Dataset builders and converters that turn native annotations into Ultralytics' YOLO layout."""
