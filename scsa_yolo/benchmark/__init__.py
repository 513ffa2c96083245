"""Benchmark: train plain and attention YOLO models on the same data and compare accuracy, size and speed."""

from scsa_yolo.benchmark.runner import PRESETS, TrainSettings, resolve_models, run_benchmark

__all__ = ["PRESETS", "TrainSettings", "resolve_models", "run_benchmark"]
