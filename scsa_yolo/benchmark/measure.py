"""Cost measurements of a model: parameters, GFLOPs and batch-1 inference latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from copy import deepcopy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from ultralytics.utils import NUM_THREADS
from ultralytics.utils.torch_utils import get_cpu_info, get_flops, get_gpu_info, get_num_params

from scsa_yolo.benchmark.comparisons import percentile_interval

clock: Callable[[], float] = time.perf_counter
"""The clock the interleaved timings read (seconds); a test replaces it with a fake one."""


@dataclass(frozen=True)
class ModelCost:
    """Size and compute of one architecture at one input size."""

    params: int
    gflops: float


def model_cost(model: nn.Module, imgsz: int) -> ModelCost:
    """Count parameters and GFLOPs with Ultralytics' own helpers.

    ``get_flops`` uses thop, which counts the layers it knows (convolutions, norms, linear layers) and not functional
    ops such as ``torch.matmul`` or softmax inside a block's ``forward``; for attention blocks the GFLOPs are
    therefore a lower bound. It returns 0.0 when profiling fails.

    Args:
        model: The detection model (``DetectionModel``).
        imgsz: Square input size the GFLOPs are computed for.

    Returns:
        Parameter count and GFLOPs.
    """
    return ModelCost(params=get_num_params(model), gflops=round(get_flops(model, imgsz), 3))


def device_name(device: torch.device, cpu_threads: int | None = None) -> str:
    """Describe a device for the results, e.g. ``cpu (AMD EPYC, 1 threads)`` or ``cuda:0 (NVIDIA H100, 81559MiB)``.

    Args:
        device: The device.
        cpu_threads: Thread count to name for a CPU (the current torch setting when ``None``).

    Returns:
        The description.
    """
    if device.type == "cuda":
        return f"{device} ({get_gpu_info(device.index or 0)})"
    return f"cpu ({get_cpu_info()}, {cpu_threads or torch.get_num_threads()} threads)"


def prepare_for_inference(model: nn.Module, device: torch.device) -> nn.Module:
    """Return a fused fp32 eval-mode copy of ``model`` on ``device``, as Ultralytics' predictor would run it."""
    model = deepcopy(model).float().eval()
    if hasattr(model, "fuse"):
        model = model.fuse(verbose=False)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.to(device)


def measure_latency(
    models: dict[str, nn.Module],
    imgsz: int,
    device: torch.device,
    repeats: int,
    warmup: int = 5,
    cpu_threads: int = NUM_THREADS,
) -> dict[str, list[float]]:
    """Batch-1 forward latency per model, measured in interleaved rounds.

    The models take turns (one forward each per round) so that a load spike on a shared machine hits all of them
    alike instead of whichever model happened to be measured at that moment. Only the network's forward pass is
    timed: no pre-processing, no NMS.

    Args:
        models: Name to model; each is fused and copied to ``device`` first.
        imgsz: Square input size.
        device: Where to run.
        repeats: Timed rounds; each round times every model once.
        warmup: Untimed forwards per model before timing.
        cpu_threads: Torch threads while timing on CPU; the default is the count Ultralytics itself sets for CPU
            work (``select_device``), so the number matches its predictor. Restored afterwards.

    Returns:
        Name to its per-round milliseconds (round ``i`` of every model was timed back to back, so rounds pair up).
    """
    threads_before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads)
    try:
        prepared = {name: prepare_for_inference(model, device) for name, model in models.items()}
        image = torch.rand(1, 3, imgsz, imgsz, device=device)
        with torch.inference_mode():
            return interleaved_samples(
                {name: (lambda m=model: m(image)) for name, model in prepared.items()}, repeats, warmup, device
            )
    finally:
        torch.set_num_threads(threads_before)


def time_interleaved(
    candidates: dict[str, Callable[[], object]], repeats: int, warmup: int = 3, device: torch.device | None = None
) -> dict[str, float]:
    """Median wall time in milliseconds of each candidate, calling them in turns ``repeats`` times after ``warmup``.

    Args:
        candidates: Name to a no-argument function to time.
        repeats: Timed rounds; each round calls every candidate once.
        warmup: Untimed rounds first (allocator and kernel warm-up).
        device: A CUDA device to synchronise around each call, so its asynchronous work is timed too.

    Returns:
        Name to median milliseconds, in the given order.
    """
    samples = interleaved_samples(candidates, repeats, warmup, device)
    return {name: statistics.median(values) for name, values in samples.items()}


def interleaved_samples(
    candidates: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int = 3,
    device: torch.device | None = None,
    alternate: bool = False,
) -> dict[str, list[float]]:
    """Wall time in milliseconds of each call, calling the candidates in turns ``repeats`` times after ``warmup``.

    Taking turns makes a load spike on a shared machine hit every candidate alike.

    Args:
        candidates: Name to a no-argument function to time.
        repeats: Timed rounds; each round calls every candidate once.
        warmup: Untimed rounds first (allocator and kernel warm-up).
        device: A CUDA device to synchronise around each call, so its asynchronous work is timed too.
        alternate: Reverse the order every other round (A, B, B, A, ...), so no candidate always runs right after
            the same other one (runtimes that share caches or thread pools).

    Returns:
        Name to its per-round milliseconds, in the given order.
    """

    def synchronize() -> None:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        for run in candidates.values():
            run()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    names = list(candidates)
    for index in range(repeats):
        for name in reversed(names) if alternate and index % 2 else names:
            run = candidates[name]
            synchronize()
            start = clock()
            run()
            synchronize()
            samples[name].append((clock() - start) * 1000)
    return samples


def ratio_interval(
    samples: Sequence[float], reference: Sequence[float], resamples: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """Median-latency ratio of a model to the reference, with a 95 % interval over the interleaved timing rounds.

    The rounds are paired (round i timed both models back to back), so the bootstrap resamples rounds, not single
    timings: a load spike that slowed both stays in both.

    Args:
        samples: The model's per-round times.
        reference: The reference's per-round times, same rounds.
        resamples: Bootstrap replicates.
        seed: Resampling seed.

    Returns:
        ``(ratio, low, high)`` of median(samples) / median(reference).
    """
    model, ref = np.asarray(samples, float), np.asarray(reference, float)
    rng = np.random.default_rng(seed)
    rounds = rng.integers(0, len(model), size=(resamples, len(model)))
    replicates = np.median(model[rounds], axis=1) / np.median(ref[rounds], axis=1)
    low, high = percentile_interval(replicates)
    return float(np.median(model) / np.median(ref)), low, high
