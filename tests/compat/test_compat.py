"""The installed wheel against one Ultralytics release: what a user of that release does, end to end.

Run by ``.ci/compat`` in a virtual environment made from the built wheel with pip's own resolution (torch shared
through a ``.pth`` line to a torch-only environment), from a folder outside the checkout. ``SCSA_YOLO_COMPAT`` holds
the Ultralytics version that environment was made with. Each family the release ships (``yolov8`` always, ``yolo11``
from 8.3.0, ``yolo26`` from 8.4.0) is built, run and compared with ``forward_reference``; stock weights transfer
tensor for tensor; the newest family trains one epoch with the stock ``yolo`` command in a new process and
validates; the checkpoint reloads, also under restricted loading where the release has it; the DDP worker script
Ultralytics writes trains the model from its YAML name.
"""

import os
import subprocess
import sys
import sysconfig
from copy import deepcopy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import ultralytics
from packaging.version import Version
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel

import scsa_yolo
from scsa_yolo import integration
from scsa_yolo.nn import BLOCKS, SCSA

EXPECTED = os.environ.get("SCSA_YOLO_COMPAT", "")
VERSION = Version(ultralytics.__version__).release
# The families each release ships, written from the release notes; the tests compare them with what is installed.
FAMILIES = [f for f, since in (("yolov8", (8, 0)), ("yolo11", (8, 3)), ("yolo26", (8, 4))) if VERSION[:2] >= since]
NEWEST = FAMILIES[-1]
TRAIN = {"epochs": 1, "imgsz": 32, "batch": 2, "workers": 0, "device": "cpu", "plots": False, "amp": False}
TRAIN_ARGS = [f"{key}={value}" for key, value in TRAIN.items()]


def clean_env(**extra: str) -> dict:
    """The user's environment: no checkout on PYTHONPATH."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **extra}


def run(command: list, cwd: Path, **env: str) -> str:
    result = subprocess.run(command, cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, command))} exited {result.returncode}:\n{output[-4000:]}"
    return output


def write_dataset(root: Path, images: int = 4, size: int = 64) -> Path:
    """Boxes of two colours on noise, YOLO labels, train = val."""
    rng = np.random.default_rng(0)
    for folder in ("images", "labels"):
        (root / folder).mkdir(parents=True)
    for index in range(images):
        image = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
        x0, y0 = rng.integers(0, size // 2, 2)
        cls = index % 2
        image[y0 : y0 + size // 3, x0 : x0 + size // 3] = (255, 255, 255) if cls else (0, 200, 255)
        centre = ((x0 + size / 6) / size, (y0 + size / 6) / size)
        cv2.imwrite(str(root / "images" / f"{index}.jpg"), image)
        (root / "labels" / f"{index}.txt").write_text(f"{cls} {centre[0]:.4f} {centre[1]:.4f} 0.3333 0.3333\n")
    data = root / "data.yaml"
    data.write_text(f"path: {root}\ntrain: images\nval: images\nnames:\n  0: box\n  1: light\n")
    return data


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One epoch of the newest family with the stock ``yolo`` command, from a folder outside the checkout."""
    folder = tmp_path_factory.mktemp("user")
    data = write_dataset(folder / "data")
    yolo = Path(sys.executable).parent / "yolo"
    model = f"{NEWEST}n-scsa.yaml"
    run([yolo, "train", f"model={model}", f"data={data}", f"project={folder}", "name=run", *TRAIN_ARGS], cwd=folder)
    return folder, data, folder / "run" / "weights" / "last.pt"


def test_the_environment_is_the_wheel_and_the_expected_release():
    assert EXPECTED and ultralytics.__version__ == EXPECTED
    site_packages = Path(sysconfig.get_path("purelib"))
    assert Path(scsa_yolo.__file__).is_relative_to(site_packages), scsa_yolo.__file__
    from ultralytics.nn import tasks

    assert all(isinstance(getattr(tasks, name, None), type) for name in BLOCKS)  # registered by the import hook


def test_families_match_the_release_and_a_missing_one_is_named():
    from scsa_yolo import models

    shipped = [family for family in models.FAMILIES if any(s.startswith(family) for s in models.stock_configs())]
    assert shipped == FAMILIES
    for family in sorted(set(models.FAMILIES) - set(FAMILIES)):
        message = rf"{family} family arrived in ultralytics .*{ultralytics.__version__}"
        with pytest.raises(FileNotFoundError, match=message):
            YOLO(f"{family}n-scsa.yaml")


@pytest.mark.parametrize("family", FAMILIES)
def test_scsa_models_build_and_match_forward_reference(family):
    names = [f"{family}n-scsa.yaml", f"{family}n-seg-scsa.yaml"]
    for name in names:
        model = YOLO(name).model.eval()
        layers = [m for m in model.modules() if isinstance(m, SCSA)]
        assert len(layers) >= 3, name
        seen = []
        record = seen.append
        hooks = [m.register_forward_hook(lambda m, i, o, record=record: record((m, i[0], o))) for m in layers]
        with torch.no_grad():
            model(torch.rand(1, 3, 64, 64))
        for hook in hooks:
            hook.remove()
        assert len(seen) == len(layers)
        with torch.no_grad():
            for layer, x, y in seen:
                torch.testing.assert_close(y, layer.forward_reference(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_stock_tensor_transfers(family):
    torch.manual_seed(0)
    stock = DetectionModel(f"{family}n.yaml", verbose=False)
    with torch.no_grad():
        for parameter in stock.parameters():
            parameter.add_(torch.randn_like(parameter))  # values no initialisation gives
    target = DetectionModel(f"{family}n-scsa.yaml", verbose=False)
    target.load({"model": deepcopy(stock)}, verbose=False)
    kept = [i for i, layer in enumerate(target.model) if not isinstance(layer, tuple(BLOCKS.values()))]
    assert len(kept) == len(stock.model)
    loaded = target.state_dict()
    for key, tensor in stock.state_dict().items():
        _, index, rest = key.split(".", 2)
        assert torch.equal(loaded[f"model.{kept[int(index)]}.{rest}"].float(), tensor.float()), key


def test_yolo_train_and_val_from_a_foreign_folder(trained):
    folder, data, last = trained
    assert last.is_file()
    yolo = Path(sys.executable).parent / "yolo"
    output = run([yolo, "val", f"model={last}", f"data={data}", "imgsz=32", "batch=2", "device=cpu"], cwd=folder)
    assert " all " in output


def test_checkpoint_reloads_with_its_blocks(trained):
    _, _, last = trained
    model = YOLO(last).model.float().eval()
    assert sum(isinstance(m, SCSA) for m in model.modules()) >= 3
    with torch.no_grad():
        assert torch.isfinite(model(torch.rand(1, 3, 64, 64))[0]).all()


def test_restricted_loading_where_the_release_has_it(trained):
    folder, _, last = trained
    if integration.restricted_loading() is None:
        pytest.skip(f"ultralytics {ultralytics.__version__} has no restricted loading (no ultralytics.utils.SAFE_LOAD)")
    code = f"from ultralytics import YOLO; from scsa_yolo.nn import SCSA; m = YOLO(r'{last}'); " + (
        "print(sum(isinstance(x, SCSA) for x in m.model.modules()))"
    )
    output = run([sys.executable, "-c", code], cwd=folder, ULTRALYTICS_SAFE_LOAD="1")
    assert int(output.split()[-1]) >= 3


def test_ddp_worker_script_builds_the_model_from_its_yaml_name(trained, tmp_path):
    from ultralytics.models.yolo.detect import DetectionTrainer
    from ultralytics.utils.dist import generate_ddp_file

    folder, data, _ = trained
    trainer = DetectionTrainer(
        overrides={
            "model": f"{NEWEST}n-scsa.yaml",
            "data": str(data),
            "project": str(tmp_path),
            "name": "ddp",
            "val": False,
            **TRAIN,
        }  # fmt: skip
    )
    assert isinstance(trainer.model, str)  # the worker parses the YAML itself
    script = generate_ddp_file(trainer)
    try:
        run([sys.executable, script], cwd=folder)
    finally:
        Path(script).unlink(missing_ok=True)
    weights = torch.load(tmp_path / "ddp" / "weights" / "last.pt", map_location="cpu", weights_only=False)
    assert sum(isinstance(m, SCSA) for m in weights["model"].modules()) >= 3
