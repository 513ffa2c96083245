"""The benchmark's comparison in the experiment tracker the user enabled in Ultralytics' settings.

Every training run of a benchmark is logged by Ultralytics' own callbacks, in both engines: a trainer adds the
callbacks of every tracker enabled in Ultralytics' settings file (``yolo settings mlflow=True``; read per trainer, in a
Ray trial from the same config dir), and the benchmark leaves them in place (the Ray engine removes only Ultralytics'
Ray Tune reporter). With MLflow the runs land in the experiment named by ``MLFLOW_EXPERIMENT_NAME`` or, by default,
the run folders' parent (``OUT/runs``), one MLflow run per run folder name (``yolov8n-seed0``).

This module adds what only the benchmark knows, once per dataset: a run named ``comparison`` in that same experiment,
with the settings as parameters, every paired difference with its interval and p-value as metrics
(``<model>/<metric>/delta|ci_low|ci_high|p_value``), the verdict lines as a tag and a text artifact, and the tables
and plots (``comparisons.png``, the forest plot, among them) as artifacts. A tracker failure is a warning, never a
failed benchmark. Only MLflow has a comparison logger; with the other trackers the runs are logged (by Ultralytics)
and the comparison stays in ``--out``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

from ultralytics.utils import LOGGER, SETTINGS, TESTS_RUNNING

from scsa_yolo.benchmark.report import comparison_verdicts
from scsa_yolo.benchmark.stats import Comparison

# Ultralytics' settings key -> the package its callback needs (without it, Ultralytics logs nothing there either).
TRACKERS = {
    "mlflow": "mlflow",
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "comet": "comet_ml",
    "clearml": "clearml",
    "dvc": "dvclive",
}
COMPARISON_RUN = "comparison"
ARTIFACTS = ("results.md", "results.csv", "comparisons.csv", "comparisons.png", "accuracy_vs_latency.png",
             "training_curves.png")  # fmt: skip


def enabled_trackers() -> list[str]:
    """The experiment trackers switched on in Ultralytics' settings file whose package is installed.

    Ultralytics' defaults switch several on; its callbacks do nothing where the package is missing, and so does this.
    Like Ultralytics' MLflow callback, MLflow is left alone inside pytest unless the test's name holds
    ``test_mlflow``: the comparison is logged where, and only where, the runs are.
    """
    found = [name for name, package in TRACKERS.items() if SETTINGS.get(name) is True and find_spec(package)]
    if TESTS_RUNNING and "test_mlflow" not in os.environ.get("PYTEST_CURRENT_TEST", ""):
        found = [name for name in found if name != "mlflow"]
    return found


def prepare_trackers(plan) -> None:
    """Before any run starts: create the MLflow store's tables and each dataset's experiment in this process.

    Parallel Ray trials would otherwise race to create them (seen with a fresh sqlite store: one trial failed with
    "table latest_metrics already exists" and Ultralytics stopped tracking that run).
    """
    if "mlflow" not in enabled_trackers():
        return
    try:
        import mlflow

        for folder in dict.fromkeys(spec.run_dir.parent for spec in plan.runs):
            mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME") or str(folder))
    except Exception as error:
        LOGGER.warning(f"MLflow: the tracking store could not be prepared ({type(error).__name__}: {error})")


def log_comparisons(plan, comparisons: Sequence[tuple[str, Comparison]]) -> None:
    """Log each dataset's comparison to the enabled tracker(s); a no-op when none is enabled.

    Args:
        plan: The :class:`~scsa_yolo.benchmark.plan.BenchmarkPlan` that ran (its outputs are written).
        comparisons: ``(dataset, Comparison)`` pairs.
    """
    trackers = enabled_trackers()
    if not trackers:
        return
    if "mlflow" in trackers:
        try:
            _log_mlflow(plan, comparisons)
        except Exception as error:  # the benchmark's results are on disk; a tracker problem must not fail it
            LOGGER.warning(f"MLflow: the comparison was not logged ({type(error).__name__}: {error})")
    others = [name for name in trackers if name != "mlflow"]
    if others:
        LOGGER.info(f"{', '.join(others)}: the runs are logged by Ultralytics; the comparison is in {plan.out}")


def _log_mlflow(plan, comparisons: Sequence[tuple[str, Comparison]]) -> None:
    """One MLflow run per dataset, in the experiment that holds that dataset's training runs."""
    try:
        import mlflow
    except ImportError:
        LOGGER.warning("MLflow is enabled in Ultralytics' settings but not installed: pip install 'scsa-yolo[track]'")
        return
    several = len(plan.datasets) > 1
    for index in range(len(plan.datasets)):
        dataset = plan.dataset_name(index)
        found = [c for d, c in comparisons if d == dataset]
        runs_folder = next(spec.run_dir.parent for spec in plan.runs if spec.dataset_index == index)
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or str(runs_folder)  # Ultralytics' choice for the runs
        mlflow.set_experiment(experiment)
        settings = plan.settings[index]
        with mlflow.start_run(run_name=COMPARISON_RUN if not several else f"{COMPARISON_RUN}-{dataset}"):
            mlflow.log_params(
                {
                    "models": ",".join(plan.models),
                    "reference": plan.models[0],
                    "seeds": ",".join(map(str, plan.seeds)),
                    "data": settings.data,
                    "epochs": settings.epochs,
                    "imgsz": settings.imgsz,
                    "batch": settings.batch,
                    "resamples": plan.resamples,
                    "bootstrap_seed": plan.bootstrap_seed,
                }
            )
            mlflow.log_metrics(comparison_metrics(found))
            verdicts = "\n".join(comparison_verdicts([(dataset, c) for c in found], False))
            mlflow.set_tag("verdict", verdicts[:5000])
            mlflow.log_text(verdicts + "\n", "verdict.txt")
            for name in ARTIFACTS:
                if (plan.out / name).is_file():
                    mlflow.log_artifact(str(plan.out / name))
        LOGGER.info(f"MLflow: comparison of {dataset} logged to {mlflow.get_tracking_uri()} (experiment {experiment})")


def comparison_metrics(comparisons: Sequence[Comparison]) -> dict[str, float]:
    """``<model>/<metric>/delta|ci_low|ci_high|p_value``; undefined values (NaN, no p-value) are left out."""
    metrics = {}
    for c in comparisons:
        values = {"delta": c.delta, "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value}
        for key, value in values.items():
            if value is not None and math.isfinite(value):
                metrics[f"{Path(c.model).stem}/{c.metric}/{key}"] = float(value)
    return metrics
