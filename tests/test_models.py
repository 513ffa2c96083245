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
from scsa_yolo.nn.csp import AttendedConv, AttentionBottleneck

FAMILY_STOCK = [s for s in models.stock_configs() if s.split("-")[0] in models.FAMILIES]  # yolov8, yolo11, yolo26
BOX_HEADS = {"Detect", "Segment", "Segment26", "Pose", "Pose26", "OBB", "OBB26"}  # every head: tests/test_every_yaml.py
STOCK = [s for s in FAMILY_STOCK if models.head_of(s) in BOX_HEADS]
HEAD_TASKS = {stock: guess_model_task(yaml_model_load(models.stock_configs()[stock])) for stock in STOCK}
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
    every = set(models.stock_configs())
    assert {"yolo26-cls", "yolo26-sem", "yolo26-depth", "yolov8-worldv2", "yoloe-26-seg", "rtdetr-l"} <= every
    assert {"yolov10n", "yolov9e", "yolov3-tiny", "yolo12", "yolov8-cls-resnet50", "yolo11-cls-resnet18"} <= every
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
    assert [i for i, (a, b) in enumerate(zip(rows["backbone"]["backbone"], stock_rows["backbone"])) if a != b] == (
        models.backbone_hosts(stock)
    )


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
        ("yolo27n-scsa.yaml", r"'yolo27' is not an Ultralytics model family.*yolo26-seg"),
        ("yolo11n-sge-scsa.yaml", r"'yolo11-sge' is not a config of the installed Ultralytics.*yolo11-seg"),
        ("yolov10-scsa.yaml", r"'yolov10' is not a config of the installed Ultralytics.*yolov10n, yolov10s"),
        ("yolov8n-ghost-scsa-backbone.yaml", r"no C2f / C3k2 / .* layer to place SCSA in"),
        ("rtdetr-l-scsa-backbone.yaml", r"backbone of rtdetr-l has no C2f / C3k2 / .*ResNetLayer layer"),
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

    from scsa_yolo import summary
    from scsa_yolo.benchmark.plan import PRESETS
    from scsa_yolo.summary import pairs

    names = {name for preset in PRESETS.values() for name in preset}
    names |= {n for pair in pairs("ns") for n in (pair.plain, pair.scsa)}
    configs = models.stock_configs()
    for name in names:  # a stock config (as Ultralytics unifies the name, or as written) or a derived one
        stem = Path(name).stem
        assert models.scale_free(stem) in configs or stem in configs or models.parse_name(name), name
    for name in ("yolov10n-scsa.yaml", "yolov9s-scsa.yaml", "rtdetr-l-scsa.yaml", "yolo26n-sem-scsa.yaml"):
        loaded = yaml_model_load(name)  # Ultralytics' own lookup: the name as typed first, then scale-free
        assert loaded["head"][-1][2] == models.head_of(models.parse_name(name).stock), name
    assert tasks.check_yaml(models.scale_free("yolo26s-pose-scsa.yaml"))
    assert {"yolo11n-scsa.yaml", "yolo26n-scsa-both.yaml", "yolo26n-ela.yaml"} <= names
    assert summary.Pair("26", "pose", "yolo26s-pose.yaml", "yolo26s-pose-scsa.yaml") in pairs("ns")
    listed = {(pair.family, pair.task) for pair in pairs("n")}  # every folder and task of the installed Ultralytics
    assert {pair.task for pair in pairs("n")} == {"detect", "segment", "semantic", "depth", "classify", "pose", "obb"}
    assert {path.parent.name for path in models.stock_configs().values()} == {family for family, _ in listed}
    assert ("rt-detr", "detect") in listed and ("26", "semantic") in listed and ("v8", "classify") in listed
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
    import logging

    from ultralytics.utils import LOGGER

    from scsa_yolo import summary

    classify = summary.Pair("v8", "classify", "yolov8n-cls.yaml", "yolov8n-cls-scsa.yaml")
    pair = summary.Pair("v8", "detect", "yolov8n.yaml", "yolov8n-scsa.yaml")
    monkeypatch.setattr(summary, "pairs", lambda scales: [classify, pair])
    logged = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    LOGGER.addHandler(handler)
    try:
        table = summary.model_table("n", imgsz=320).splitlines()
    finally:
        LOGGER.removeHandler(handler)
    assert not any("summary" in m for m in logged)  # ClassificationModel's own summary line would land in stdout
    assert "Counting models" in capsys.readouterr().err  # the progress bar, kept off stdout, where the table goes
    assert table[2].startswith("| v8 | classify | yolov8n-cls.yaml |") and len(table) == 6
    assert table[0].startswith("| family | task | model |") and table[0].endswith("| SCSA MFLOPs |")
    assert table[-1].startswith("| v8 | detect | yolov8n-scsa.yaml |")
    plain, scsa = summary.measure("yolov8n.yaml", 320), summary.measure("yolov8n-scsa.yaml", 320)
    assert summary.measure("yolov8n-rtdetr-scsa.yaml", 64).params > 0  # built through RTDETR, as the name asks
    cost = table[-1].rstrip(" |").rsplit("| ", 1)[1]
    assert cost == f"+{1e3 * (scsa.gflops - plain.gflops):.1f}" and float(cost) > 0


def tiny_classifier(rows: list) -> "nn.Module":
    from ultralytics.nn.tasks import ClassificationModel

    return ClassificationModel({"nc": 3, "backbone": rows, "head": [[-1, 1, "Classify", [3]]]}, verbose=False)


def test_every_unit_rule_survives_fuse_and_keeps_stock_names():
    """ResNetBlock, CIB, AAttn and RepBottleneck units: the block sits where the rule says, Ultralytics' fuse() folds
    the BN of the wrapped convs and keeps the block, and the output does not change."""
    from ultralytics.nn.modules.block import CIB, AAttn, RepBottleneck, ResNetBlock

    torch.manual_seed(0)
    rows = [
        [-1, 1, "ResNetLayer", [3, 16, 1, True, 1]],
        [-1, 1, "ResNetLayer_SCSA", [16, 8, 1, False, 2]],  # 2 blocks on 8 mid channels, out 32
        [-1, 1, "C2fCIB_SCSA", [32, True, True]],
        [-1, 1, "A2C2f_SCSA", [64, True, 1]],  # ABlock widths are multiples of 32
        [-1, 1, "RepNCSPELAN4_SCSA", [32, 32, 16, 1]],
    ]
    model = tiny_classifier(rows).eval()
    stock = tiny_classifier([[f, n, m.split("_")[0], a] for f, n, m, a in rows])
    assert set(stock.state_dict()) <= set(model.state_dict())
    extra = [k for k in model.state_dict() if k not in stock.state_dict()]
    assert extra and all(".attn." in k for k in extra)
    units = {type(m): m for m in model.modules() if isinstance(m, (ResNetBlock, CIB, AAttn))}
    assert units[ResNetBlock].cv3.attn.dim == 8 and units[CIB].cv1[3].attn.dim == units[CIB].cv1[3].conv.in_channels
    assert units[AAttn].proj.attn.dim == units[AAttn].proj.conv.in_channels
    assert not any(type(m) is RepBottleneck for m in model.modules())  # wrapped, so it runs cv1 -> attn -> cv2
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        model.fuse(verbose=False)
        after = model(x)
    assert not any(hasattr(m, "bn") for m in model.modules() if isinstance(m, AttendedConv))
    assert sum(isinstance(m, SCSA) for m in model.modules()) == 2 + 3 + 1 + 1
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


def test_a_unit_too_narrow_for_the_block_names_the_row_and_the_unit():
    with pytest.raises(ValueError, match=r"layer 1 \(ResNetLayer_SCSA\): bottleneck 'layer.0' has 6 middle channels"):
        tiny_classifier(
            [[-1, 1, "ResNetLayer", [3, 16, 1, True, 1]], [-1, 1, "ResNetLayer_SCSA", [16, 6, 1, False, 1]]]
        )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--imgsz", "-1"], "scsa-yolo models: error: --imgsz must be at least 32"),
        (["--scales", "q"], "scsa-yolo models: error: --scales: scale 'q' is unknown; use letters of 'nslmx'"),
        (["--scales", "nq"], "scale 'q' is unknown"),
    ],
)
def test_models_command_refuses_bad_flags_in_one_line(argv, message, capsys):
    from scsa_yolo import cli

    assert cli.main(["models", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_models_help_module_imports_nothing_heavy():
    """``scsa-yolo models --help`` builds this module's flags: importing it and adding them must not import torch or
    Ultralytics (the package import itself is light where ``scsa_yolo/__init__`` defers registration)."""
    import subprocess
    import sys

    code = (
        "import argparse, importlib.util, sys; "
        "spec = importlib.util.spec_from_file_location('m', 'scsa_yolo/cli/models.py'); "
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
        "p = argparse.ArgumentParser(); m.add_arguments(p); p.parse_args([]); "
        "print(sorted(k for k in ('torch', 'ultralytics') if k in sys.modules))"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("marker", ["head-rules", "backbone-rules"])
def test_the_rule_tables_in_the_docs_are_the_installed_ones(marker):
    text = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text(encoding="utf-8")
    shown = re.search(rf"<!-- {marker} -->\n(.*?)\n<!-- /{marker} -->", text, flags=re.S).group(1)
    table = models.head_rules_markdown() if marker == "head-rules" else models.backbone_rules_markdown()
    assert shown == table
