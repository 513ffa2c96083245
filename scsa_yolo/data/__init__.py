"""Dataset builders and converters that turn native annotations into Ultralytics' YOLO layout.

One concern per module: :mod:`.images` (probing, EXIF, geometry), :mod:`.layout` (label rows, dataset YAML),
:mod:`.manifest` (the --dest file list and its checks), :mod:`.dest` (lock, staging, swap), :mod:`.errors` (one-line
errors), :mod:`.converters` (`scsa-yolo prepare`), :mod:`.profile` (`scsa-yolo profile`), :mod:`.tiling` and
:mod:`.deepforest` (the demo dataset).
"""
