"""Benchmark: train plain and attention YOLO models on the same data and compare accuracy, size and speed.

``plan_benchmark(BenchmarkRequest(...))`` checks everything and returns the plan; ``run_benchmark(plan)`` runs it.
The names below are imported lazily, so that reading the settings (the CLI's parser) loads neither torch nor
Ultralytics.
"""

from scsa_yolo.benchmark.settings import BenchmarkRequest, RayOptions, TrainSettings

__all__ = [
    "PRESETS",
    "BenchmarkRequest",
    "RayOptions",
    "TrainSettings",
    "plan_benchmark",
    "resolve_models",
    "run_benchmark",
]
_LAZY = {
    "PRESETS": "scsa_yolo.benchmark.plan",
    "plan_benchmark": "scsa_yolo.benchmark.plan",
    "resolve_models": "scsa_yolo.benchmark.plan",
    "run_benchmark": "scsa_yolo.benchmark.runner",
}


def __getattr__(name: str):
    """Import the heavy names on first use."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
