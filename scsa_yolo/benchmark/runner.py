"""Train several models on the same data with the same settings and seeds, then compare accuracy and cost.

The work comes from a :class:`~scsa_yolo.benchmark.plan.BenchmarkPlan` (every argument checked, every run folder
inspected once). Each (model, seed) pair is one Ultralytics training run in ``OUT/runs/<model stem>-seed<seed>/``
(with several datasets, ``OUT/runs/<dataset stem>/<model stem>-seed<seed>/``), done by
:func:`scsa_yolo.benchmark.run.run_once` in this process or as a Ray Tune trial. When a run is finished, it is
validated once: its numbers go to ``benchmark_run.json`` and its per-image matching results to
``final_val/image_stats.npz``; a later call with the same settings reads them instead of training again, and a run
interrupted mid-training resumes from its ``weights/last.pt``. Costs (parameters, GFLOPs, latency) belong to the
architecture, so they are measured once per model and dataset, in this process, at the end; the paired comparisons
are recomputed from the saved per-image statistics on every call.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch
from ultralytics.utils import LOGGER, NUM_THREADS
from ultralytics.utils.torch_utils import select_device

from scsa_yolo.benchmark.engines import RAY_RESULTS_DIR, RunTask, run_sequential, run_with_ray
from scsa_yolo.benchmark.image_stats import load_image_stats, load_image_sums
from scsa_yolo.benchmark.measure import device_name, measure_latency, model_cost, ratio_interval
from scsa_yolo.benchmark.paired_tests import ExactPairedTest, exact_paired_tests, paired_test_lines
from scsa_yolo.benchmark.plan import OUT_OWNER_FILE, BenchmarkPlan, plan_benchmark
from scsa_yolo.benchmark.plots import plot_accuracy_vs_latency, plot_comparisons, plot_training_curves
from scsa_yolo.benchmark.records import OWNER, ROW_TYPES, ResultRow, RunOwnership, RunRecord, write_json
from scsa_yolo.benchmark.report import (
    comparison_verdicts,
    dropped_resample_notes,
    markdown_report,
    model_label,
    write_comparisons_csv,
    write_results_csv,
)
from scsa_yolo.benchmark.run import RunSpec, RunState, load_restricted, run_once
from scsa_yolo.benchmark.settings import BenchmarkRequest
from scsa_yolo.benchmark.stats import Comparison, paired_comparisons
from scsa_yolo.benchmark.tasks import task_spec
from scsa_yolo.benchmark.tracking import log_comparisons, prepare_trackers

OUTPUTS = (
    "results.csv",
    "comparisons.csv",
    "results.md",
    "accuracy_vs_latency.png",
    "comparisons.png",
    "training_curves.png",
)


def run_task(spec: RunSpec, state: RunState) -> dict:
    """One engine task: :func:`run_once`, its record as JSON (what a Ray trial reports)."""
    return run_once(spec, state).to_json()


def run_benchmark(plan: BenchmarkPlan | BenchmarkRequest) -> list[ResultRow]:
    """Train and validate every run of the plan, measure costs, compare, write the report.

    Args:
        plan: The checked plan (:func:`scsa_yolo.benchmark.plan.plan_benchmark`); a request is planned first.

    Returns:
        One :class:`ResultRow` per run, in plan order (also written to ``results.csv``).

    Raises:
        UsageError: From planning a request.
        RunsFailedError: When Ray trials failed (the others are recorded).
    """
    if isinstance(plan, BenchmarkRequest):
        plan = plan_benchmark(plan)
    plan.out.mkdir(parents=True, exist_ok=True)
    write_json(plan.out / OUT_OWNER_FILE, {"owner": OWNER, "outputs": list(OUTPUTS), "runs": "runs/"})
    tasks = [
        RunTask(
            spec.name,
            run_task,
            {"spec": spec, "state": plan.states[spec.name]},
            f"{spec.model} seed {spec.seed} on {Path(spec.settings.data).name} -> {spec.run_dir}",
            plan.states[spec.name].kind == "finished" and plan.states[spec.name].stats_ok,
        )
        for spec in plan.runs
    ]
    prepare_trackers(plan)
    if plan.engine == "ray":
        from dataclasses import replace

        options = replace(plan.ray_options, storage=plan.out / RAY_RESULTS_DIR)
        found = run_with_ray(tasks, options, plan.settings[0].device)
    else:
        found = run_sequential(tasks)
    records = [RunRecord.from_json(value) for value in found]

    rows, comparisons, exact_tests, seconds = [], [], [], 0.0
    for index in range(len(plan.settings)):
        pairs = [(spec, record) for spec, record in zip(plan.runs, records) if spec.dataset_index == index]
        rows += _rows_with_costs(plan, index, pairs)
        started = time.perf_counter()
        found, tests = _compare(pairs, plan)
        comparisons += [(plan.dataset_name(index), c) for c in found]
        exact_tests += [(plan.dataset_name(index), t) for t in tests]
        seconds += time.perf_counter() - started
    LOGGER.info(
        f"Paired comparisons ({len(plan.models)} models x {len(plan.seeds)} seeds, {plan.resamples} resamples per "
        f"dataset): {seconds:.1f} s"
    )
    write_outputs(plan, rows, comparisons, seconds, exact_tests)
    return rows


def write_outputs(
    plan: BenchmarkPlan,
    rows: list[ResultRow],
    comparisons: list,
    seconds: float,
    exact_tests: list[tuple[str, ExactPairedTest]] = (),
) -> None:
    """Write the tables, the report and the plots into ``plan.out``, and log the verdicts."""
    several = len(plan.datasets) > 1
    spec = task_spec(plan.task)
    write_results_csv(rows, plan.out / "results.csv")
    write_comparisons_csv(comparisons, plan.out / "comparisons.csv", with_dataset=several)
    report = markdown_report(
        rows, comparisons, plan, comparison_seconds=seconds, resamples=plan.resamples, exact_tests=exact_tests
    )
    (plan.out / "results.md").write_text(report, encoding="utf-8")
    plot_accuracy_vs_latency(rows, plan.out / "accuracy_vs_latency.png", metric=spec.headline)
    plot_comparisons(comparisons, plan.out / "comparisons.png")
    plot_training_curves(
        {(plan.dataset_name(s.dataset_index), s.model, s.seed): s.run_dir / "results.csv" for s in plan.runs},
        plan.out / "training_curves.png",
        plan.task,
    )
    verdicts = comparison_verdicts(comparisons, several, spec.headline) + dropped_resample_notes(comparisons, several)
    verdicts = "\n".join(verdicts + paired_test_lines([test for _, test in exact_tests]))
    LOGGER.info(f"\n{report}\nResults in {plan.out}\n\n{verdicts}")
    log_comparisons(plan, comparisons)


def _rows_with_costs(plan: BenchmarkPlan, index: int, pairs: list[tuple[RunSpec, RunRecord]]) -> list[ResultRow]:
    """Measure parameters, GFLOPs and latency once per model and attach them to every run of that model.

    The networks come from the runs' own checkpoints (hash-checked, restricted loader). The latency of each model
    relative to the first one gets a 95 % interval from the paired timing rounds.
    """
    settings = plan.settings[index]
    networks = {}
    for spec, _ in pairs:
        if spec.model not in networks:
            weights = RunOwnership.read(spec.run_dir).verified(spec.run_dir)
            checkpoint = load_restricted(weights, "run checkpoint")
            networks[spec.model] = (checkpoint.get("ema") or checkpoint["model"]).float()
    costs = {model: model_cost(network, settings.imgsz) for model, network in networks.items()}
    cpu = torch.device("cpu")
    cpu_name = device_name(cpu, cpu_threads=NUM_THREADS)  # measure_latency times CPU runs at NUM_THREADS
    LOGGER.info(f"Measuring batch-1 latency on {cpu_name}")
    cpu_samples = measure_latency(networks, settings.imgsz, cpu, repeats=plan.latency_repeats)
    gpu_samples, gpu_name = {}, ""
    if torch.cuda.is_available():
        gpu = select_device(settings.device or 0, verbose=False)  # the training card (first one with several)
        gpu = gpu if gpu.type == "cuda" else torch.device("cuda", 0)
        gpu_name = device_name(gpu)
        LOGGER.info(f"Measuring batch-1 latency on {gpu_name}")
        gpu_samples = measure_latency(networks, settings.imgsz, gpu, repeats=plan.gpu_latency_repeats)
    reference = next(iter(networks))
    ratios = {model: ratio_interval(cpu_samples[model], cpu_samples[reference]) for model in networks}
    rows = []
    for spec, record in pairs:
        ratio, low, high = ratios[spec.model]
        rows.append(
            ROW_TYPES[plan.task](
                **asdict(record.metrics),
                dataset=plan.dataset_name(index),
                model=model_label(spec.model),
                seed=spec.seed,
                params=costs[spec.model].params,
                gflops=costs[spec.model].gflops,
                latency_ms=round(statistics.median(cpu_samples[spec.model]), 3),
                latency_ratio=round(ratio, 4),
                latency_ratio_low=round(low, 4),
                latency_ratio_high=round(high, 4),
                val_images=record.val_images,
                train_s=record.train_s,
                resumed_at_epochs=" ".join(map(str, record.resumed_at_epochs)),
                epochs=settings.epochs,
                imgsz=settings.imgsz,
                device=record.device,
                latency_device=cpu_name,
                latency_gpu_ms=round(statistics.median(gpu_samples[spec.model]), 3) if gpu_samples else "",
                latency_gpu_device=gpu_name,
                model_file=spec.model,
            )
        )
    return rows


def _compare(
    pairs: list[tuple[RunSpec, RunRecord]], plan: BenchmarkPlan
) -> tuple[list[Comparison], list[ExactPairedTest]]:
    """Paired bootstrap comparisons of one dataset's runs from their saved per-image statistics.

    For classifiers also the exact paired test of each seed.
    """
    spec = task_spec(plan.task)
    load = load_image_sums if plan.task in ("classify", "semantic", "depth") else load_image_stats
    by_model: dict[str, dict[int, object]] = {}
    for run, record in pairs:
        by_model.setdefault(model_label(run.model), {})[run.seed] = load(run.run_dir / record.image_stats)
    if len(by_model) < 2:
        return [], []
    runs = {model: [seeds[seed] for seed in plan.seeds] for model, seeds in by_model.items()}
    comparisons = paired_comparisons(runs, resamples=plan.resamples, seed=plan.bootstrap_seed, task=spec.statistics())
    tests = exact_paired_tests(runs, plan.seeds) if plan.task == "classify" else []
    return comparisons, tests
