"""Weight transfer between YOLO models that differ by inserted attention layers.

Ultralytics transfers pre-trained weights by state_dict key and shape (``model.<index>.<name>``). Inserting an SCSA
layer shifts the index of every later layer, so a plain ``yolov8n.pt`` loaded into ``yolov8n-scsa.yaml`` loses every
tensor after the first insertion, the Detect head included, and a later tensor may land in an unrelated layer that
happens to have the same key and shape.

``align_source`` fixes the indices before Ultralytics' own transfer runs: it walks both layer lists in order, pairs
layers of the same class, and gives the source an ``nn.Identity`` wherever the target has an attention block the
source lacks (and drops attention blocks the target lacks), so keys line up again and Ultralytics' Detect-head and
class-name handling still apply. Blocks inside a layer's bottlenecks (``scsa_yolo.nn.csp``) add keys without
renaming any, so they need no re-indexing; their tensors keep their initialisation like any new attention layer.
"""

from __future__ import annotations

import re
from copy import deepcopy
from dataclasses import dataclass, field

from torch import nn

from scsa_yolo.nn import BLOCKS

ATTENTION_TYPES = tuple(BLOCKS.values())


class LayerMismatch(ValueError):
    """The two models differ by more than attention layers, so no index mapping exists."""


@dataclass
class TransferReport:
    """What a transfer moved: counts of target tensors by outcome, and the names of those that received nothing.

    Attributes:
        transferred (int): Target tensors that received a source tensor.
        kept_init (list[str]): Tensors of attention layers new to the target (they keep their initialisation).
        new_classes (list[str]): Class-output tensors whose class count differs from the source's (fine-tuning to
            new classes re-initialises them; Ultralytics maps rows of classes with the same name).
        missing (list[str]): Other target tensors with no same-named, same-shaped source tensor.
    """

    transferred: int = 0
    kept_init: list[str] = field(default_factory=list)
    new_classes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def same_kind(a: nn.Module, b: nn.Module) -> bool:
    """Whether two layers are of the same class, by name (checkpoints may come from another Ultralytics release)."""
    return type(a).__name__ == type(b).__name__


def match_layers(source: nn.Sequential, target: nn.Sequential) -> list[int | None]:
    """Pair every target layer with its source layer, allowing attention layers on either side to have none.

    Args:
        source (nn.Sequential): The source model's layer list (``DetectionModel.model``).
        target (nn.Sequential): The target model's layer list.

    Returns:
        (list[int | None]): For each target layer, the index of its source layer, or None for an attention layer
            the source does not have.

    Raises:
        LayerMismatch: If the models differ in any other layer (the message names the first difference).
    """
    mapping: list[int | None] = []
    j = 0
    for i, layer in enumerate(target):
        while j < len(source) and not same_kind(source[j], layer) and isinstance(source[j], ATTENTION_TYPES):
            j += 1  # an attention layer only the source has: its weights have nowhere to go
        if j < len(source) and same_kind(source[j], layer):
            mapping.append(j)
            j += 1
        elif isinstance(layer, ATTENTION_TYPES):
            mapping.append(None)
        else:
            found = type(source[j]).__name__ if j < len(source) else "the end of the source model"
            raise LayerMismatch(f"target layer {i} ({type(layer).__name__}) meets source layer {j} ({found})")
    if any(not isinstance(layer, ATTENTION_TYPES) for layer in list(source)[j:]):
        raise LayerMismatch(f"the source has {len(source) - j} layers after the target's last layer")
    return mapping


def align_source(source: nn.Module, target: nn.Module) -> nn.Module:
    """Return ``source`` with its layers re-indexed like ``target``'s, or ``source`` itself when they already are.

    Args:
        source (nn.Module): A YOLO model (with a ``model`` nn.Sequential), e.g. the one inside ``yolov8n.pt``.
        target (nn.Module): The YOLO model that receives the weights.

    Returns:
        (nn.Module): A copy of ``source`` whose ``model`` has the same length and order as ``target.model``, with
            ``nn.Identity`` where only the target has a layer.

    Raises:
        LayerMismatch: If the models differ by more than attention layers.
    """
    mapping = match_layers(source.model, target.model)
    if mapping == list(range(len(source.model))):
        return source
    aligned = deepcopy(source)
    aligned.model = nn.Sequential(*(nn.Identity() if j is None else aligned.model[j] for j in mapping))
    return aligned


def describe_transfer(source_state: dict, target: nn.Module) -> TransferReport:
    """Classify every target tensor by whether ``source_state`` (already aligned) has a same-named, same-shaped one.

    Args:
        source_state (dict): The aligned source model's state_dict.
        target (nn.Module): The receiving model.

    Returns:
        (TransferReport): Counts and names.
    """
    report = TransferReport()
    # Detect's class outputs: the last conv of each cv3 branch, sized by the number of classes
    class_output = re.compile(rf"model\.{len(target.model) - 1}\.(one2one_)?cv3\.\d+\.2\.(weight|bias)")
    attention_prefixes = tuple(  # attention layers, and blocks inside other layers (the backbone placement)
        f"{name}." for name, module in target.named_modules() if isinstance(module, ATTENTION_TYPES)
    )
    for name, tensor in target.state_dict().items():
        if name in source_state and source_state[name].shape == tensor.shape:
            report.transferred += 1
        elif name.startswith(attention_prefixes):
            report.kept_init.append(name)
        elif class_output.fullmatch(name) and name in source_state and source_state[name].shape[1:] == tensor.shape[1:]:
            report.new_classes.append(name)
        else:
            report.missing.append(name)
    return report


def freeze_indices(model: nn.Module, stock_layers: int | list[int], attention: bool = False) -> list[int]:
    """Layer indices for Ultralytics' ``freeze=`` that mean the *stock* model's layers in a model with inserted blocks.

    ``freeze=`` takes layer indices (an int n means layers 0..n-1) and freezes every parameter named ``model.<i>.*``.
    The neck rule inserts layers, so every index after the first insertion moves: ``freeze=22`` on yolov8n-scsa
    freezes two SCSA blocks and leaves stock layers 19-21 (now 22-24) trainable. This maps stock indices to this
    model's. Blocks inside a layer's units (the backbone rule) insert no layer: they are frozen with their layer.

    Args:
        model (nn.Module): The model (a ``YOLO`` object, its ``.model``, or a layer list).
        stock_layers (int | list[int]): Stock layer indices, or n for the stock's first n layers.
        attention (bool): Also freeze the inserted blocks that sit right after a frozen stock layer (default: leave
            them trainable, the usual choice when fine-tuning new blocks on frozen stock weights).

    Returns:
        (list[int]): Indices to pass as ``freeze=`` to ``train``.
    """
    layers = model
    while not isinstance(layers, nn.Sequential):  # YOLO -> DetectionModel -> its layer list
        layers = layers.model
    wanted = set(range(stock_layers)) if isinstance(stock_layers, int) else set(stock_layers)
    indices, stock, previous_frozen = [], 0, False
    for i, layer in enumerate(layers):
        if isinstance(layer, ATTENTION_TYPES):
            if attention and previous_frozen:
                indices.append(i)
            continue
        previous_frozen = stock in wanted
        if previous_frozen:
            indices.append(i)
        stock += 1
    return indices
