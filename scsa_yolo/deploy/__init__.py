"""``scsa-yolo deploy``: SCSA and plain models through every runtime Ultralytics exports to that runs on this CPU.

Modules: :mod:`~scsa_yolo.deploy.targets` (formats x precisions, their packages, what cannot run here),
:mod:`~scsa_yolo.deploy.offline` (no installs, no downloads, OpenVINO pinned to f32),
:mod:`~scsa_yolo.deploy.measure` (export, backend, parity, interleaved timing),
:mod:`~scsa_yolo.deploy.bootstrap` (validation records and the benchmark's paired bootstrap),
:mod:`~scsa_yolo.deploy.evaluate` (the rows), :mod:`~scsa_yolo.deploy.report` (CSV, markdown, plot),
:mod:`~scsa_yolo.deploy.runner` (argument checks and the run). See docs/deploy.md.
"""
