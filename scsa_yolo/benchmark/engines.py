"""How the runs of a benchmark are executed: one after another in this process, or as Ray Tune trials.

An engine takes the runner's plan, a list of :class:`RunTask` (each one call of the runner's per-run function, which
trains, resumes or skips one run and returns its record), and returns the records in plan order. Both engines call
the same function with the same arguments, so run folders, run records, and the resume and skip rules are the same;
the engines differ only in where the calls happen.

The Ray engine makes each task one Ray Tune trial (``tune.Tuner`` over a grid of task names) with its own CPUs and
GPUs. Ray gives a trial its GPUs through ``CUDA_VISIBLE_DEVICES``; a trial with several GPUs trains with Ultralytics'
own DDP on them. Run folders must be on a filesystem every node sees at the same path (and so must the datasets):
trials write their run folders there, and the costs are measured afterwards from the weights in them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ultralytics.utils import LOGGER

from scsa_yolo.benchmark.settings import RayOptions
from scsa_yolo.errors import MissingExtraError, UsageError

__all__ = ["EngineOptionError", "RayOptions", "RunTask", "RunsFailedError", "run_sequential", "run_with_ray"]

RAY_INSTALL_HINT = "pip install 'scsa-yolo[cluster]'  (or: pip install 'ray[tune]>=2.41')"
RAY_RESULTS_DIR = "ray"  # Tune's experiment state, inside the benchmark's output folder


@dataclass(frozen=True)
class RunTask:
    """One run of the plan: ``function(**kwargs)`` trains, resumes or skips it and returns its record.

    Attributes:
        name: Unique name of the run (its run folder's name); names the Ray trial and any failure.
        function: The runner's per-run function; module-level, so Ray can send it to a worker by reference.
        kwargs: Its arguments (picklable: Ray sends them to the worker); ``kwargs["spec"]``, when present, is the
            run's :class:`~scsa_yolo.benchmark.run.RunSpec`, whose settings' device a multi-GPU trial sets.
        description: One line logged when the run starts.
        recorded: Its run folder holds a finished run's record, so the function only reads it (or refuses other
            settings); the Ray engine then calls it in this process instead of starting a trial.
    """

    name: str
    function: Callable[..., dict]
    kwargs: dict
    description: str = ""
    recorded: bool = False


class EngineOptionError(UsageError):
    """An engine option the cluster cannot meet, or one that contradicts another (found before any training)."""


class RunsFailedError(RuntimeError):
    """Some runs failed; the finished ones are recorded in their run folders and will not be trained again."""


def run_sequential(tasks: Sequence[RunTask]) -> list[dict]:
    """Run every task in this process, in order; the first failure stops the benchmark.

    Args:
        tasks: The plan.

    Returns:
        One record per task, in plan order.
    """
    records = []
    for index, task in enumerate(tasks, start=1):
        LOGGER.info(f"[{index}/{len(tasks)}] {task.description or task.name}")
        records.append(task.function(**task.kwargs))
    return records


def import_ray():
    """Import Ray and Ray Tune, or raise :class:`~scsa_yolo.errors.MissingExtraError` naming the ``cluster`` extra."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise MissingExtraError("--engine ray", "cluster", "ray[tune]") from None
    if not hasattr(tune, "get_context"):
        raise UsageError(f"--engine ray needs Ray >= 2.41 (found {ray.__version__}): {RAY_INSTALL_HINT}")
    return ray, tune


def trial_resources(cluster: dict, gpus_per_run: int | None, cpus_per_run: float | None) -> dict[str, float]:
    """Resources of one trial, from the options and the cluster's totals (``ray.cluster_resources()``).

    Args:
        cluster: Resource totals of the Ray cluster, e.g. ``{"CPU": 16.0, "GPU": 2.0}``.
        gpus_per_run: Requested GPUs per trial, or None for the default (1 if the cluster has GPUs, else 0).
        cpus_per_run: Requested CPUs per trial, or None for the default (see :class:`RayOptions`).

    Returns:
        ``{"cpu": ..., "gpu": ...}`` for ``tune.with_resources``.

    Raises:
        EngineOptionError: If the request is negative or larger than the cluster's total.
    """
    cluster_gpus, cluster_cpus = cluster.get("GPU", 0.0), cluster.get("CPU", 1.0)
    gpus = (1 if cluster_gpus >= 1 else 0) if gpus_per_run is None else gpus_per_run
    if gpus < 0 or gpus > cluster_gpus:
        raise EngineOptionError(f"--gpus-per-run {gpus}: the Ray cluster has {cluster_gpus:g} GPUs")
    if cpus_per_run is None:
        cpus_per_run = max(1, int(cluster_cpus // cluster_gpus) * gpus) if gpus else 1
    if cpus_per_run <= 0 or cpus_per_run > cluster_cpus:
        raise EngineOptionError(f"--cpus-per-run {cpus_per_run:g}: the Ray cluster has {cluster_cpus:g} CPUs")
    return {"cpu": cpus_per_run, "gpu": gpus}


def trial_device(settings_device: str, gpus: int) -> str:
    """The device a trial trains on, given the benchmark's ``--device`` and the trial's GPU count.

    Ray makes a trial's GPUs visible as 0..gpus-1. With one GPU or none, the benchmark's own setting (``""`` or
    ``"cpu"``) already picks the right device, and the run's recorded settings stay those of the sequential engine;
    several GPUs are named, so that Ultralytics trains with DDP on all of them.

    Raises:
        EngineOptionError: If ``--device`` names GPUs (Ray assigns them) or is ``cpu`` while the trial has GPUs.
    """
    if settings_device not in ("", "cpu"):
        raise EngineOptionError(f"--device {settings_device!r} with --engine ray: Ray assigns GPUs, use --gpus-per-run")
    if settings_device == "cpu" and gpus:
        raise EngineOptionError("--device cpu with --gpus-per-run > 0: give --gpus-per-run 0 for CPU trials")
    return ",".join(str(index) for index in range(gpus)) if gpus > 1 else settings_device


def _trial(config: dict, tasks: dict[str, RunTask], device: str | None, cwd: str) -> None:
    """Body of one Tune trial (runs in a Ray worker): the task named by ``config["run"]``; reports its record."""
    from ray import tune

    if Path(cwd).is_dir():  # relative paths mean what they meant to the driver (Tune starts trials elsewhere)
        os.chdir(cwd)
    _drop_ultralytics_tune_reports()
    task = tasks[config["run"]]
    kwargs = dict(task.kwargs)
    if device is not None and "spec" in kwargs:  # several GPUs: the settings name them, so Ultralytics trains DDP
        spec = kwargs["spec"]
        kwargs["spec"] = replace(spec, settings=replace(spec.settings, device=device))
    LOGGER.info(task.description or task.name)
    record = task.function(**kwargs)
    tune.report({"record": record})


def _drop_ultralytics_tune_reports() -> None:
    """Keep Ultralytics' own Ray Tune callback out of the trainings of this process (a trial's worker).

    With Ray installed, Ultralytics adds to every trainer a callback (``raytune`` in its settings, on by default)
    that reports each epoch's metrics to the Tune session it runs in, for ``model.tune(use_ray=True)``. A trial of
    this engine reports one thing, the run's record; an epoch report would also stop training until the driver has
    taken it. The callback is removed from each trainer as its training starts, so the user's settings file is
    neither read differently nor written.
    """
    from ultralytics.utils.callbacks import base

    starts = base.default_callbacks["on_pretrain_routine_start"]  # copied into every model and trainer made later
    if _remove_tune_callbacks not in starts:
        starts.append(_remove_tune_callbacks)


def _remove_tune_callbacks(trainer) -> None:
    """Remove Ultralytics' Ray Tune callbacks from ``trainer`` (an ``on_pretrain_routine_start`` callback)."""
    from ultralytics.utils.callbacks import raytune

    for event, callback in raytune.callbacks.items():
        while callback in trainer.callbacks[event]:
            trainer.callbacks[event].remove(callback)


def run_with_ray(tasks: Sequence[RunTask], options: RayOptions, settings_device: str = "") -> list[dict]:
    """Run every task as one Ray Tune trial and return the records in plan order.

    Runs already recorded are read here, without Ray (a settings mismatch is found before any trial starts). Every
    trial runs to its end even when others fail; then failures raise :class:`RunsFailedError` naming each failed
    run. The finished runs are recorded in their run folders, so the same command again trains only what is
    left (an interrupted run resumes from its ``last.pt``).

    Args:
        tasks: The plan.
        options: Cluster address and per-trial resources.
        settings_device: The benchmark's ``--device`` (``""`` or ``"cpu"``; Ray assigns GPUs).

    Returns:
        One record per task, in plan order.

    Raises:
        MissingExtraError: If Ray Tune is not installed (the message says how to install it).
        EngineOptionError: For a cluster address Ray cannot connect to, resource requests the cluster cannot meet or
            a ``--device`` that names GPUs.
        RunsFailedError: If any trial failed.
    """
    ray, tune = import_ray()
    records = {task.name: task.function(**task.kwargs) for task in tasks if task.recorded}
    pending = [task for task in tasks if not task.recorded]
    if not pending:
        return [records[task.name] for task in tasks]
    started_here = not ray.is_initialized()
    if started_here:
        address = options.address or os.environ.get("RAY_ADDRESS")
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=True)
        except ConnectionError as error:  # Ray gives up after about 30 s; nothing has started
            source = "--ray-address" if options.address else "RAY_ADDRESS"
            raise EngineOptionError(f"{source} {address}: {error}; is `ray start --head` running there?") from error
    try:
        resources = trial_resources(ray.cluster_resources(), options.gpus_per_run, options.cpus_per_run)
        device = trial_device(settings_device, int(resources["gpu"]))
        cluster = ray.cluster_resources()
        LOGGER.info(
            f"Ray engine: {len(pending)} trials ({len(records)} runs finished earlier), {resources['cpu']:g} CPU and "
            f"{resources['gpu']:g} GPU each; cluster {cluster.get('CPU', 0):g} CPU, {cluster.get('GPU', 0):g} GPU"
        )
        by_name = {task.name: task for task in pending}
        trainable = tune.with_parameters(
            _trial, tasks=by_name, device=device if device != settings_device else None, cwd=os.getcwd()
        )
        tuner = tune.Tuner(
            tune.with_resources(trainable, resources),
            param_space={"run": tune.grid_search(list(by_name))},
            # A trial's process is reused by the next trial: torch, Ultralytics and the kernels load once per slot.
            tune_config=tune.TuneConfig(reuse_actors=True),
            run_config=tune.RunConfig(
                name="benchmark",
                storage_path=str(Path(options.storage or "ray").resolve()),
                failure_config=tune.FailureConfig(max_failures=0),
                verbose=1,
            ),
        )
        results = tuner.fit()
        failures = {}
        for result in results:
            name = result.config["run"]
            if result.error is not None:
                failures[name] = result.error
            else:
                records[name] = result.metrics["record"]
    finally:
        if started_here:
            ray.shutdown()
    if failures:
        lines = "\n".join(f"  {name}: {_error_summary(error)}" for name, error in failures.items())
        raise RunsFailedError(
            f"{len(failures)} of {len(tasks)} runs failed:\n{lines}\nThe other runs are finished and recorded; "
            "run the same command again to retry the failed ones (an interrupted run resumes from its last.pt)."
        )
    return [records[task.name] for task in tasks]


def _error_summary(error: BaseException) -> str:
    """The last line of an error's text: for a trial error, the original exception rather than Ray's wrapper."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
