"""Registration of the scsa_yolo blocks with Ultralytics: the one module that touches Ultralytics internals.

Ultralytics has no plug-in registry: ``parse_model`` (ultralytics/nn/tasks.py) resolves a YAML module name with
``globals()[name]`` in its own module, resolves string arguments through its own ``locals()``, and only infers input
channels for its built-in blocks. ``register()`` therefore

1. puts, for each block name, a small adapter class into ``ultralytics.nn.tasks``;
2. wraps ``parse_model`` so a row ``[f, n, Name, [args...]]`` reaches the adapter as ``("ch", f, i, *args)``:
   parse_model turns the string ``"ch"`` into its live list of output channels, and the adapter builds the real
   block with ``c1 = ch[f]`` (so every scale n/s/m/l/x gets the producing layer's width);
3. wraps ``check_yaml`` as ``parse_model``'s module sees it, so a bare name such as ``yolo26n-seg-scsa.yaml`` that is
   neither a local file nor an Ultralytics config is derived from Ultralytics' own config (``scsa_yolo.models``);
   rows ``<CSP layer>_<Block>`` (``C2f_SCSA``) build the stock layer and then put the block into its bottlenecks
   (``scsa_yolo.nn.csp``);
4. adds a callback to Ultralytics' default callbacks, so that processes which unpickle a trainer (DDP workers)
   import this package, and with it this registration, before they build the model;
5. wraps ``BaseModel.load`` (used by ``YOLO(yaml).load(pt)`` and ``pretrained=pt``) so that the source layers are
   re-indexed around inserted attention layers first (``scsa_yolo.transfer``), and the log says what moved;
6. adds the block classes to torch's safe globals, so checkpoints holding them also load under Ultralytics'
   restricted loading (``ULTRALYTICS_SAFE_LOAD=1``, ``weights_only=True``); with that flag set, also the timm
   classes inside the timm-based blocks;
7. where the release's Muon step (``MuSGD``, the optimizer YOLO26 trains with by default) rejects 3-D weights (8.4.0
   does), lets it update the blocks' Conv1d weights as (C, 1, 1, k) conv filters (found by a probe, not a version).

It relies on these internals. ``check_ultralytics()`` is the one check in front of them: the version must lie in
``SUPPORTED_ULTRALYTICS`` (the range the compatibility suite tests, ``.ci/compat``), and the internals must be
there. Where a feature comes and goes between the supported releases it is detected, not read from the version:
restricted loading (``ultralytics.utils.SAFE_LOAD``, absent before mid-2026) and torch's safe-globals list
(``torch.serialization.add_safe_globals``). Ultralytics is imported only after that check, and an unsupported
version gets one line naming it and the supported range (:class:`UnsupportedUltralytics`).
"""

from __future__ import annotations

import importlib
import inspect
import re
import threading
import typing
from collections.abc import Sequence
from copy import deepcopy
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from scsa_yolo.errors import UsageError
from scsa_yolo.nn import BLOCKS

if TYPE_CHECKING:
    from scsa_yolo import transfer

SUPPORTED_ULTRALYTICS = ">=8.2.103,<8.5"
"""Ultralytics versions the registration accepts: the range the compatibility suite tests (8.2.103, 8.3.0, 8.3.253,
8.4.0 and the pinned newest 8.4.x); pyproject.toml declares the same range."""

FAMILY_RELEASES: dict[str, str] = {"yolov8": "8.0.0", "yolo11": "8.3.0", "yolo26": "8.4.0"}
"""Model family (stem prefix) to the first Ultralytics release that ships its configs, for messages only: whether a
family is available is read from the installed configs."""

_CHANNELS_LOCAL = "ch"  # the name of parse_model's running list of layer output channels
_lock = threading.RLock()  # re-entered when check_ultralytics' import of tasks runs the import hook
_registered = False


class UnsupportedUltralytics(UsageError, ImportError):
    """The installed Ultralytics is outside the supported range or lacks an internal the registration relies on."""


UltralyticsInternalsChanged = UnsupportedUltralytics  # the earlier name


def _unsupported(what: str) -> UnsupportedUltralytics:
    import ultralytics

    return UnsupportedUltralytics(
        f"scsa_yolo cannot register its blocks with ultralytics {ultralytics.__version__}: {what}; "
        f"scsa_yolo supports ultralytics{SUPPORTED_ULTRALYTICS}: pip install 'ultralytics{SUPPORTED_ULTRALYTICS}'"
    )


def version_supported(version: str) -> bool:
    """Whether an Ultralytics version string lies in :data:`SUPPORTED_ULTRALYTICS` (pre-releases count as releases)."""
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(SUPPORTED_ULTRALYTICS).contains(version, prereleases=True)


def parse_model_features(parse_model) -> list[str]:
    """What the registration needs from ``parse_model`` and is missing from it (empty when it has all).

    Args:
        parse_model (Callable): Ultralytics' (unwrapped) ``parse_model``.

    Returns:
        (list[str]): One phrase per missing feature.
    """
    missing = []
    parameters = list(inspect.signature(parse_model).parameters)
    if parameters[:2] != ["d", "ch"]:
        missing.append(f"parse_model's signature changed to {parameters}")
    code = getattr(parse_model, "__code__", None)
    if code is None or _CHANNELS_LOCAL not in code.co_varnames:
        missing.append(f"parse_model has no local '{_CHANNELS_LOCAL}' (its list of layer output channels)")
    elif "locals" not in code.co_names:
        missing.append("parse_model no longer resolves string arguments through its locals()")
    return missing


def check_ultralytics() -> None:
    """Verify that the installed Ultralytics is in the supported range and has the internals ``register()`` uses.

    Raises:
        UnsupportedUltralytics: If the version is outside ``SUPPORTED_ULTRALYTICS`` or an internal moved.
    """
    import ultralytics

    if not version_supported(ultralytics.__version__):
        raise _unsupported("this version is outside the supported range")
    try:
        from ultralytics.nn import tasks
        from ultralytics.utils.callbacks import base
    except ImportError as error:
        raise _unsupported(f"{error}") from None
    if not callable(getattr(tasks, "parse_model", None)):
        raise _unsupported("ultralytics.nn.tasks.parse_model is gone")
    if missing := parse_model_features(_original(tasks.parse_model)):
        raise _unsupported("; ".join(missing))
    if not callable(getattr(tasks, "check_yaml", None)):
        raise _unsupported("ultralytics.nn.tasks no longer imports check_yaml")
    if not callable(getattr(getattr(tasks, "BaseModel", None), "load", None)):
        raise _unsupported("ultralytics.nn.tasks.BaseModel.load is gone")
    if "on_pretrain_routine_start" not in base.default_callbacks:
        raise _unsupported("the 'on_pretrain_routine_start' default callback is gone")


def restricted_loading() -> bool | None:
    """Ultralytics' restricted checkpoint loading (``ULTRALYTICS_SAFE_LOAD=1``): None where the version has none.

    Returns:
        (bool | None): None when ``ultralytics.utils.SAFE_LOAD`` does not exist, else its value.
    """
    import ultralytics.utils

    flag = getattr(ultralytics.utils, "SAFE_LOAD", None)
    return None if flag is None else bool(flag)


def safe_globals_supported() -> bool:
    """Whether torch keeps an allow-list for ``weights_only`` loading (``torch.serialization.add_safe_globals``)."""
    return callable(getattr(torch.serialization, "add_safe_globals", None))


def _original(function):
    """Return the function a scsa_yolo wrapper wraps (or the function itself)."""
    return getattr(function, "__scsa_yolo_wrapped__", function)


def _check_arguments(name: str, block: type[nn.Module], where: str, args: tuple) -> None:
    """Reject YAML arguments the block's signature does not take, naming the parameters it does take.

    Ultralytics passes a row's arguments positionally and leaves strings it cannot evaluate as strings, so a wrong
    one would otherwise fail deep inside the block (``'<=' not supported between instances of 'str' and 'int'``).
    """
    parameters = list(inspect.signature(block).parameters.values())[1:]  # after c1
    accepted = ", ".join(p.name for p in parameters)
    if len(args) > len(parameters):
        raise ValueError(f"{where}: {name} takes at most {len(parameters)} arguments ({accepted}), got {list(args)}")
    try:
        hints = typing.get_type_hints(block.__init__)
    except TypeError:  # ``int | None`` under Python < 3.10: leave the types to the block
        hints = {}
    for parameter, value in zip(parameters, args):
        expected = hints.get(parameter.name)
        origin = typing.get_origin(expected) or expected
        if expected is float:
            fits = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif expected is int:
            fits = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(origin, type) and issubclass(origin, (str, bool)):
            fits = isinstance(value, origin)
        elif origin in (Sequence, list, tuple):
            fits = isinstance(value, (list, tuple))
        else:
            continue
        if not fits:
            raise ValueError(
                f"{where}: {name} argument {parameter.name} expects {getattr(expected, '__name__', expected)}, "
                f"got {value!r} ({type(value).__name__}); {name} takes [{accepted}] in that order"
            )


def _yaml_adapter(name: str, block: type[nn.Module]) -> type[nn.Module]:
    """Make the class parse_model finds under ``name``: it builds ``block`` with ``c1`` read from the channel list.

    It subclasses nn.Module because Ultralytics' restricted loading only accepts module classes in parse_model, and
    its ``__new__`` returns a ``block`` instance, so no adapter object ever exists in a model or a checkpoint.
    """

    def __new__(cls, channels: list, f: int, i: int, *args) -> nn.Module:
        if not isinstance(channels, list) or not isinstance(channels[f], int):  # CBLinear's entry is a list
            raise _unsupported(f"parse_model resolved '{_CHANNELS_LOCAL}' to {type(channels).__name__}")
        where = f"model YAML layer {i} ({name}, from={f}, args={list(args)})"
        _check_arguments(name, block, where, args)
        try:
            return block(channels[f], *args)
        except (IndexError, TypeError, ValueError) as error:
            raise ValueError(f"{where}: {error}") from error

    return type(name, (nn.Module,), {"__new__": __new__, "__module__": __name__, "__doc__": block.__doc__})


def _rows(d: dict) -> list:
    return [*d.get("backbone", []), *d.get("head", [])]


def _check_row(i: int, row) -> None:
    """A row must be ``[from, repeats, module, args]`` with a list of args; say so with the row, not an unpack error."""
    if not isinstance(row, list) or len(row) != 4:
        raise ValueError(
            f"model YAML layer {i}: {row!r} is not a row [from, repeats, module, args] "
            "(four fields; a block without arguments is written [-1, 1, SCSA, []])"
        )
    if not isinstance(row[3], list):
        raise ValueError(
            f"model YAML layer {i} ({row[2]}): args must be a list of positional values, got {row[3]!r} "
            f"({type(row[3]).__name__}); e.g. [-1, 1, SCSA, [1, 7]] for head_num=1, window_size=7"
        )


def _wrap_parse_model(parse_model):
    def parse_model_with_blocks(d: dict, ch, verbose: bool = True):
        # imported when a model is parsed: at registration scsa_yolo.nn.csp may still be importing Ultralytics
        from scsa_yolo.nn.csp import attend_bottlenecks, split_csp_row_name

        names = {i: row[2] for i, row in enumerate(_rows(d)) if isinstance(row, list) and len(row) > 2}
        names = {i: name for i, name in names.items() if isinstance(name, str)}
        block_rows = [i for i, name in names.items() if name in BLOCKS]
        csp_rows = {i: parts for i, name in names.items() if (parts := split_csp_row_name(name, BLOCKS))}
        for i in [*block_rows, *csp_rows]:
            _check_row(i, _rows(d)[i])
        if block_rows or csp_rows:
            d = deepcopy(d)  # the rows are rewritten below; model.yaml, which checkpoints save, must stay as written
            for i in block_rows:
                row = _rows(d)[i]
                f, _, module, args = row
                if not isinstance(f, int):
                    raise ValueError(f"model YAML layer {i} ({module}): takes one layer's output, got from={f}")
                row[3] = [_CHANNELS_LOCAL, f, i, *args]
            for i, (layer, _) in csp_rows.items():
                _rows(d)[i][2] = layer  # built as the stock layer, so Ultralytics' channel and depth rules apply
        layers, save = parse_model(d, ch, verbose)
        for i, (layer, block) in csp_rows.items():
            try:
                attend_bottlenecks(layers[i], BLOCKS[block])
            except ValueError as error:
                raise ValueError(f"model YAML layer {i} ({layer}_{block}): {error}") from error
            layers[i].np = sum(p.numel() for p in layers[i].parameters())
        return layers, save

    parse_model_with_blocks.__scsa_yolo_wrapped__ = parse_model
    parse_model_with_blocks.__doc__ = parse_model.__doc__
    return parse_model_with_blocks


def _missing_family(name: str) -> str | None:
    """For a derived name of a family the installed Ultralytics does not ship, the message that says so."""
    import ultralytics

    from scsa_yolo import models

    stem = Path(name).stem
    for prefix, release in FAMILY_RELEASES.items():
        if re.match(rf"{prefix}[nslmx]?(-|$)", stem) and not any(s.startswith(prefix) for s in models.stock_configs()):
            return (
                f"model '{name}': the {prefix} family arrived in ultralytics {release}, and the installed "
                f"ultralytics {ultralytics.__version__} does not ship it; pip install 'ultralytics>={release}"
                f",{SUPPORTED_ULTRALYTICS.split(',')[1]}' or use a family it has ({', '.join(_families())})"
            )
    return None


def _families() -> list[str]:
    from scsa_yolo import models

    return [prefix for prefix in FAMILY_RELEASES if any(s.startswith(prefix) for s in models.stock_configs())]


def _wrap_check_yaml(check_yaml):
    def check_yaml_with_derived_models(file, suffix=(".yaml", ".yml"), hard=True):
        # imported at lookup time: at registration scsa_yolo.nn.csp (which models reads) may still be importing
        from scsa_yolo import models

        found = check_yaml(file, suffix=suffix, hard=False)
        if found:
            return found
        # Ultralytics looks up the scaled name softly, then the scale-free one (local files, its own configs). A local
        # file of the scale-free name wins over a derived one; otherwise derive on the first lookup, so that an error
        # quotes the name as typed, scale letter included.
        name = str(file)
        if Path(name).name == name and (hard or not check_yaml(models.scale_free(name), suffix=suffix, hard=False)):
            try:
                derived = models.model_yaml(name)
            except models.UnknownModel as error:
                raise models.UnknownModel(_missing_family(name) or str(error)) from None
            if derived:
                return str(derived)
        return check_yaml(file, suffix=suffix, hard=hard)

    check_yaml_with_derived_models.__scsa_yolo_wrapped__ = check_yaml
    return check_yaml_with_derived_models


def _wrap_load(load):
    from ultralytics.utils import LOGGER

    from scsa_yolo import transfer

    def load_with_layer_alignment(self, weights, verbose=True):
        source = (weights.get("ema") or weights["model"]) if isinstance(weights, dict) else weights
        if not isinstance(getattr(source, "model", None), nn.Sequential) or not isinstance(self.model, nn.Sequential):
            return load(self, weights, verbose)
        try:
            aligned = transfer.align_source(source, self)
        except transfer.LayerMismatch as error:
            LOGGER.warning(
                f"scsa_yolo: pre-trained weights are not this architecture ({error}); "
                "falling back to Ultralytics' transfer by key and shape, which may load little."
            )
            return load(self, weights, verbose)
        result = load(self, aligned, verbose)
        if verbose:
            _log_transfer(transfer.describe_transfer(aligned.float().state_dict(), self), source)
        return result

    load_with_layer_alignment.__scsa_yolo_wrapped__ = load
    load_with_layer_alignment.__doc__ = load.__doc__
    return load_with_layer_alignment


def _log_transfer(report: transfer.TransferReport, source: nn.Module) -> None:
    from ultralytics.utils import LOGGER

    total = report.transferred + len(report.kept_init) + len(report.new_classes) + len(report.missing)
    LOGGER.info(
        f"scsa_yolo: transferred {report.transferred}/{total} tensors after re-indexing layers; "
        f"{len(report.kept_init)} tensors of attention layers new to this model keep their initialisation; "
        f"{len(report.new_classes)} class-output tensors are sized for this model's classes"
    )
    if report.missing:
        scale = getattr(source, "yaml", {}).get("scale", "?")
        LOGGER.warning(
            f"scsa_yolo: {len(report.missing)} tensors received no pre-trained weights although their layers have "
            f"a counterpart (e.g. {', '.join(report.missing[:3])}); the weights come from a different scale "
            f"(source scale '{scale}') or architecture."
        )


def _library_classes_inside_blocks() -> list[type]:
    """Classes from other libraries (timm) inside the blocks, found by building each block once at a small width.

    Restricted loading (``ULTRALYTICS_SAFE_LOAD=1``) refuses every class not allow-listed, and Ultralytics' message
    then names no type; the timm-based blocks pickle timm's layers, so those are allow-listed too. Blocks whose
    library is not installed are skipped: their checkpoints cannot load without it anyway.
    """
    found = set()
    for block in BLOCKS.values():
        try:
            built = block(64)
        except ImportError:
            continue
        found |= {type(m) for m in built.modules() if not type(m).__module__.startswith(("torch.", "scsa_yolo."))}
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def _muon_update_rejects_3d(muon_update) -> bool:
    """Whether this release's Muon step (``MuSGD``, YOLO26's default optimizer) fails on a 3-D weight.

    Ultralytics 8.4.0 orthogonalises 2-D and 4-D (conv) updates only and asserts on anything else; SCSA's and ECA's
    Conv1d weights are 3-D. Probed on a 2x1x3 zero tensor, not read from the version.
    """
    probe = torch.zeros(2, 1, 3)
    try:
        muon_update(probe, torch.zeros_like(probe))
    except AssertionError:
        return True
    except Exception:  # another signature or failure: not the case handled here
        return False
    return False


def _wrap_muon_update(muon_update):
    def muon_update_any_rank(grad, momentum, *args, **kwargs):
        if grad.ndim == 3:  # (C, 1, k) -> (C, 1, 1, k): the release's conv branch flattens it to (C, k); views only,
            grad, momentum = grad.unsqueeze(2), momentum.unsqueeze(2)  # so the momentum buffer is updated in place
        return muon_update(grad, momentum, *args, **kwargs)

    muon_update_any_rank.__scsa_yolo_wrapped__ = muon_update
    muon_update_any_rank.__doc__ = muon_update.__doc__
    return muon_update_any_rank


def _patch_muon() -> None:
    """Let the Muon step of releases that handle only 2-D and 4-D weights update the blocks' 3-D Conv1d weights."""
    try:
        from ultralytics.optim import muon
    except ImportError:  # a release without MuSGD
        return
    update = getattr(muon, "muon_update", None)
    if callable(update) and not hasattr(update, "__scsa_yolo_wrapped__") and _muon_update_rejects_3d(update):
        muon.muon_update = _wrap_muon_update(update)


def ensure_registered(*_) -> None:
    """Callback that only exists to be pickled by reference: unpickling it imports ``scsa_yolo``, which registers."""


def register() -> None:
    """Make every block in ``scsa_yolo.nn.BLOCKS`` usable in Ultralytics model YAMLs; safe to call repeatedly.

    Raises:
        UnsupportedUltralytics: If the installed Ultralytics is outside the supported range or lacks an internal.
    """
    global _registered
    with _lock:
        if _registered:
            return
        check_ultralytics()
        if _registered:  # importing Ultralytics above ran the import hook (scsa_yolo.hook), which registered
            return
        from ultralytics.nn import tasks
        from ultralytics.utils.callbacks import base

        # The bottleneck wrappers allow themselves in torch's restricted loader when their module has run (it may be
        # the module whose Ultralytics import triggered this registration, so it is not read from here).
        importlib.import_module("scsa_yolo.nn.csp")

        for name, block in BLOCKS.items():
            setattr(tasks, name, _yaml_adapter(name, block))
        if not hasattr(tasks.parse_model, "__scsa_yolo_wrapped__"):
            tasks.parse_model = _wrap_parse_model(tasks.parse_model)
        if not hasattr(tasks.check_yaml, "__scsa_yolo_wrapped__"):
            tasks.check_yaml = _wrap_check_yaml(tasks.check_yaml)
        if not hasattr(tasks.BaseModel.load, "__scsa_yolo_wrapped__"):
            tasks.BaseModel.load = _wrap_load(tasks.BaseModel.load)
        if safe_globals_supported():
            torch.serialization.add_safe_globals(list(BLOCKS.values()))
            if restricted_loading():
                torch.serialization.add_safe_globals(_library_classes_inside_blocks())
        _patch_muon()
        callbacks = base.default_callbacks["on_pretrain_routine_start"]
        if ensure_registered not in callbacks:
            callbacks.append(ensure_registered)
        _registered = True
