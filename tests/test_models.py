"""Model names derived from Ultralytics' own configs: every family x task x variant, both placement rules, weight
transfer from stock checkpoints, and the messages for names that do not exist.

Structure checks build on the meta device (no weight memory, no initialisation); one real model per family and task
runs forward and takes a stock checkpoint.
"""

import re
import tempfile
from copy import deepcopy
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from ultralytics import YOLO
from ultralytics.nn.tasks import guess_model_task, parse_model, yaml_model_load

from scsa_yolo import models, transfer
from scsa_yolo.nn import BLOCKS, SCSA
from scsa_yolo.nn.csp import AttentionBottleneck

STOCK = list(models.stock_configs())
HEAD_TASKS = {stock: guess_model_task(yaml_model_load(path)) for stock, path in models.stock_configs().items()}
PLAIN_STOCK = [s for s in STOCK if "ghost" not in s]  # the ghost variants have no C2f / C3k2 in the backbone

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def scaled(stock: str, scale: str, suffix: str = "") -> str:
    """'yolo26-seg' + 's' + '-scsa' -> 'yolo26s-seg-scsa.yaml' (the scale letter after the version, as Ultralytics)."""
    family, _, rest = stock.partition("-")
    return f"{family}{scale}{'-' + rest if rest else ''}{suffix}.yaml"


def build_on_meta(name: str) -> nn.Sequential:
    with torch.device("meta"):
        layers, _ = parse_model(deepcopy(yaml_model_load(name)), ch=3, verbose=False)
    return layers


def output_channels(layers: nn.Sequential) -> list[int]:
    """Each layer's output width, from a forward pass of a meta image through all but the head."""
    x, outputs = torch.zeros(1, 3, 128, 128, device="meta"), []
    layers.eval()
    for layer in list(layers)[:-1]:
        if layer.f != -1:
            x = outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]
        x = layer(x)
        outputs.append(x)
    return [x.shape[1] for x in outputs]


def parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_the_stock_list_is_found_not_written():
    tasks = {(stock.split("-")[0], task) for stock, task in HEAD_TASKS.items()}
    assert tasks == {(f, t) for f in models.FAMILIES for t in ("detect", "segment", "pose", "obb")}
    assert {"yolov8-p2", "yolov8-p6", "yolo26-p2", "yolo26-p6"} <= set(STOCK)
    assert not any(s.endswith(("-cls", "-sem", "-depth")) or "world" in s or "yoloe" in s for s in STOCK)
    assert models.block_names() == {name.lower(): name for name in BLOCKS}


class OnMeta(nn.Module):
    """The part of a YOLO model that weight alignment reads: its layer list."""

    def __init__(self, layers: nn.Sequential):
        super().__init__()
        self.model = layers


MATRIX = [(stock, scale) for stock in STOCK for scale in "ns" if "ghost" not in stock and "p6" not in stock]
MATRIX += [(stock, "n") for stock in STOCK if "ghost" in stock or "p6" in stock]


@pytest.mark.parametrize(("stock", "scale"), MATRIX)
def test_both_rules_on_every_stock_config(stock, scale):
    """Neck: one SCSA right before each head input, the stock sequence otherwise; backbone: SCSA inside every
    bottleneck of the backbone's CSP layers; stock + 16 * C parameters per block; every stock tensor has its place."""
    plain = build_on_meta(scaled(stock, scale))
    placement = "-scsa" if "ghost" in stock else "-scsa-both"
    attended = build_on_meta(scaled(stock, scale, placement))
    blocks = [i for i, layer in enumerate(attended) if isinstance(layer, SCSA)]
    assert attended[-1].f == blocks and len(blocks) == len(plain[-1].f)  # exactly one SCSA before each head input
    widths = output_channels(plain)
    assert [attended[i].dim for i in blocks] == [widths[j] for j in plain[-1].f]
    assert all(attended[i].f == -1 for i in blocks)
    rest = [layer for layer in attended if not isinstance(layer, SCSA)]
    assert [type(layer) for layer in rest] == [type(layer) for layer in plain]  # the stock sequence otherwise
    position = {layer.i: k for k, layer in enumerate(rest)}  # our index -> stock index
    feeds = {j: i + (i + 1 in blocks) for i, j in position.items()}  # stock index -> map its consumers read
    for ours, theirs in zip(rest, plain):  # same wiring, absolute indices renumbered around the inserted layers
        sources = theirs.f if isinstance(theirs.f, list) else [theirs.f]
        renumbered = [f if f < 0 else feeds[f] for f in sources]
        assert ours.f == (renumbered if isinstance(theirs.f, list) else renumbered[0])

    backbone = len(yaml_model_load(scaled(stock, scale))["backbone"])
    csp = [i for i in range(backbone) if type(plain[i]).__name__ in ("C2f", "C3k2")]
    inside = [i for i, layer in enumerate(attended) if any(isinstance(m, AttentionBottleneck) for m in layer.modules())]
    assert inside == ([] if "ghost" in stock else csp)
    assert not any(type(m).__name__ == "Bottleneck" for i in inside for m in attended[i].modules())
    extra = sum(16 * m.dim for m in attended.modules() if isinstance(m, SCSA))
    assert parameters(attended) == parameters(plain) + extra

    aligned = transfer.align_source(OnMeta(plain), OnMeta(attended)).state_dict()
    target = OnMeta(attended).state_dict()
    assert len(aligned) == len(OnMeta(plain).state_dict())
    assert all(key in target and target[key].shape == tensor.shape for key, tensor in aligned.items())


@pytest.mark.parametrize("stock", PLAIN_STOCK)
def test_each_placement_name_is_its_rule(stock):
    rows = {p: models.derive(models.ModelName(stock, "SCSA", p)) for p in models.PLACEMENTS}
    stock_rows = yaml.safe_load(models.stock_configs()[stock].read_text())
    assert rows["neck"]["backbone"] == stock_rows["backbone"] and rows["neck"]["head"] == rows["both"]["head"]
    assert rows["backbone"]["head"] == stock_rows["head"] and rows["backbone"]["backbone"] == rows["both"]["backbone"]
    renamed = [a[2] for a, b in zip(rows["backbone"]["backbone"], stock_rows["backbone"]) if a != b]
    assert renamed and set(renamed) <= {"C2f_SCSA", "C3k2_SCSA"}


def stock_checkpoint(stock: str, folder) -> str:
    torch.manual_seed(0)
    path = folder / scaled(stock, "n").replace(".yaml", ".pt")
    YOLO(scaled(stock, "n")).save(path)
    return str(path)


@pytest.mark.parametrize(
    ("stock", "placement"),
    [("yolo26", "-scsa-both"), ("yolo11-seg", "-scsa"), ("yolov8-pose", "-scsa-backbone"), ("yolo26-obb", "-scsa")],
)
def test_stock_checkpoint_loads_into_every_stock_tensor_and_runs(stock, placement, tmp_path):
    checkpoint = stock_checkpoint(stock, tmp_path)
    source = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"].float().state_dict()
    model = YOLO(scaled(stock, "n", placement)).load(checkpoint).model
    target = model.state_dict()
    stock_index = [i for i, layer in enumerate(model.model) if not isinstance(layer, SCSA)]  # stock index -> ours
    for key, tensor in source.items():
        _, index, rest = key.split(".", 2)
        assert torch.equal(target[f"model.{stock_index[int(index)]}.{rest}"].float(), tensor), key
    assert any("one2one" in k for k in source) == stock.startswith("yolo26")  # the end-to-end branches came too
    model.eval()
    with torch.no_grad():
        output = model(torch.rand(1, 3, 64, 64))
    while isinstance(output, (list, tuple)):
        output = output[0]
    assert torch.isfinite(output).all()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("yolo26n-foo.yaml", rf"'foo' is not a block name.*blocks: {', '.join(map(str.lower, BLOCKS))};"),
        ("yolo26n-seg-SCSA.yaml", r"'SCSA' is not a block name \(block names are lower case: 'scsa'\)"),
        ("yolo27n-scsa.yaml", r"'yolo27' is not a config of the supported families.*yolo26-seg"),
        ("yolo26n-cls-scsa.yaml", r"'yolo26-cls' has a Classify head.*detect, obb, pose, segment"),
        ("yolo11n-sge-scsa.yaml", r"'yolo11-sge' is not an Ultralytics config.*yolo11-seg"),
        ("yolov8n-ghost-scsa-backbone.yaml", r"no C2f / C3k2 layer"),
    ],
)
def test_unknown_names_list_what_exists(name, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(models.UnknownModel, match=message) as error:
        YOLO(name)
    assert str(error.value).startswith(f"model '{name}'")  # the name as typed, not Ultralytics' scale-free retry


def test_names_that_are_not_ours_are_left_to_ultralytics():
    assert models.parse_name("yolov8n.yaml") is None and models.parse_name("my-detector.yaml") is None
    with pytest.raises(FileNotFoundError) as error:
        YOLO("my-detector.yaml")
    assert not isinstance(error.value, models.UnknownModel)


def test_generated_file_is_readable_yaml_with_its_origin(tmp_path, monkeypatch):
    path = models.model_yaml("yolo11s-seg-scsa.yaml")
    assert path.name == "yolo11-seg-scsa.yaml" and path.parent == models.cache_dir()
    text = path.read_text()
    assert "11/yolo11-seg.yaml" in text.splitlines()[0]
    rows = yaml.safe_load(text)["head"]
    assert rows[-1][:3] == [[17, 21, 25], 1, "Segment"]
    assert models.model_yaml("yolo11s-seg-scsa.yaml").read_text() == text  # stable: rewritten only when it differs


def test_unwritable_config_folder_falls_back_to_a_private_temp_folder(tmp_path, monkeypatch):
    blocker = tmp_path / "config"
    blocker.write_text("a file where the folder would go: mkdir fails even for root")
    monkeypatch.setattr(models, "cache_dir", lambda: blocker / "models")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    models._private_temp_dir.cache_clear()
    try:
        path = models.model_yaml("yolo26n-scsa.yaml")
        assert path.parent.parent == tmp_path and path.name == "yolo26-scsa.yaml"
        assert YOLO("yolo26n-scsa.yaml").model.yaml["head"] == yaml.safe_load(path.read_text())["head"]
    finally:
        models._private_temp_dir.cache_clear()


def test_every_preset_and_table_name_resolves():
    from ultralytics.nn import tasks

    from scsa_yolo.benchmark.runner import PRESETS
    from scsa_yolo.summary import pairs

    names = {name for preset in PRESETS.values() for name in preset} | {n for pair in pairs("ns") for n in pair}
    for name in names:  # Ultralytics' own lookup (scale-free name), which the derived names extend
        assert tasks.check_yaml(models.scale_free(name)), name
    assert {"yolo11n-scsa.yaml", "yolo26n-scsa-both.yaml", "yolo26n-ela.yaml"} <= names
    assert ("yolo26s-pose.yaml", "yolo26s-pose-scsa.yaml") in pairs("ns")
    assert models.scaled_name("yolo26-seg-scsa", "s") == "yolo26s-seg-scsa.yaml"


def test_block_lists_in_the_docs_are_the_registered_blocks():
    """The docs name the blocks for readers; they must say what ``BLOCKS`` holds, in its order."""
    others = ",".join(name.lower() for name in BLOCKS if name != "SCSA")
    root, checked = Path(__file__).resolve().parents[1], 0
    for page in ("README.md", "docs/models.md", "docs/attention.md"):
        text = (root / page).read_text(encoding="utf-8")
        for listed in re.findall(r"-\{([a-z,]+)\}\.yaml", text):
            assert listed == others, page
            checked += 1
        for listed in re.findall(r"lower-cased: ([a-z, ]+)\.", text):
            assert listed.replace(" ", "") == f"scsa,{others}", page
            checked += 1
    assert checked == 4  # README twice, attention.md once, models.md once: a rewording must keep this test meaningful


def test_model_table_gives_the_blocks_cost_in_a_unit_that_shows_it(monkeypatch, capsys):
    from scsa_yolo import summary

    monkeypatch.setattr(summary, "pairs", lambda scales: [("yolov8n.yaml", "yolov8n-scsa.yaml")])
    table = summary.model_table("n", imgsz=320).splitlines()
    assert "Counting models" in capsys.readouterr().err  # the progress bar, kept off stdout, where the table goes
    assert table[0].endswith("| SCSA MFLOPs |")
    plain, scsa = summary.measure("yolov8n.yaml", 320), summary.measure("yolov8n-scsa.yaml", 320)
    cost = table[-1].rstrip(" |").rsplit("| ", 1)[1]
    assert cost == f"+{1e3 * (scsa.gflops - plain.gflops):.1f}" and float(cost) > 0

