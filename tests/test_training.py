"""Training behaves like any Ultralytics model: resume, DDP worker processes, mixed precision."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from ultralytics.cfg import get_cfg
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import DEFAULT_CFG
from ultralytics.utils.dist import generate_ddp_file

from scsa_yolo import integration
from scsa_yolo.nn import SCSA

TINY_TRAIN = {"epochs": 1, "imgsz": 64, "batch": 2, "workers": 0, "device": "cpu", "plots": False, "amp": False}


def run(command: list, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **env}, timeout=600, cwd=Path.cwd()
    )


@pytest.mark.slow
def test_interrupted_run_resumes_from_last_checkpoint(tiny_dataset, tmp_path):
    project = tmp_path / "runs"
    interrupted = textwrap.dedent(f"""
        import os
        from ultralytics import YOLO
        model = YOLO("yolov8n-scsa.yaml")
        # a hard kill right after epoch 1 was checkpointed: no clean-up, as with a lost node or Ctrl-C
        model.add_callback("on_fit_epoch_end", lambda trainer: os._exit(3))
        model.train(data={str(tiny_dataset)!r}, project={str(project)!r}, name="run",
                    **{ {**TINY_TRAIN, "epochs": 2}!r})
    """)
    first = run([sys.executable, "-c", interrupted])
    assert first.returncode == 3, first.stderr[-3000:]
    last = project / "run" / "weights" / "last.pt"
    assert torch.load(last, map_location="cpu", weights_only=False)["epoch"] == 0

    yolo = Path(sys.executable).parent / "yolo"
    second = run([str(yolo), "train", "resume", f"model={last}"])
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    assert "Resuming training" in output
    epochs = (project / "run" / "results.csv").read_text().strip().splitlines()[1:]
    assert [row.split(",")[0].strip() for row in epochs] == ["1", "2"]


def ddp_worker_script(tiny_dataset: Path, tmp_path: Path, keep_plugin_callback: bool) -> str:
    """The script Ultralytics runs in each DDP worker, for a trainer whose model is a YAML name (not a module)."""
    trainer = DetectionTrainer(
        overrides={
            "model": "yolov8n-scsa.yaml",
            "data": str(tiny_dataset),
            "project": str(tmp_path),
            "name": "ddp",
            "val": False,
            **TINY_TRAIN,
        }  # fmt: skip
    )
    assert isinstance(trainer.model, str)  # the worker has to parse the YAML itself
    if not keep_plugin_callback:
        for callbacks in trainer.callbacks.values():
            if integration.ensure_registered in callbacks:
                callbacks.remove(integration.ensure_registered)
    return generate_ddp_file(trainer)


@pytest.mark.slow
def test_ddp_worker_rebuilds_scsa_model_from_yaml(tiny_dataset, tmp_path):
    # The start-up hook is off in the worker, so the pickled callback alone must bring the registration along.
    script = ddp_worker_script(tiny_dataset, tmp_path, keep_plugin_callback=True)
    result = run([sys.executable, script], SCSA_YOLO_AUTOLOAD="0")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    weights = torch.load(tmp_path / "ddp" / "weights" / "last.pt", map_location="cpu", weights_only=False)
    assert sum(isinstance(m, SCSA) for m in weights["model"].modules()) == 3


@pytest.mark.slow
def test_ddp_worker_without_registration_fails(tiny_dataset, tmp_path):
    """Control for the test above: without the callback and the hook, the worker finds neither YAML nor block."""
    script = ddp_worker_script(tiny_dataset, tmp_path, keep_plugin_callback=False)
    result = run([sys.executable, script], SCSA_YOLO_AUTOLOAD="0")
    assert result.returncode != 0
    assert "'yolov8-scsa.yaml' does not exist" in result.stderr or "KeyError: 'SCSA'" in result.stderr


AUTOCAST_DTYPES = [torch.bfloat16, torch.float16]


@pytest.mark.parametrize("dtype", AUTOCAST_DTYPES, ids=str)
def test_scsa_under_autocast_is_finite_and_close(dtype):
    """Tolerance: max |y_amp - y_fp32| <= 3e-2 * max |y_fp32| (bfloat16 keeps 8 mantissa bits, float16 11)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    block = SCSA(64).to(device).eval()
    x = torch.randn(2, 64, 40, 24, device=device) * 4
    with torch.no_grad():
        reference = block(x)
        with torch.autocast(device_type=device, dtype=dtype):
            mixed = block(x)
    assert torch.isfinite(mixed).all()
    assert (mixed.float() - reference).abs().max() <= 3e-2 * reference.abs().max()


def test_training_step_under_autocast_has_finite_loss():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.bfloat16  # what AMP uses on each device type
    torch.manual_seed(0)
    model = DetectionModel("yolov8n-scsa.yaml", nc=2, verbose=False).to(device).train()
    model.args = get_cfg(DEFAULT_CFG)  # the trainer's default loss gains
    batch = {
        "img": torch.rand(2, 3, 128, 128, device=device),
        "batch_idx": torch.tensor([0.0, 1.0], device=device),
        "cls": torch.tensor([[0.0], [1.0]], device=device),
        "bboxes": torch.tensor([[0.5, 0.5, 0.3, 0.2], [0.3, 0.6, 0.2, 0.4]], device=device),
    }
    scaler = torch.amp.GradScaler(device, enabled=device == "cuda")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with torch.autocast(device_type=device, dtype=dtype):
        loss, _ = model.loss(batch)
    scaler.scale(loss.sum()).backward()
    scaler.step(optimizer)
    scaler.update()
    assert torch.isfinite(loss).all()
    scsa_grads = [p.grad for m in model.modules() if isinstance(m, SCSA) for p in m.parameters()]
    assert scsa_grads and all(g is not None and torch.isfinite(g).all() for g in scsa_grads)
