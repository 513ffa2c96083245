"""Model YAMLs derived from Ultralytics' own installed configs by two placement rules, instead of hand copies.

A name ``<stock stem>-<block>[-<placement>].yaml`` (``yolo26n-scsa.yaml``, ``yolo11s-seg-cbam.yaml``,
``yolov8n-cls-resnet50-scsa-backbone.yaml``, ``rtdetr-l-scsa.yaml``) means: take Ultralytics' config for the stock
stem (``yolo26.yaml``, ``yolo11-seg.yaml``, ``yolov8-cls-resnet50.yaml``; the scale letter is read from the name by
Ultralytics as usual) and place the block by one of these rules:

* ``neck`` (no suffix): one block right after each layer the head (the last row, whatever its type: Detect, Segment,
  Classify, SemanticSegment, Depth, RTDETRDecoder, v10Detect, WorldDetect, YOLOEDetect, ...) reads; every later
  ``from`` index is renumbered so that each consumer of such a layer, the head and the next neck stage alike, reads
  the block's output. Nothing else changes.
* ``backbone``: the block inside every unit of the backbone's host layers (C2f, C3k2, C3, C3k, C2fCIB, RepNCSPELAN4,
  A2C2f, ResNetLayer), before the unit's closing conv, as the SCSA paper places it inside ResNet bottlenecks (after
  the 3x3 conv, before the 1x1 expansion). The row is written ``<layer>_<Block>`` (``C2f_SCSA``); the layer stays
  Ultralytics' class, so every stock tensor keeps its name (see ``scsa_yolo.nn.csp`` for the rule per unit).
* ``both``: the two together.

The stock configs are found, not listed: every config under ``ultralytics/cfg/models`` (``stock_configs``). The
block names come from ``scsa_yolo.nn.BLOCKS``. ``model_yaml`` writes the derived YAML into a cache folder
(Ultralytics reads model YAMLs from files) and returns its path; ``integration`` calls it when Ultralytics' own
lookup finds no file of that name. The entry class follows the name as for stock configs: ``RTDETR`` for RT-DETR
names, and ``YOLO`` switches to ``YOLOWorld`` / ``YOLOE`` by itself for ``-world`` / ``yoloe`` names.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from ultralytics.utils import LOGGER

from scsa_yolo.nn import BLOCKS
from scsa_yolo.nn.csp import CSP_LAYERS, csp_row_name, hosts_units

FAMILIES: dict[str, str] = {"yolov8": "v8", "yolo11": "11", "yolo26": "26"}
"""The benchmark presets' families (stem prefix to folder); the rules apply to every config, not only these."""

PLACEMENTS = ("neck", "backbone", "both")
"""Placement rules; ``neck`` has no suffix in a model name, the others are the name's last part."""

_SCALE = re.compile(r"(\d+)([nslmx])(.+)?$")  # Ultralytics' own scale-letter pattern (tasks.yaml_model_load)


class UnknownModel(FileNotFoundError):
    """A model name that looks like a derived config but names no stock config, block or placement that exists."""


@dataclass(frozen=True)
class ModelName:
    """A derived model name taken apart.

    Attributes:
        stock (str): Stem of the Ultralytics config, scale-free where Ultralytics unifies it, e.g. 'yolo26-seg';
            configs of one scale keep their letter ('yolov10n', 'yolov9s').
        block (str): Block name as registered (a key of ``BLOCKS``), e.g. 'SCSA'.
        placement (str): One of ``PLACEMENTS``.
    """

    stock: str
    block: str
    placement: str = "neck"

    @property
    def stem(self) -> str:
        """The file stem, e.g. 'yolo26-seg-scsa-both'."""
        suffix = "" if self.placement == "neck" else f"-{self.placement}"
        return f"{self.stock}-{self.block.lower()}{suffix}"


def block_names() -> dict[str, str]:
    """Lower-case name as written in model names (``scsa``, ``cbam``) to the registered block name."""
    return {name.lower(): name for name in BLOCKS}


def _ultralytics_models_dir() -> Path:
    import ultralytics

    return Path(ultralytics.__file__).parent / "cfg" / "models"


@cache
def stock_configs() -> dict[str, Path]:
    """Stem to path of every model config the installed Ultralytics ships, by folder, then name.

    Returns:
        (dict[str, Path]): e.g. {'yolo11-cls': .../11/yolo11-cls.yaml, ..., 'yolov10n': .../v10/yolov10n.yaml}.
    """
    found = {}
    for path in sorted(_ultralytics_models_dir().rglob("*.yaml")):
        rows = _load(path).get("head") or []
        if rows and isinstance(rows[-1], list) and len(rows[-1]) == 4:
            found.setdefault(path.stem, path)
    return found


def head_of(stock: str) -> str:
    """The head module of a stock config (its last row), e.g. 'Segment26'."""
    return _load(stock_configs()[stock])["head"][-1][2]


def task_of(stock: str) -> str:
    """The task Ultralytics infers from a stock config's head, e.g. 'segment'.

    For heads it does not name (RT-DETR's decoder): the one task of the entry class's task map.
    """
    from ultralytics.nn.tasks import guess_model_task

    task = guess_model_task(_load(stock_configs()[stock]))
    if task is None:
        tasks = entry_class(stock).task_map.fget(None)  # RTDETR's map does not read the instance
        task = next(iter(tasks)) if len(tasks) == 1 else None
    return task


def scales_of(stock: str) -> str:
    """The scale letters a stock config defines ('' for configs of one fixed size such as yolov3)."""
    return "".join(_load(stock_configs()[stock]).get("scales") or {})


def stock_names(stock: str, scales: str, suffix: str = "") -> list[str]:
    """File names of a stock config (plus ``suffix``, e.g. '-scsa') at each of ``scales`` it defines.

    A config of one size (``yolov10n``, ``rtdetr-l``, ``yolov3``: at most one scale key) has its one name.
    """
    own = scales_of(stock)
    if len(own) <= 1:
        return [f"{stock}{suffix}.yaml"]
    return [scaled_name(f"{stock}{suffix}", s) for s in scales if s in own]


def backbone_hosts(stock: str) -> list[int]:
    """Indices of the backbone rows of a stock config whose layer has units the backbone rule fills."""
    rows = _load(stock_configs()[stock]).get("backbone") or []
    return [i for i, row in enumerate(rows) if isinstance(row[2], str) and hosts_units(row[2], row[3])]


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _listing() -> str:
    folders: dict[str, list[str]] = {}
    for stem, path in stock_configs().items():
        folders.setdefault(path.parent.name, []).append(stem)
    stocks = "; ".join(", ".join(stems) for stems in folders.values())
    return (
        f"stock configs: {stocks} (put the scale letter n/s/m/l/x after the version, e.g. yolo26n-seg); "
        f"blocks: {', '.join(block_names())}; placement suffixes: none (neck), "
        f"{', '.join(f'-{p}' for p in PLACEMENTS[1:])}. Example: yolo26n-seg-scsa.yaml"
    )


def scale_free(name: str) -> str:
    """The name without its scale letter, as Ultralytics unifies it ('yolo26n-seg-scsa' -> 'yolo26-seg-scsa')."""
    return _SCALE.sub(r"\1\3", str(name))


def scaled_name(stem: str, scale: str) -> str:
    """A file name at one scale: ('yolo26-seg-scsa', 's') -> 'yolo26s-seg-scsa.yaml' (the letter after the version).

    Stems of one fixed size (``rtdetr-l``, ``yolov10n``, ``yolov3``) take no letter: pass ``scale=''``.
    """
    return re.sub(r"^(yolo(?:e-)?v?\d+)", rf"\g<1>{scale}", stem) + ".yaml"


def _stock_of(part: str) -> str | None:
    """The stock config a name's stock part means: scale-free as Ultralytics unifies it, else as written."""
    configs = stock_configs()
    return next((stem for stem in (scale_free(part), part) if stem in configs), None)


def _families() -> set[str]:
    """First dash-separated part of every scale-free stock stem ('yolov8', 'yoloe', 'rtdetr', 'yolov10')."""
    return {scale_free(stem).split("-")[0] for stem in stock_configs()} | {
        stem.split("-")[0] for stem in stock_configs()
    }


def parse_name(name: str) -> ModelName | None:
    """Take a derived model name apart.

    Args:
        name (str): File name or stem, with or without scale letter (``yolo26n-seg-scsa.yaml``).

    Returns:
        (ModelName | None): The parts, or None when the name is not a derived-model name at all (it neither starts
            with a stock family nor ends with a block name), so that other lookups can have it.

    Raises:
        UnknownModel: If the name looks like a derived model but a part does not exist; the message lists what does.
    """
    stem = Path(str(name)).stem
    parts = stem.split("-")
    if len(parts) < 2 or _stock_of(stem):
        return None  # no room for a block name, or a stock config (Ultralytics' own lookup finds it)
    placement = parts.pop() if len(parts) > 2 and parts[-1] in PLACEMENTS[1:] else "neck"
    blocks = block_names()
    family = scale_free(parts[0]) in _families() or parts[0] in _families()
    if parts[-1] not in blocks:
        if not family and placement == "neck":
            return None
        hint = f" (block names are lower case: '{parts[-1].lower()}')" if parts[-1].lower() in blocks else ""
        raise UnknownModel(f"model '{name}': '{parts[-1]}' is not a block name{hint}. Available: {_listing()}")
    written = "-".join(parts[:-1])
    stock = _stock_of(written)
    if stock is None:
        why = "is not a config of the installed Ultralytics" if family else "is not an Ultralytics model family"
        raise UnknownModel(f"model '{name}': '{scale_free(written)}' {why}. Available: {_listing()}")
    return ModelName(stock, blocks[parts[-1]], placement)


def entry_class(name: str) -> type:
    """The Ultralytics class that builds ``name``, picked as Ultralytics' own CLI picks it.

    ``RTDETR`` for RT-DETR names, else ``YOLO`` (which switches to ``YOLOWorld`` / ``YOLOE`` for ``-world`` /
    ``yoloe`` names by itself).
    """
    import ultralytics

    return ultralytics.RTDETR if "rtdetr" in Path(str(name)).stem else ultralytics.YOLO


def derive(model: ModelName) -> dict:
    """Apply a placement rule to the stock config.

    Args:
        model (ModelName): What to derive.

    Returns:
        (dict): The model dict (the stock keys, with ``backbone`` and ``head`` rows placed and renumbered).

    Raises:
        UnknownModel: If the backbone rule finds no host layer to place the block in.
    """
    d = _load(stock_configs()[model.stock])
    if model.placement in ("neck", "both"):
        d["backbone"], d["head"] = _after_head_inputs(d["backbone"], d["head"], model.block)
    if model.placement in ("backbone", "both"):
        hosts = backbone_hosts(model.stock)
        for i in hosts:
            d["backbone"][i][2] = csp_row_name(d["backbone"][i][2], model.block)
        if not hosts:
            raise UnknownModel(
                f"the backbone of {model.stock} has no {' / '.join(CSP_LAYERS)} layer to place "
                f"{model.block} in; use the neck placement ({model.stock}-{model.block.lower()}.yaml)"
            )
    return d


def _after_head_inputs(backbone: list, head: list, block: str) -> tuple[list, list]:
    """Insert ``[-1, 1, block, []]`` after every layer the last row reads and renumber every ``from`` index."""
    rows = backbone + head
    sources = rows[-1][0] if isinstance(rows[-1][0], list) else [rows[-1][0]]  # Classify reads one map: -1
    inputs = {f if f >= 0 else len(rows) - 1 + f for f in sources}
    position, output = [], []  # new index of each old row, and of the map that replaces its output downstream
    for i in range(len(rows)):
        position.append(i + sum(j < i for j in inputs))
        output.append(position[i] + (i in inputs))

    def renumber(f: int, i: int) -> int:
        source = f if f >= 0 else i + f
        if source < 0:
            return f  # the first layer reads the image
        return output[source] if f >= 0 else output[source] - position[i]

    placed = [], []
    for i, (f, n, module, args) in enumerate(rows):
        section = placed[0] if i < len(backbone) else placed[1]
        f = [renumber(x, i) for x in f] if isinstance(f, list) else renumber(f, i)
        section.append([f, n, module, args])
        if i in inputs:
            section.append([-1, 1, block, []])
    return placed


@cache
def yaml_text(model: ModelName) -> str:
    """The derived config as YAML text, one row per line, with a header saying where it comes from."""
    import ultralytics

    d = derive(model)
    stock = stock_configs()[model.stock]
    header = [
        f"# {model.stem}.yaml: Ultralytics {ultralytics.__version__} {stock.parent.name}/{stock.name} with "
        f"{model.block} by scsa_yolo's '{model.placement}' placement rule (scsa_yolo/models.py).",
        "# Generated on demand; a file of this name in the working folder takes precedence over it.",
        "",
    ]
    lines = []
    for key, value in d.items():
        if key in ("backbone", "head"):
            lines.append(f"{key}:")
            lines += [f"  - {yaml.safe_dump(row, default_flow_style=True, width=10**6).strip()}" for row in value]
        else:
            nested = None if isinstance(value, (dict, list)) else False  # flow style for the innermost lists only
            lines.append(yaml.safe_dump({key: value}, default_flow_style=nested, sort_keys=False).rstrip())
    return "\n".join(header + lines) + "\n"


def cache_dir() -> Path:
    """Folder the derived YAMLs are written to: ``scsa_yolo/models`` in Ultralytics' user config folder."""
    from ultralytics.utils import USER_CONFIG_DIR

    return Path(USER_CONFIG_DIR) / "scsa_yolo" / "models"


def model_yaml(name: str) -> Path | None:
    """Return a file holding the derived config ``name`` (scale letter allowed), writing it if needed.

    Args:
        name (str): e.g. 'yolo26-scsa.yaml' or 'yolo11s-seg-cbam.yaml'.

    Returns:
        (Path | None): The YAML file (its stem is the scale-free name), or None when ``name`` is not a
            derived-model name at all.

    Raises:
        UnknownModel: If the name looks like a derived model but a part of it does not exist.
    """
    model = parse_name(name)
    if model is None:
        return None
    try:
        text = yaml_text(model)
    except UnknownModel as error:
        raise UnknownModel(f"model '{name}': {error}") from None
    try:
        return _written(cache_dir() / f"{model.stem}.yaml", text)
    except OSError as error:  # a read-only config folder (shared installs, containers): a private temp folder
        path = _written(_private_temp_dir() / f"{model.stem}.yaml", text)
        LOGGER.warning(f"scsa_yolo: cannot write derived model YAMLs to {cache_dir()} ({error}); using {path.parent}")
        return path


@cache
def _private_temp_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="scsa_yolo-models-"))


def _written(path: Path, text: str) -> Path:
    """Return ``path`` holding ``text``, written only when it differs."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # write-then-rename: DDP workers may resolve the same name at the same time
    temporary = tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8")
    try:
        with temporary:
            temporary.write(text)
        os.replace(temporary.name, path)
    except OSError:
        Path(temporary.name).unlink(missing_ok=True)  # a full disk must not leave a partial file behind
        raise
    return path


def head_rules_markdown() -> str:
    """The neck rule per head type of the installed Ultralytics, as the markdown table docs/models.md shows.

    Returns:
        (str): One row per head class: its task, how many maps it reads (one SCSA after each), and its configs.
    """
    heads: dict[str, list[str]] = {}
    for stock in stock_configs():
        heads.setdefault(head_of(stock), []).append(stock)
    lines = ["| head | task | SCSA after each of its inputs | configs |", "|---|---|---|---|"]
    for head, stocks in sorted(heads.items(), key=lambda item: (task_of(item[1][0]), item[0].lower())):
        counts = sorted(
            {len(f) if isinstance(f := _load(stock_configs()[s])["head"][-1][0], list) else 1 for s in stocks}
        )
        inputs = " or ".join(map(str, counts))
        lines.append(f"| {head} | {task_of(stocks[0])} | {inputs} | {', '.join(stocks)} |")
    return "\n".join(lines)


def backbone_rules_markdown() -> str:
    """Which installed configs have each host layer in their backbone (the backbone rule's reach), as markdown.

    Returns:
        (str): One row per host layer of ``scsa_yolo.nn.csp.CSP_LAYERS``, then one for configs with none.
    """
    by_layer: dict[str, list[str]] = {layer: [] for layer in CSP_LAYERS}
    without = []
    for stock in stock_configs():
        rows = _load(stock_configs()[stock]).get("backbone") or []
        layers = {rows[i][2] for i in backbone_hosts(stock)}
        for layer in layers:
            by_layer[layer].append(stock)
        if not layers:
            without.append(stock)
    lines = ["| backbone layer | configs |", "|---|---|"]
    lines += [f"| {layer} | {', '.join(stocks) or '(none in this release)'} |" for layer, stocks in by_layer.items()]
    lines.append(f"| none: `-backbone` / `-both` refused | {', '.join(without)} |")
    return "\n".join(lines)
