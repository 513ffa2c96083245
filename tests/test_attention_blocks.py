"""Comparison attention blocks: shapes, training, ONNX, paper defaults, optional timm, and their model configs."""

import functools
import importlib.util
import subprocess
import sys
from copy import deepcopy

import numpy as np
import pytest
import torch
import yaml
from torch import nn

import scsa_yolo  # noqa: F401  (registers the blocks with Ultralytics)
from scsa_yolo.models import model_yaml
from scsa_yolo.nn import BLOCKS
from scsa_yolo.nn.attention import ATTENTION_BLOCKS, CA, CBAM, ECA, ELA, EMA, SE, SimAM

TIMM_BLOCKS = {"SE", "CBAM", "ECA", "CA"}
needs_timm = pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm (extra 'compare') missing")
BLOCK_PARAMS = [pytest.param(name, marks=needs_timm if name in TIMM_BLOCKS else ()) for name in ATTENTION_BLOCKS]
CONFIG_STEMS = {name: name.lower() for name in ATTENTION_BLOCKS}  # model names use the lower-cased block name
SCSA_ROWS = (16, 20, 24)  # where yolov8-scsa.yaml places SCSA
# A conv bias that feeds a training-mode BatchNorm is subtracted out with the batch mean, so its gradient is zero;
# the official Coordinate Attention has one (kept for parameter parity with it).
ZERO_GRADIENT = {"CA": {"1.ca.conv1.bias"}}


pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_table_names_every_block_once_and_reaches_the_registry():
    assert list(ATTENTION_BLOCKS) == ["SE", "CBAM", "ECA", "CA", "EMA", "SimAM", "ELA"]
    assert all(BLOCKS[name] is cls for name, cls in ATTENTION_BLOCKS.items())
    assert BLOCKS["SCSA"].__name__ == "SCSA"


@pytest.mark.parametrize("name", BLOCK_PARAMS)
def test_keeps_shape_at_every_yolo_width_and_small_maps(name):
    torch.manual_seed(0)
    for channels in (16, 48, 64, 640):
        block = ATTENTION_BLOCKS[name](channels)
        for height, width in ((1, 1), (2, 2), (1, 3), (5, 2), (16, 16)):
            for training, batch in ((True, 2), (False, 1)):
                x = torch.randn(batch, channels, height, width)
                y = block.train(training)(x)
                assert y.shape == x.shape, (channels, height, width)
                assert torch.isfinite(y).all(), (channels, height, width, training)
                assert not torch.allclose(y, x), "the block left its input unchanged"


@pytest.mark.parametrize("name", BLOCK_PARAMS)
def test_one_training_step_updates_every_parameter(name):
    torch.manual_seed(0)
    stem = nn.Conv2d(3, 32, 3, padding=1)  # gives parameter-free blocks (SimAM) something to train through
    block = ATTENTION_BLOCKS[name](32)
    model = nn.Sequential(stem, block).train()
    before = {key: value.detach().clone() for key, value in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)

    loss = (model(torch.randn(4, 3, 8, 8)) - torch.randn(4, 32, 8, 8)).square().mean()
    loss.backward()
    assert torch.isfinite(loss)
    for key, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), key
    optimizer.step()

    zero_gradient = ZERO_GRADIENT.get(name, set())
    for key, parameter in model.named_parameters():
        if key in zero_gradient:  # zero up to rounding
            torch.testing.assert_close(parameter.grad, torch.zeros_like(parameter.grad), atol=1e-6, rtol=0)
    unchanged = [key for key, value in model.named_parameters() if torch.equal(value, before[key])]
    assert set(unchanged) <= zero_gradient
    assert all(torch.isfinite(value).all() for value in model.parameters())


@pytest.mark.parametrize("name", BLOCK_PARAMS)
def test_onnx_export_matches_pytorch(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    block = ATTENTION_BLOCKS[name](64).eval()
    for module in block.modules():  # non-default BatchNorm statistics, so the export has to carry them
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 64, 6, 10)
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(block, (x,), str(path), dynamo=False, opset_version=17, input_names=["x"])

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (exported,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        expected = block(x).numpy()
    np.testing.assert_allclose(exported, expected, rtol=1e-4, atol=1e-5)


@needs_timm
def test_timm_wrappers_use_the_paper_defaults():
    se = SE(64).se
    assert (se.fc1.out_channels, se.fc1.bias is not None) == (4, True)  # r = 16, not timm's round-up to 8

    cbam = CBAM(64).cbam
    assert cbam.channel.fc1.out_channels == 4 and cbam.channel.fc1.bias is not None  # official code: MLP with bias
    assert cbam.spatial.conv.conv.kernel_size == (7, 7)
    x = torch.zeros(1, 64, 4, 4)
    x[:, :, 0, 0] = 5.0  # max- and mean-pooled descriptors differ: the paper's channel MLP sees both
    assert not torch.allclose(
        cbam.channel.fc2(cbam.channel.act(cbam.channel.fc1(x.amax((2, 3), keepdim=True)))),
        cbam.channel.fc2(cbam.channel.act(cbam.channel.fc1(x.mean((2, 3), keepdim=True)))),
    )

    assert [ECA(c).kernel_size for c in (16, 64, 128, 256, 640)] == [3, 3, 5, 5, 5]  # |(log2 C + 1) / 2|_odd
    assert ECA(64).eca.conv.bias is None

    ca = CA(64).ca
    assert (ca.conv1.out_channels, ca.conv1.bias is not None, type(ca.act)) == (8, True, nn.Hardswish)
    assert CA(640).ca.conv1.out_channels == 20  # max(8, C // 32)


def test_own_blocks_use_the_paper_defaults_and_clamp_groups():
    assert EMA(64).groups == 32 and EMA(640).groups == 32 and EMA(48).groups == 24 and EMA(20).groups == 20
    assert EMA(64).conv1x1.in_channels == 2 and EMA(64).gn.num_groups == 2  # GroupNorm: one group per channel
    assert (ELA(64).conv.kernel_size, ELA(64).norm.num_groups, ELA(64).conv.bias) == ((7,), 16, None)
    assert ELA(16).norm.num_groups == 8 and ELA(24).norm.num_groups == 12
    assert SimAM(64).e_lambda == 1e-4 and list(SimAM(64).parameters()) == []
    for bad in (lambda: EMA(0), lambda: ELA(64, kernel_size=4), lambda: SimAM(64, e_lambda=0.0)):
        with pytest.raises(ValueError):
            bad()


def test_simam_follows_the_energy_formula():
    x = torch.randn(2, 8, 3, 4)
    n = 3 * 4 - 1
    deviation = (x - x.mean(dim=(2, 3), keepdim=True)) ** 2
    expected = x * torch.sigmoid(deviation / (4 * (deviation.sum(dim=(2, 3), keepdim=True) / n + 1e-4)) + 0.5)
    torch.testing.assert_close(SimAM()(x), expected)
    single = torch.randn(1, 8, 1, 1)  # the official n = HW - 1 = 0 would give NaN
    torch.testing.assert_close(SimAM()(single), single * torch.sigmoid(torch.tensor(0.5)))


def test_without_timm_scsa_and_own_blocks_work_and_timm_blocks_name_the_extra():
    script = (
        "import sys\n"
        "sys.modules['timm'] = None\n"  # makes every 'import timm...' raise ImportError
        "import scsa_yolo\n"
        "from scsa_yolo.nn import create_block\n"
        "for name in ('SCSA', 'EMA', 'SimAM', 'ELA'):\n"
        "    create_block(name, 64)\n"
        "for name in ('SE', 'CBAM', 'ECA', 'CA'):\n"
        "    try:\n"
        "        create_block(name, 64)\n"
        "    except ImportError as error:\n"
        "        assert 'scsa-yolo[compare]' in str(error) and name in str(error), error\n"
        "    else:\n"
        "        raise SystemExit(name + ' was built without timm')\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def load_rows(path) -> dict:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("name", list(CONFIG_STEMS))
def test_config_equals_the_scsa_config_except_the_block(name):
    scsa = load_rows(model_yaml("yolov8-scsa.yaml"))
    other = load_rows(model_yaml(f"yolov8-{CONFIG_STEMS[name]}.yaml"))
    for section in ("backbone", "head"):
        for row in scsa[section]:
            if row[2] == "SCSA":
                row[2] = name
    assert other == scsa
    assert [i for i, row in enumerate(other["backbone"] + other["head"]) if row[2] == name] == list(SCSA_ROWS)


def build_on_meta(cfg: str):
    """Parse a model YAML on the meta device (no weight memory, no initialisation cost) and push a meta image through.

    Returns the layers and every layer's output, which is what the channel checks need; real building of all 35
    scale/config pairs on CPU takes minutes.
    """
    from ultralytics.nn.tasks import parse_model, yaml_model_load

    with torch.device("meta"):
        layers, _ = parse_model(deepcopy(yaml_model_load(cfg)), ch=3, verbose=False)
        x, outputs = torch.zeros(1, 3, 64, 64), []
        for layer in layers:
            if layer.f != -1:
                x = outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]
            x = layer(x)
            outputs.append(x)
    return layers, outputs


@pytest.mark.parametrize("name", BLOCK_PARAMS)
def test_config_builds_at_every_scale_with_the_producing_layers_channels(name, monkeypatch):
    block_class = ATTENTION_BLOCKS[name]
    seen_channels = []
    original_init = block_class.__init__

    @functools.wraps(original_init)
    def recording_init(self, c1, *args, **kwargs):
        seen_channels.append(c1)
        original_init(self, c1, *args, **kwargs)

    monkeypatch.setattr(block_class, "__init__", recording_init)
    widths = {}
    for scale in "nsmlx":
        seen_channels.clear()
        layers, outputs = build_on_meta(f"yolov8{scale}-{CONFIG_STEMS[name]}.yaml")
        producing = [outputs[i - 1].shape[1] for i in SCSA_ROWS]
        assert [type(layers[i]) for i in SCSA_ROWS] == [block_class] * 3
        assert seen_channels == producing, scale
        assert [outputs[i].shape for i in SCSA_ROWS] == [outputs[i - 1].shape for i in SCSA_ROWS]
        widths[scale] = producing
    assert widths == {
        "n": [64, 128, 256],
        "s": [128, 256, 512],
        "m": [192, 384, 576],
        "l": [256, 512, 512],
        "x": [320, 640, 640],
    }


@needs_timm
def test_yolo_builds_a_comparison_config_by_name():
    from ultralytics import YOLO

    model = YOLO("yolov8n-cbam.yaml").model.eval()
    assert [type(model.model[i]) for i in SCSA_ROWS] == [CBAM] * 3
    with torch.no_grad():
        prediction = model(torch.rand(1, 3, 64, 64))[0]
    assert prediction.shape == (1, 84, 84)  # 4 box + 80 class rows; 8x8 + 4x4 + 2x2 anchors
