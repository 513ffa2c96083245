"""Ultralytics' own training features with SCSA models, on tiny data: knowledge distillation (``distill_model=``, both
directions), ``freeze=`` with the neck rule's shifted indices, and ``model.tune()``."""

import pytest
import torch
from ultralytics import YOLO
from ultralytics.utils.torch_utils import unwrap_model

from scsa_yolo import transfer
from scsa_yolo.nn import SCSA

COMMON = dict(epochs=1, imgsz=64, batch=2, workers=0, device="cpu", plots=False, amp=False, seed=0, exist_ok=True)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from conftest import write_tiny_detection_dataset

    return write_tiny_detection_dataset(tmp_path_factory.mktemp("tiny"), images=4)


def checkpoint(name: str, folder) -> str:
    torch.manual_seed(0)
    path = folder / name.replace(".yaml", ".pt")
    YOLO(name).save(path)
    return str(path)


@pytest.mark.parametrize(
    ("student", "teacher"), [("yolov8n-scsa.yaml", "yolov8n.yaml"), ("yolov8n.yaml", "yolov8s-scsa.yaml")]
)
def test_distillation_between_plain_and_scsa_models(student, teacher, dataset, tmp_path):
    """The distillation wrapper hooks each model's own head inputs: for an SCSA model those are its SCSA layers
    (after the index shift), for a plain one its neck layers; training runs and the student's checkpoint has no
    teacher and keeps its SCSA blocks."""
    seen = {}

    def capture(trainer):
        wrapped = unwrap_model(trainer.model)
        seen["type"] = type(wrapped).__name__
        seen["student"] = [type(wrapped.student_model.model[i]).__name__ for i in wrapped.feats_idx[:-1]]
        seen["teacher"] = [type(wrapped.teacher_model.model[i]).__name__ for i in wrapped.teacher_feats_idx[:-1]]

    model = YOLO(student)
    model.add_callback("on_train_start", capture)
    model.train(
        data=str(dataset), distill_model=checkpoint(teacher, tmp_path), project=str(tmp_path), name="kd", **COMMON
    )
    assert seen["type"] == "DistillationModel"
    assert seen["student"] == (["SCSA"] * 3 if "scsa" in student else ["C2f"] * 3)
    assert seen["teacher"] == (["SCSA"] * 3 if "scsa" in teacher else ["C2f"] * 3)
    best = torch.load(tmp_path / "kd" / "weights" / "last.pt", map_location="cpu", weights_only=False)["model"]
    assert type(best).__name__ == "DetectionModel"  # the student alone
    assert sum(isinstance(m, SCSA) for m in best.modules()) == (3 if "scsa" in student else 0)


def trainable(model: YOLO, freeze, tmp_path, dataset) -> dict[str, bool]:
    seen = {}

    def capture(trainer):
        seen.update({n: p.requires_grad for n, p in unwrap_model(trainer.model).named_parameters()})

    model.add_callback("on_train_start", capture)
    model.train(data=str(dataset), freeze=freeze, project=str(tmp_path), name="freeze", val=False, **COMMON)
    return seen


def frozen_layers(flags: dict[str, bool]) -> set[int]:
    return {int(n.split(".")[1]) for n, grad in flags.items() if not grad and ".dfl." not in n}


def with_parameters(flags: dict[str, bool]) -> set[int]:
    return {int(n.split(".")[1]) for n in flags}


def test_freeze_by_stock_index_maps_across_the_inserted_blocks(dataset, tmp_path):
    """freeze=22 means 'everything but Detect' on yolov8n; on yolov8n-scsa the same number freezes two SCSA blocks
    and leaves three stock neck layers trainable. ``transfer.freeze_indices`` gives the stock meaning back."""
    model = YOLO("yolov8n-scsa.yaml")
    blocks = [i for i, layer in enumerate(model.model.model) if isinstance(layer, SCSA)]
    assert blocks == [16, 20, 24]
    indices = transfer.freeze_indices(model, 22)
    assert indices == [i for i in range(25) if i not in blocks]  # 22 stock layers, the blocks left trainable
    assert transfer.freeze_indices(model, 22, attention=True) == list(range(25))
    assert transfer.freeze_indices(model, [0, 15, 16]) == [0, 15, 17]

    flags = trainable(YOLO("yolov8n-scsa.yaml"), 22, tmp_path / "a", dataset)
    by_number = frozen_layers(flags)
    assert by_number == set(range(22)) & with_parameters(flags)  # the pitfall: blocks 16 and 20 frozen ...
    assert {16, 20} <= by_number and not {22, 23, 24} & by_number  # ... stock layers 19-21 (now 22-24) trainable
    flags = trainable(YOLO("yolov8n-scsa.yaml"), indices, tmp_path / "b", dataset)
    by_stock = frozen_layers(flags)
    assert by_stock == set(indices) & with_parameters(flags) and not by_stock & set(blocks) and 25 not in by_stock


@pytest.mark.slow
def test_tune_runs_on_an_scsa_model(dataset, tmp_path):
    """Ultralytics' tuner (in-process trainers, mutated hyperparameters) trains the SCSA model each iteration."""
    model = YOLO("yolov8n-scsa.yaml")
    args = {k: v for k, v in COMMON.items() if k != "exist_ok"}
    model.tune(data=str(dataset), iterations=2, project=str(tmp_path), name="tune", val=True, save=True, **args)
    results = sorted((tmp_path / "tune").glob("**/weights/*.pt"))
    assert results, "no trained weights from the tuning iterations"
    trained = torch.load(results[-1], map_location="cpu", weights_only=False)["model"]
    assert sum(isinstance(m, SCSA) for m in trained.modules()) == 3
    assert (tmp_path / "tune").is_dir() and any((tmp_path / "tune").rglob("best_hyperparameters.yaml"))


def test_an_scsa_classifier_trains_and_validates(tmp_path):
    """The classify task end to end: YOLO26n-cls with SCSA before Classify trains on class folders, validates
    (top-1 / top-5), and its checkpoint keeps the block."""
    from task_data import write_tiny_classification_dataset

    data = write_tiny_classification_dataset(tmp_path / "cls")
    model = YOLO("yolo26n-cls-scsa.yaml")
    assert model.task == "classify" and isinstance(model.model.model[-2], SCSA)
    args = {**COMMON, "imgsz": 32}
    metrics = model.train(data=str(data), project=str(tmp_path), name="cls", **args)
    assert 0.0 <= metrics.top1 <= 1.0 and metrics.top5 == 1.0  # two classes: always in the top 5
    best = torch.load(tmp_path / "cls" / "weights" / "best.pt", map_location="cpu", weights_only=False)["model"]
    assert sum(isinstance(m, SCSA) for m in best.modules()) == 1


def test_an_scsa_semantic_model_trains_and_validates(tmp_path):
    """The semantic task end to end: YOLO26n-sem with SCSA before each SemanticSegment input trains on PNG masks and
    reports mIoU."""
    from task_data import write_tiny_semantic_dataset

    data = write_tiny_semantic_dataset(tmp_path / "sem")
    model = YOLO("yolo26n-sem-scsa.yaml")
    assert model.task == "semantic"
    assert [type(model.model.model[i]).__name__ for i in model.model.model[-1].f] == ["SCSA", "SCSA"]
    metrics = model.train(data=str(data), project=str(tmp_path), name="sem", **COMMON)
    assert 0.0 <= metrics.miou <= 1.0
    best = torch.load(tmp_path / "sem" / "weights" / "best.pt", map_location="cpu", weights_only=False)["model"]
    assert sum(isinstance(m, SCSA) for m in best.modules()) == 2


def test_an_scsa_depth_model_trains_and_validates(tmp_path):
    """The depth task end to end: YOLO26n-depth with SCSA before each Depth input trains on 16-bit depth PNGs and
    reports delta1 / abs_rel."""
    from task_data import write_tiny_depth_dataset

    data = write_tiny_depth_dataset(tmp_path / "depth")
    model = YOLO("yolo26n-depth-scsa.yaml")
    assert model.task == "depth"
    assert [type(model.model.model[i]).__name__ for i in model.model.model[-1].f] == ["SCSA"] * 3
    metrics = model.train(data=str(data), project=str(tmp_path), name="depth", **COMMON)
    results = metrics.results_dict
    assert 0.0 <= results["metrics/delta1"] <= 1.0 and results["metrics/abs_rel"] > 0
    best = torch.load(tmp_path / "depth" / "weights" / "best.pt", map_location="cpu", weights_only=False)["model"]
    assert sum(isinstance(m, SCSA) for m in best.modules()) == 3
