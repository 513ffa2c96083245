"""Model YAMLs derived from Ultralytics' own installed configs by two placement rules, instead of hand copies.

A name ``<stock stem>-<block>[-<placement>].yaml`` (``yolo26n-scsa.yaml``, ``yolo11s-seg-cbam.yaml``,
``yolov8m-p2-scsa-backbone.yaml``) means: take Ultralytics' config for the stock stem (``yolo26.yaml``,
``yolo11-seg.yaml``, ``yolov8-p2.yaml``, the scale letter is read from the name by Ultralytics as usual) and place
the block by one of these rules:

* ``neck`` (no suffix): one block right after each layer the head (Detect, Segment, Pose, OBB and their YOLO26
  variants) reads; every later ``from`` index is renumbered so that each consumer of such a layer, the head and the
  next neck stage alike, reads the block's output. Nothing else changes.
* ``backbone``: the block inside every bottleneck of the backbone's CSP layers (C2f, C3k2 and the C3k inside it),
  between the bottleneck's two convs, as the SCSA paper places it inside ResNet bottlenecks (after the 3x3 conv,
  before the 1x1 expansion). The row is written ``<CSP>_<Block>`` (``C2f_SCSA``); the layer stays Ultralytics'
  class, so every stock tensor keeps its name (see ``scsa_yolo.nn.csp``).
* ``both``: the two together.

The stock configs this applies to are found, not listed: every config of the families in ``FAMILIES`` whose last
row is a head in ``HEADS``. The block names come from ``scsa_yolo.nn.BLOCKS``. ``model_yaml`` writes the derived
YAML into a cache folder (Ultralytics reads model YAMLs from files) and returns its path; ``integration`` calls it
when Ultralytics' own lookup finds no file of that name.
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
from scsa_yolo.nn.csp import CSP_LAYERS, csp_row_name

FAMILIES: dict[str, str] = {"yolov8": "v8", "yolo11": "11", "yolo26": "26"}
"""Stem prefix of a model family to its folder under ``ultralytics/cfg/models``."""

HEADS: dict[str, str] = {
    "Detect": "detect",
    "Segment": "segment",
    "Segment26": "segment",
    "Pose": "pose",
    "Pose26": "pose",
    "OBB": "obb",
    "OBB26": "obb",
}
"""Head module name (last YAML row) to its task: the heads whose inputs the neck rule attends."""

PLACEMENTS = ("neck", "backbone", "both")
"""Placement rules; ``neck`` has no suffix in a model name, the others are the name's last part."""

_SCALE = re.compile(r"(\d+)([nslmx])(.+)?$")  # Ultralytics' own scale-letter pattern (tasks.yaml_model_load)


class UnknownModel(FileNotFoundError):
    """A model name that looks like a derived config but names no stock config, block or placement that exists."""


@dataclass(frozen=True)
class ModelName:
    """A derived model name taken apart.

    Attributes:
        stock (str): Scale-free stem of the Ultralytics config, e.g. 'yolo26-seg'.
        block (str): Block name as registered (a key of ``BLOCKS``), e.g. 'SCSA'.
        placement (str): One of ``PLACEMENTS``.
    """

    stock: str
    block: str
    placement: str = "neck"

    @property
    def stem(self) -> str:
        """The scale-free file stem, e.g. 'yolo26-seg-scsa-both'."""
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
    """Scale-free stem to path of every installed Ultralytics config the rules apply to, in family order.

    Returns:
        (dict[str, Path]): e.g. {'yolov8': .../v8/yolov8.yaml, 'yolov8-p2': ..., 'yolo26-obb': ...}.
    """
    found = {}
    for prefix, folder in FAMILIES.items():
        for path in sorted((_ultralytics_models_dir() / folder).glob(f"{prefix}*.yaml")):
            rows = _load(path).get("head") or []
            if rows and rows[-1][2] in HEADS:
                found[path.stem] = path
    return found


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _listing() -> str:
    families = {prefix: [s for s in stock_configs() if s.startswith(prefix)] for prefix in FAMILIES}
    stocks = "; ".join(", ".join(stems) for stems in families.values())
    return (
        f"stock configs: {stocks} (put the scale letter n/s/m/l/x after the version, e.g. yolo26n-seg); "
        f"blocks: {', '.join(block_names())}; placement suffixes: none (neck), "
        f"{', '.join(f'-{p}' for p in PLACEMENTS[1:])}. Example: yolo26n-seg-scsa.yaml"
    )


def scale_free(name: str) -> str:
    """The name without its scale letter, as Ultralytics unifies it ('yolo26n-seg-scsa' -> 'yolo26-seg-scsa')."""
    return _SCALE.sub(r"\1\3", str(name))


def scaled_name(stem: str, scale: str) -> str:
    """A file name at one scale: ('yolo26-seg-scsa', 's') -> 'yolo26s-seg-scsa.yaml' (the letter after the version)."""
    return re.sub(r"^(yolov?\d+)", rf"\g<1>{scale}", stem) + ".yaml"


def parse_name(name: str) -> ModelName | None:
    """Take a derived model name apart.

    Args:
        name (str): File name or stem, with or without scale letter (``yolo26n-seg-scsa.yaml``).

    Returns:
        (ModelName | None): The parts, or None when the name is not a derived-model name at all (it neither starts
            with a family prefix nor ends with a block name), so that other lookups can have it.

    Raises:
        UnknownModel: If the name looks like a derived model but a part does not exist; the message lists what does.
    """
    stem = scale_free(Path(str(name)).stem)
    parts = stem.split("-")
    if len(parts) < 2 or any((_ultralytics_models_dir() / f / f"{stem}.yaml").is_file() for f in FAMILIES.values()):
        return None  # no room for a block name, or a stock config (Ultralytics' own lookup finds it)
    placement = parts.pop() if len(parts) > 2 and parts[-1] in PLACEMENTS[1:] else "neck"
    blocks = block_names()
    family = next((prefix for prefix in FAMILIES if re.fullmatch(rf"{prefix}(-.*)?", stem)), None)
    if parts[-1] not in blocks:
        if family is None and placement == "neck":
            return None
        hint = f" (block names are lower case: '{parts[-1].lower()}')" if parts[-1].lower() in blocks else ""
        raise UnknownModel(f"model '{name}': '{parts[-1]}' is not a block name{hint}. Available: {_listing()}")
    stock = "-".join(parts[:-1])
    if stock not in stock_configs():
        if family is None:
            why = "is not a config of the supported families"
        elif (_ultralytics_models_dir() / FAMILIES[family] / f"{stock}.yaml").is_file():
            head = _load(_ultralytics_models_dir() / FAMILIES[family] / f"{stock}.yaml")["head"][-1][2]
            why = f"has a {head} head; the rules apply to the tasks {', '.join(sorted(set(HEADS.values())))}"
        else:
            why = "is not an Ultralytics config (unknown task or variant)"
        raise UnknownModel(f"model '{name}': '{stock}' {why}. Available: {_listing()}")
    return ModelName(stock, blocks[parts[-1]], placement)


def derive(model: ModelName) -> dict:
    """Apply a placement rule to the stock config.

    Args:
        model (ModelName): What to derive.

    Returns:
        (dict): The model dict (the stock keys, with ``backbone`` and ``head`` rows placed and renumbered).

    Raises:
        UnknownModel: If the backbone rule finds no CSP layer to place the block in.
    """
    d = _load(stock_configs()[model.stock])
    if model.placement in ("neck", "both"):
        d["backbone"], d["head"] = _after_head_inputs(d["backbone"], d["head"], model.block)
    if model.placement in ("backbone", "both"):
        renamed = 0
        for row in d["backbone"]:
            if row[2] in CSP_LAYERS:
                row[2], renamed = csp_row_name(row[2], model.block), renamed + 1
        if not renamed:
            raise UnknownModel(
                f"the backbone of {model.stock} has no {' / '.join(CSP_LAYERS)} layer to place "
                f"{model.block} in; use the neck placement ({model.stock}-{model.block.lower()}.yaml)"
            )
    return d


def _after_head_inputs(backbone: list, head: list, block: str) -> tuple[list, list]:
    """Insert ``[-1, 1, block, []]`` after every layer the last row reads and renumber every ``from`` index."""
    rows = backbone + head
    inputs = {f if f >= 0 else len(rows) - 1 + f for f in rows[-1][0]}
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
