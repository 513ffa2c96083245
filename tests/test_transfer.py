"""Fine-tuning from plain YOLOv8 weights: every tensor reaches its re-indexed layer, SCSA keeps its init."""

import logging

import pytest
import torch
from torch import nn
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import LOGGER

from scsa_yolo import transfer
from scsa_yolo.nn import SCSA


@pytest.fixture(scope="module")
def plain_checkpoints(tmp_path_factory):
    """yolov8n/s checkpoints in Ultralytics' format, built from YAML (a stand-in for the official COCO files)."""
    folder = tmp_path_factory.mktemp("weights")
    paths = {}
    for scale in "ns":
        torch.manual_seed(1)
        model = YOLO(f"yolov8{scale}.yaml")
        paths[scale] = folder / f"yolov8{scale}.pt"
        model.save(paths[scale])
    return paths


def source_model(path):
    return torch.load(path, map_location="cpu", weights_only=False)["model"].float()


def plain_counterparts(target: nn.Module) -> list[tuple[int, int]]:
    """(target index, plain-model index) for every non-SCSA layer, re-derived by counting SCSA layers passed."""
    pairs, passed = [], 0
    for i, layer in enumerate(target.model):
        if isinstance(layer, SCSA):
            passed += 1
        else:
            pairs.append((i, i - passed))
    return pairs


class Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def log_records():
    handler = Records()
    LOGGER.addHandler(handler)
    yield handler.messages
    LOGGER.removeHandler(handler)


def test_load_moves_every_tensor_to_its_reindexed_layer(plain_checkpoints, log_records):
    model = YOLO("yolov8n-scsa.yaml")
    scsa_init = {name: t.clone() for name, t in model.model.state_dict().items() if "dwc" in name or "norm" in name}
    model.load(plain_checkpoints["n"])
    source, target = source_model(plain_checkpoints["n"]), model.model

    for i, j in plain_counterparts(target):
        source_state, target_state = source.model[j].state_dict(), target.model[i].state_dict()
        assert source_state.keys() == target_state.keys()
        assert all(torch.equal(source_state[k], target_state[k]) for k in source_state), f"layer {i} <- {j}"
    for name, tensor in target.state_dict().items():
        if name in scsa_init:
            assert torch.equal(tensor, scsa_init[name]), name
    assert any("transferred 355/406" in m and "51 tensors of attention layers" in m for m in log_records)
    assert not any("received no pre-trained weights" in m for m in log_records)


def test_stock_transfer_would_lose_the_head(plain_checkpoints):
    """The failure the alignment exists for: by key and shape alone, the Detect head (index 22 -> 25) is lost."""
    source, target = source_model(plain_checkpoints["n"]), YOLO("yolov8n-scsa.yaml").model
    by_key = {
        k
        for k, v in source.state_dict().items()
        if k in target.state_dict() and v.shape == target.state_dict()[k].shape
    }
    assert not any(k.startswith("model.25.") for k in by_key)
    aligned = transfer.align_source(source, target).state_dict()
    assert all(k in aligned for k in target.state_dict() if k.startswith("model.25."))


def test_scale_mismatch_is_a_clear_warning(plain_checkpoints, log_records):
    YOLO("yolov8n-scsa.yaml").load(plain_checkpoints["s"])
    warning = next(m for m in log_records if "received no pre-trained weights" in m)
    assert "source scale 's'" in warning


def test_architecture_mismatch_falls_back_with_warning(plain_checkpoints, log_records):
    YOLO("yolov8n-p2-scsa.yaml").load(plain_checkpoints["n"])
    assert any("not this architecture" in m for m in log_records)


def test_new_class_count_is_reported_not_warned(plain_checkpoints, log_records):
    model = DetectionModel("yolov8n-scsa.yaml", nc=3, verbose=False)  # same architecture, three classes
    model.load(torch.load(plain_checkpoints["n"], map_location="cpu", weights_only=False))
    assert any("class-output tensors are sized for this model's classes" in m for m in log_records)
    assert not any("received no pre-trained weights" in m for m in log_records)


def test_match_layers_skips_attention_on_either_side():
    plain = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 8, 1))
    with_attention = nn.Sequential(nn.Conv2d(3, 8, 1), SCSA(8), nn.ReLU(), nn.Conv2d(8, 8, 1), SCSA(8))
    assert transfer.match_layers(plain, with_attention) == [0, None, 1, 2, None]
    assert transfer.match_layers(with_attention, plain) == [0, 2, 3]
    with pytest.raises(transfer.LayerMismatch, match="target layer 1"):
        transfer.match_layers(plain, nn.Sequential(nn.Conv2d(3, 8, 1), nn.Sigmoid()))


def test_train_pretrained_argument_uses_the_alignment(plain_checkpoints, tiny_dataset, tmp_path):
    """``pretrained=yolov8n.pt`` in training (also what ``yolo train ... pretrained=`` does) transfers the head."""
    source_head = source_model(plain_checkpoints["n"]).model[22].state_dict()
    seen = {}

    def capture_head(trainer):
        seen["head"] = {k: v.detach().clone() for k, v in trainer.model.model[25].state_dict().items()}

    model = YOLO("yolov8n-scsa.yaml")
    model.add_callback("on_pretrain_routine_end", capture_head)
    model.train(
        data=str(tiny_dataset), pretrained=str(plain_checkpoints["n"]), epochs=1, imgsz=64, batch=2, workers=0,
        device="cpu", plots=False, val=False, project=str(tmp_path), name="ft", amp=False,
    )  # fmt: skip
    # the class-output convs are re-sized for the dataset's 2 classes; everything else is the plain model's
    same = [k for k in source_head if seen["head"][k].shape == source_head[k].shape]
    assert len(same) >= len(source_head) - 6
    assert all(torch.equal(seen["head"][k], source_head[k]) for k in same if "cv2" in k)
