"""Every model config the installed Ultralytics ships, with SCSA: the neck rule for every head type, the backbone rule
for every layer with units, parameter counts, weight transfer, and a real forward pass per head type.

The walk builds on the meta device (no weight memory) at the smallest scale of each config (every scale with
``SCSA_YOLO_EVERY_SCALE=1``: about 15 minutes on 2 busy cores); one config per head type is built for real, takes a
stock checkpoint and runs on a tiny image.
"""

import os
from copy import deepcopy
from functools import cache
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
import yaml
from torch import nn
from ultralytics.nn.tasks import guess_model_scale, parse_model, yaml_model_load

from scsa_yolo import models, transfer
from scsa_yolo.nn import BLOCKS, SCSA
from scsa_yolo.nn.csp import UNIT_RULES, WRAPPERS

pytestmark = pytest.mark.usefixtures("torch_single_thread")

STOCK = list(models.stock_configs())
UNITS = tuple(UNIT_RULES)


def file_name(stock: str, scale: str, suffix: str = "") -> str:
    """The name Ultralytics resolves: the scale letter after the version, none for configs of one size."""
    return models.stock_names(stock, scale, suffix)[0]


def walked_scales(stock: str) -> list[str]:
    scales = models.scales_of(stock)
    return list(scales) if len(scales) > 1 and os.environ.get("SCSA_YOLO_EVERY_SCALE") == "1" else [scales[:1]]


WALK = [(stock, scale) for stock in STOCK for scale in walked_scales(stock)]


def needs_download(error: Exception) -> bool:
    """A stock config whose build fetches weights (``TorchVision`` rows) fails offline: that is not our failure."""
    return isinstance(error, (URLError, ConnectionError)) or "download" in str(error).lower()


def model_dict(name: str) -> dict:
    """What ``yaml_model_load`` returns, without its file search (a recursive glob per lookup, slow at this count):
    the stock config, or the derived text ``scsa_yolo.models`` writes for that name."""
    derived = models.parse_name(name)
    if derived is None:
        path = (
            models.stock_configs()[models.scale_free(Path(name).stem)]
            if models.scale_free(Path(name).stem) in models.stock_configs()
            else models.stock_configs()[Path(name).stem]
        )
        d = yaml.safe_load(path.read_text())
    else:
        d = yaml.safe_load(models.yaml_text(derived))
    return {**d, "scale": guess_model_scale(name), "yaml_file": name}


@cache
def build_on_meta(name: str) -> nn.Sequential:
    with torch.device("meta"):
        layers, _ = parse_model(deepcopy(model_dict(name)), ch=3, verbose=False)
    return layers.eval()


def plain_or_skip(name: str) -> nn.Sequential:
    try:
        return build_on_meta(name)
    except Exception as error:
        if needs_download(error):
            pytest.skip(f"{name}: the stock model downloads weights to build (offline here): {type(error).__name__}")
        raise


def parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def run_on_meta(layers: nn.Sequential, size: int) -> list:
    """Each layer's output for a meta image, all but the head, the way the task models' predict loops run them
    (text-guided layers get a meta guide; ImagePoolingAttn only updates the guide)."""
    x, outputs = torch.zeros(1, 3, size, size, device="meta"), []
    for layer in list(layers)[:-1]:
        if layer.f != -1:
            x = outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]
        kind = type(layer).__name__
        if kind == "C2fAttn":
            x = layer(x, torch.zeros(1, 4, layer.attn.gl.in_features, device="meta"))
        elif kind != "ImagePoolingAttn":
            x = layer(x)
        outputs.append(x)
    return outputs


def unit_width(unit: nn.Module) -> int:
    """The width the unit rule gives the block (read from the stock unit, independently of the rules' code)."""
    from ultralytics.nn.modules.block import CIB, AAttn, Bottleneck, ResNetBlock

    if isinstance(unit, Bottleneck):
        return unit.cv2.conv.in_channels
    if isinstance(unit, ResNetBlock):
        return unit.cv2.conv.out_channels
    if isinstance(unit, CIB):
        return unit.cv1[3].conv.in_channels  # the 1x1 projection's input: the expanded width
    assert isinstance(unit, AAttn)
    return unit.all_head_dim


def test_the_walk_covers_every_installed_config():
    from pathlib import Path

    import ultralytics

    shipped = {p.stem for p in (Path(ultralytics.__file__).parent / "cfg" / "models").rglob("*.yaml")}
    assert set(STOCK) == shipped and len(STOCK) >= 66
    heads = {models.head_of(stock) for stock in STOCK}
    assert {"Classify", "SemanticSegment", "Depth", "RTDETRDecoder", "v10Detect", "WorldDetect"} <= heads
    assert {"YOLOEDetect", "YOLOESegment", "Segment26", "Pose26", "OBB26", "Detect", "Segment"} <= heads
    tasks = {models.task_of(stock) for stock in STOCK}
    assert tasks == {"detect", "segment", "semantic", "depth", "classify", "pose", "obb"}


@pytest.mark.parametrize(("stock", "scale"), WALK, ids=[f"{s}-{c or 'fixed'}" for s, c in WALK])
def test_every_config_takes_scsa_by_both_rules(stock, scale):
    """Neck: one SCSA right after each layer the head reads, the stock sequence and wiring otherwise; backbone: SCSA
    in every unit of every host layer at the unit's width; stock + 16 C parameters per block; every stock tensor has
    its place; the model runs (meta image). One ``-scsa-both`` build checks both rules where the backbone has units
    that fit; otherwise ``-scsa``, and ``-scsa-backbone`` must fail naming why."""
    plain = plain_or_skip(file_name(stock, scale))
    hosts = models.backbone_hosts(stock)
    misfits = [(i, m) for i in hosts for m in plain[i].modules() if isinstance(m, UNITS) and unit_width(m) % 4]
    if not hosts:
        with pytest.raises(models.UnknownModel, match="has no C2f / C3k2 .* layer to place SCSA in"):
            build_on_meta(file_name(stock, scale, "-scsa-backbone"))
    elif misfits:  # SCSA splits its channels into 4 groups
        i, unit = misfits[0]
        message = rf"layer {i} \({type(plain[i]).__name__}_SCSA\): bottleneck '.*' has {unit_width(unit)} middle ch"
        with pytest.raises(ValueError, match=message):
            build_on_meta(file_name(stock, scale, "-scsa-backbone"))
    both = bool(hosts) and not misfits
    model = build_on_meta(file_name(stock, scale, "-scsa-both" if both else "-scsa"))

    blocks = [i for i, layer in enumerate(model) if isinstance(layer, SCSA)]  # the neck rule's layers
    head_inputs = plain[-1].f if isinstance(plain[-1].f, list) else [plain[-1].f]
    assert len(blocks) == len(head_inputs) and all(model[i].f == -1 for i in blocks)
    rest = [layer for layer in model if not isinstance(layer, SCSA)]
    assert [type(layer) for layer in rest] == [type(layer) for layer in plain]
    ours_of = {k: layer.i for k, layer in enumerate(rest)}  # stock index -> our index
    feeds = {k: i + (i + 1 in blocks) for k, i in ours_of.items()}  # stock index -> the map its consumers read
    for ours, theirs in zip(rest, plain):  # the head too: each input is the block after it
        sources = theirs.f if isinstance(theirs.f, list) else [theirs.f]
        read = ours.f if isinstance(ours.f, list) else [ours.f]
        assert [f < 0 for f in read] == [f < 0 for f in sources]  # relative stays relative
        absolute = [f if f >= 0 else ours.i + f for f in read]
        stock_sources = [f if f >= 0 else theirs.i + f for f in sources]  # -1 at layer 0: the image
        assert absolute == [feeds.get(f, f) for f in stock_sources], f"layer {ours.i}"
    assert sorted(feeds[f if f >= 0 else len(plain) - 1 + f] for f in head_inputs) == blocks

    for i in hosts if both else []:
        units = [m for m in plain[i].modules() if isinstance(m, UNITS)]
        attended = [m for m in model[ours_of[i]].modules() if isinstance(m, SCSA)]
        assert units and [b.dim for b in attended] == [unit_width(u) for u in units], f"layer {i}"
        assert any(isinstance(m, WRAPPERS) for m in model[ours_of[i]].modules())
    inside = sum(isinstance(m, SCSA) for k in ours_of.values() for m in model[k].modules())
    assert inside == (sum(isinstance(m, UNITS) for i in hosts for m in plain[i].modules()) if both else 0)

    outputs = run_on_meta(model, 64)
    assert [model[i].dim for i in blocks] == [outputs[i].shape[1] for i in blocks]  # block width = its input's
    assert parameters(model) == parameters(plain) + sum(16 * m.dim for m in model.modules() if isinstance(m, SCSA))
    mapping = transfer.match_layers(plain, model)
    assert all(mapping[i] == k for k, i in ours_of.items()) and all(mapping[i] is None for i in blocks)
    for k, i in ours_of.items():  # every stock tensor has a same-named, same-shaped place in its layer
        target = model[i].state_dict()
        assert all(n in target and target[n].shape == t.shape for n, t in plain[k].state_dict().items()), f"layer {k}"


def test_resnet50_with_scsa_is_the_papers_placement():
    """ResNet-50 + SCSA: 16 bottlenecks on mid widths 64/128/256/512, the block after the 3x3 conv and before the
    1x1 expansion, +16 x (3x64 + 4x128 + 6x256 + 3x512) = 60,416 parameters."""
    from ultralytics.nn.modules.block import ResNetBlock

    plain = build_on_meta("yolov8n-cls-resnet50.yaml")
    attended = build_on_meta("yolov8n-cls-resnet50-scsa-backbone.yaml")
    blocks = [m for m in attended.modules() if isinstance(m, ResNetBlock)]
    assert [b.cv3.attn.dim for b in blocks] == [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3
    assert all(b.cv3.attn.dim == b.cv2.conv.out_channels == b.cv3.conv.in_channels for b in blocks)
    assert parameters(attended) - parameters(plain) == 60_416 == 16 * (3 * 64 + 4 * 128 + 6 * 256 + 3 * 512)


def representatives() -> dict[str, str]:
    """One stock config per head type: the one with an 'n' scale and the fewest rows (the cheapest to build)."""
    chosen: dict[str, str] = {}
    for stock in STOCK:
        head = models.head_of(stock)
        key = ("n" not in models.scales_of(stock), len(yaml_model_load(models.stock_configs()[stock])["head"]))
        if head not in chosen or key < chosen[head][0]:
            chosen[head] = (key, stock)
    return {head: stock for head, (_, stock) in sorted(chosen.items())}


REAL = [*representatives().items(), ("ResNetLayer", "yolov8-cls-resnet50")]


def first_tensor(output):
    while isinstance(output, (list, tuple, dict)):
        output = next(iter(output.values())) if isinstance(output, dict) else output[0]
    return output


@pytest.mark.parametrize(("head", "stock"), REAL, ids=[h for h, _ in REAL])
def test_one_model_per_head_type_takes_a_stock_checkpoint_and_runs(head, stock, tmp_path):
    """Built for real through its entry class (RTDETR / YOLOWorld / YOLOE follow the name), a stock checkpoint
    transfers into every stock tensor, and the model runs on a 64-pixel image."""
    scale = models.scales_of(stock)[:1]
    suffix = "-scsa-both" if models.backbone_hosts(stock) else "-scsa"
    plain_name, name = file_name(stock, scale), file_name(stock, scale, suffix)
    entry = models.entry_class(name)
    torch.manual_seed(0)
    try:
        plain = entry(plain_name)
    except Exception as error:
        if needs_download(error):
            pytest.skip(f"{plain_name}: the stock model downloads weights to build (offline here)")
        raise
    checkpoint = tmp_path / "stock.pt"
    plain.save(checkpoint)
    model = entry(name)
    assert type(model) is type(plain) and type(model.model) is type(plain.model)
    model.load(str(checkpoint))
    source = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"].float().state_dict()
    target = model.model.state_dict()
    stock_index = [i for i, layer in enumerate(model.model.model) if not isinstance(layer, SCSA)]
    for key, tensor in source.items():
        _, index, rest = key.split(".", 2)
        assert torch.equal(target[f"model.{stock_index[int(index)]}.{rest}"].float(), tensor), key
    model.model.eval()
    with torch.no_grad():
        output = first_tensor(model.model(torch.rand(1, 3, 64, 64)))
    assert torch.isfinite(output).all()


COMPARED = [name for name in BLOCKS if name != "SCSA"]
UNIT_KINDS = ["yolo12n-cls", "yolov10s", "yolov8n-cls-resnet50", "yolov9t"]  # AAttn, CIB, ResNetBlock, RepBottleneck


@pytest.mark.parametrize("block", COMPARED)
def test_comparison_blocks_follow_the_same_rules(block):
    """Every other block lands exactly where SCSA does (same module paths), by both rules, on every unit kind."""
    for stem in UNIT_KINDS:
        scsa = build_on_meta(f"{stem}-scsa-both.yaml")
        other = build_on_meta(f"{stem}-{block.lower()}-both.yaml")
        where_scsa = [n for n, m in scsa.named_modules() if isinstance(m, SCSA)]
        assert [n for n, m in other.named_modules() if isinstance(m, BLOCKS[block])] == where_scsa, stem
