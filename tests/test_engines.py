"""The engines' checks that need no Ray instance: trial resources, trial devices, the install hint."""

import sys

import pytest

from scsa_yolo.benchmark import BenchmarkRequest, TrainSettings, plan_benchmark
from scsa_yolo.benchmark.engines import (
    EngineOptionError,
    RayOptions,
    RunTask,
    import_ray,
    run_with_ray,
    trial_device,
    trial_resources,
)
from scsa_yolo.errors import MissingExtraError, UsageError


def plan(out, **options):
    return plan_benchmark(
        BenchmarkRequest(models=("yolov8n.yaml",), settings=TrainSettings(data="none.yaml"), out=out, **options)
    )


def test_trial_resources_defaults_and_limits():
    assert trial_resources({"CPU": 16.0, "GPU": 2.0}, None, None) == {"cpu": 8, "gpu": 1}  # CPUs shared per GPU
    assert trial_resources({"CPU": 16.0, "GPU": 2.0}, 2, None) == {"cpu": 16, "gpu": 2}
    assert trial_resources({"CPU": 2.0}, None, None) == {"cpu": 1, "gpu": 0}  # no GPUs: CPU trials
    assert trial_resources({"CPU": 8.0, "GPU": 1.0}, 0, 2) == {"cpu": 2, "gpu": 0}
    with pytest.raises(EngineOptionError, match="--gpus-per-run 3: the Ray cluster has 2 GPUs"):
        trial_resources({"CPU": 16.0, "GPU": 2.0}, 3, None)
    with pytest.raises(EngineOptionError, match="--cpus-per-run 4: the Ray cluster has 2 CPUs"):
        trial_resources({"CPU": 2.0}, None, 4)


def test_trial_device_names_gpus_only_for_ddp():
    assert trial_device("", 0) == "" and trial_device("cpu", 0) == "cpu" and trial_device("", 1) == ""
    assert trial_device("", 4) == "0,1,2,3"
    with pytest.raises(EngineOptionError, match="Ray assigns GPUs"):
        trial_device("0", 1)
    with pytest.raises(EngineOptionError, match="--gpus-per-run 0"):
        trial_device("cpu", 1)


def test_ray_engine_without_ray_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail as if it were not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'scsa-yolo\[cluster\]'"):
        import_ray()
    with pytest.raises(MissingExtraError, match="--engine ray needs the 'cluster' extra"):
        plan(tmp_path, engine="ray")
    assert list(tmp_path.iterdir()) == []  # refused before any work
    with pytest.raises(UsageError, match="--engine 'spark' is unknown"):
        plan(tmp_path, engine="spark")


def test_unreachable_ray_address_is_an_option_error(monkeypatch, tmp_path):
    """Ray's ConnectionError (after its ~30 s of retries) becomes the command's set-up error naming the address."""
    ray = pytest.importorskip("ray", reason="the Ray engine needs the cluster extra (ray[tune])")

    def unreachable(address=None, **_):
        raise ConnectionError(f"Failed to connect to Ray cluster at {address}")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", unreachable)
    task = RunTask("yolov8n-seed0", dict, {})
    with pytest.raises(EngineOptionError, match=r"--ray-address 10\.0\.0\.9:6379: Failed to connect .*ray start"):
        run_with_ray([task], RayOptions(address="10.0.0.9:6379"))
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.8:6379")
    with pytest.raises(EngineOptionError, match=r"^RAY_ADDRESS 10\.0\.0\.8:6379: "):
        run_with_ray([task], RayOptions())


def test_ray_flags_with_the_sequential_engine_are_refused_before_any_work(tmp_path):
    options = RayOptions(address="10.0.0.9:6379", gpus_per_run=2)
    with pytest.raises(EngineOptionError, match="--ray-address, --gpus-per-run only apply to --engine ray"):
        plan(tmp_path, ray_options=options)
    assert list(tmp_path.iterdir()) == []
