"""Fused CPU kernel for SCSA: the whole block as one C++ op with a hand-written backward (``csrc/scsa_cpu.cpp``).

On a CPU the straightforward formulation spends most of its time in per-op dispatch and in fresh full-size buffers,
not in arithmetic. The kernel computes the block in three passes over the map forward (profiles, window means,
output) and three backward (gate gradients, the pooling branch, input gradient), with the small gate computations
(depthwise convs, GroupNorms, the attention and its softmax, sigmoids) as loops, for float32 and float64; only the
backward's two attention products go to BLAS.

It is compiled with ``torch.utils.cpp_extension`` (the C++ compiler torch finds, the ``ninja`` wheel) on first use
and cached in torch's extension folder (``TORCH_EXTENSIONS_DIR`` moves it), one build per kernel source, Python,
torch version and CPU instruction set, so the first CPU forward in a new environment pauses for about a minute
(logged; ``scripts/setup.sh`` builds it up front).
Where it cannot be built (no C++ compiler, no Python headers), SCSA warns once and runs its PyTorch-op fast path,
which computes the same thing. ``SCSA_YOLO_FUSED=0`` in the environment switches the kernel off.

``SCSA.forward`` uses it only where it applies: CPU tensors, float32/float64 outside autocast, the avg-pool
sigmoid-gate configuration (every official config), no active attention dropout, no hooks or parametrizations on
the submodules whose parameters it reads (FLOP counters and pruning see their modules run), and eager mode (not while
tracing, scripting, compiling or exporting, which record the PyTorch ops instead). Forward-mode AD, ``torch.func``
transforms and double backward are not supported by the kernel: run those inside ``fused_kernel_disabled()``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from scsa_yolo.nn.scsa import SCSA

__all__ = ["fused_kernel_disabled", "fused_scsa", "kernel_applies", "kernel_status", "load_kernel"]

SOURCE = Path(__file__).with_name("csrc") / "scsa_cpu.cpp"
ENV_SWITCH = "SCSA_YOLO_FUSED"

ISA_FLAGS = {
    "AVX2": ("-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2"),
    "AVX512": (
        *("-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq"),
        *("-DCPU_CAPABILITY_AVX512", "-DCPU_CAPABILITY=AVX512"),
    ),
}
"""Compiler flags per ``torch.backends.cpu.get_cpu_capability()``: the kernel's loops are written to vectorise, and
the CPU_CAPABILITY macros select ATen's matching ``Vectorized`` implementation (used for exp); anything else builds
portable code."""

GROUP_CONVS = ("local_dwc", "global_dwc_s", "global_dwc_m", "global_dwc_l")
KERNEL_MODULES = (*GROUP_CONVS, "norm_h", "norm_w", "norm", "q", "k", "v")
"""Submodules whose parameters the kernel reads (it never calls them)."""
KERNEL_PARAMETERS = (
    *((conv, "weight") for conv in GROUP_CONVS),
    *((conv, "bias") for conv in GROUP_CONVS),
    ("norm_h", "weight"),
    ("norm_h", "bias"),
    ("norm_w", "weight"),
    ("norm_w", "bias"),
    ("norm", "weight"),
    ("norm", "bias"),
    ("q", "weight"),
    ("k", "weight"),
    ("v", "weight"),
    ("q", "bias"),
    ("k", "bias"),
    ("v", "bias"),
)
"""(submodule, parameter) in the order the kernel reads them (``Param`` in ``csrc/scsa_cpu.cpp``)."""


_kernel: ModuleType | None = None
_unavailable_reason: str | None = None if os.environ.get(ENV_SWITCH, "1") != "0" else f"{ENV_SWITCH}=0"
_load_lock = threading.Lock()
_disabled: ContextVar[int] = ContextVar("scsa_fused_kernel_disabled", default=0)
"""Nesting depth of ``fused_kernel_disabled`` in the current thread or task."""


def load_kernel() -> ModuleType | None:
    """The compiled kernel module, building it on first call; None (after one warning) where it cannot be built."""
    global _kernel, _unavailable_reason
    if _kernel is not None or _unavailable_reason is not None:
        return _kernel
    with _load_lock:
        if _kernel is None and _unavailable_reason is None:
            try:
                _kernel = _build()
            except Exception as error:  # any build or load failure means: run the PyTorch ops instead
                _unavailable_reason = _failure_reason(error)
                warnings.warn(
                    f"scsa_yolo: the fused SCSA CPU kernel could not be built ({_unavailable_reason}); SCSA runs its "
                    "PyTorch-op path on CPU, which gives the same outputs more slowly. Building needs a C++ compiler "
                    f"and the Python headers; set {ENV_SWITCH}=0 to skip the attempt.",
                    stacklevel=2,
                )
    return _kernel


def _failure_reason(error: Exception) -> str:
    """The line of a build error that says what went wrong (the compiler's ``error:`` line, not ninja's summary)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    cause = next((line for line in lines if "error:" in line.lower()), lines[-1] if lines else "")
    return f"{type(error).__name__}: {cause}"


def _build() -> ModuleType:
    """Compile (or load the cached build of) ``csrc/scsa_cpu.cpp`` for this CPU's instruction set."""
    from ultralytics.utils import LOGGER

    with _quiet_logger("torch.utils.cpp_extension"):  # a CUDA build of torch on a machine without CUDA warns here
        from torch.utils import cpp_extension

    capability = torch.backends.cpu.get_cpu_capability()
    digest = hashlib.sha1(SOURCE.read_bytes()).hexdigest()[:10]
    # One build folder per kernel source, Python, torch version and instruction set: the cache may be shared by
    # environments and machines, and a new version must not be mistaken for a finished build.
    name = f"scsa_yolo_cpu_{re.sub(r'[^a-z0-9]', '_', capability.lower())}_{digest}"  # a C identifier ("NO AVX")
    torch_tag = torch.__version__.replace(".", "_").replace("+", "_")
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root())
    build_dir = root / f"{name}_{sys.implementation.cache_tag}_torch{torch_tag}"
    build_dir.mkdir(parents=True, exist_ok=True)
    if not (build_dir / f"{name}.so").exists():
        LOGGER.info(f"scsa_yolo: compiling the fused SCSA CPU kernel into {build_dir} (once, about a minute)...")
    with _ninja_on_path():
        return cpp_extension.load(
            name=name,
            sources=[str(SOURCE)],
            extra_cflags=["-O3", "-fopenmp", *ISA_FLAGS.get(capability, ())],
            extra_ldflags=["-fopenmp"],
            build_directory=str(build_dir),
            verbose=False,
        )


@contextmanager
def _ninja_on_path() -> Iterator[None]:
    """Put the ninja wheel's binary on PATH inside the context if no ``ninja`` is there (torch runs it from PATH).

    An environment that is not activated has the wheel's binary off PATH.
    """
    if shutil.which("ninja") is not None:
        yield
        return
    import ninja

    previous = os.environ.get("PATH")
    os.environ["PATH"] = os.pathsep.join(filter(None, (ninja.BIN_DIR, previous)))
    try:
        yield
    finally:
        if previous is None:
            del os.environ["PATH"]
        else:
            os.environ["PATH"] = previous


@contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Raise a logger's level to ERROR inside the context."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def kernel_status() -> str:
    """One line for reports: whether the fused kernel is in use on this machine, and if not, why."""
    if load_kernel() is None:
        return f"fused CPU kernel unavailable ({_unavailable_reason}), PyTorch ops instead"
    return f"fused CPU kernel ({torch.backends.cpu.get_cpu_capability()} build)"


@contextmanager
def fused_kernel_disabled() -> Iterator[None]:
    """Run SCSA blocks on their PyTorch-op path inside the context (this thread or task only).

    For comparisons, and for what the kernel does not support: forward-mode AD, ``torch.func`` transforms and
    double backward (its backward is ``once_differentiable``).
    """
    token = _disabled.set(_disabled.get() + 1)
    try:
        yield
    finally:
        _disabled.reset(token)


def kernel_applies(block: SCSA, x: torch.Tensor) -> bool:
    """Whether ``block(x)`` can run the fused kernel (see the module docstring for the conditions)."""
    return (
        _disabled.get() == 0
        and _unavailable_reason is None
        # Graph capture first: under tracing the shape checks below would be recorded as tensor comparisons.
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
        and not torch.compiler.is_compiling()
        and not torch.onnx.is_in_onnx_export()
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and x.dim() == 4
        and x.shape[1] == block.dim
        and x.numel() > 0
        and block.down_sample_mode == "avg_pool"
        and block.gate_layer == "sigmoid"
        and not (block.training and block._modules["attn_drop"].p > 0)
        and _plain_submodules(block)
        and block._modules["q"]._parameters["weight"].dtype == x.dtype
        and not torch.is_autocast_enabled("cpu")
        and load_kernel() is not None
    )


def _plain_submodules(block: SCSA) -> bool:
    """No hooks (FLOP counters, pruning) and no parametrizations on the submodules whose parameters the kernel reads.

    The kernel never calls those submodules, so their hooks would be skipped and a parametrized weight missed; and it
    takes the q/k/v biases all or none.
    """
    for module in KERNEL_MODULES:
        child = block._modules[module]
        if (
            child._forward_hooks
            or child._forward_pre_hooks
            or child._backward_hooks
            or child._backward_pre_hooks
            or "weight" not in child._parameters
        ):
            return False
    biases = [block._modules[name]._parameters.get("bias") is None for name in ("q", "k", "v")]
    return all(biases) or not any(biases)  # the kernel takes all three q/k/v biases or none


def _parameters(block: SCSA, x: torch.Tensor) -> list[torch.Tensor]:
    """The block's parameters in kernel order; an absent q/k/v bias is an empty tensor.

    Reads the modules' parameter dicts directly: this runs on every forward, and ``nn.Module.__getattr__`` for the
    twenty lookups would cost more than a small block's arithmetic.
    """
    modules = block._modules
    params = [modules[module]._parameters[name] for module, name in KERNEL_PARAMETERS]
    if params[-1] is None:
        params[-3:] = [x.new_empty(0)] * 3
    return params


def fused_scsa(block: SCSA, x: torch.Tensor, window_h: int, window_w: int) -> torch.Tensor:
    """SCSA of (B, C, H, W) ``x`` with ``block``'s parameters through the fused kernel (where ``kernel_applies``).

    Args:
        block (SCSA): The block (parameters and hyper-parameters).
        x (torch.Tensor): CPU input of shape (B, C, H, W).
        window_h (int): Pooling window rows (already shrunk to the map).
        window_w (int): Pooling window columns.

    Returns:
        (torch.Tensor): The block's output, differentiable to ``x`` and every parameter when grad is enabled.
    """
    config = (
        window_h,
        window_w,
        block.head_num,
        block.scaler,
        block.norm_h.eps,
        block.norm_w.eps,
        block.norm.eps,
    )
    params = _parameters(block, x)
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
        return _FusedSCSA.apply(x, config, *params)
    return _kernel.forward(x, params, *config, False)[0]


class _FusedSCSA(torch.autograd.Function):
    """Autograd wrapper of the kernel: forward keeps the small intermediates, backward returns every gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, config: tuple, *params: torch.Tensor) -> torch.Tensor:
        """Run the kernel, keeping what its backward needs."""
        out, *saved = _kernel.forward(x, list(params), *config, True)
        ctx.config = config
        ctx.param_count = len(params)
        ctx.save_for_backward(x, *params, *saved)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """Gradients of ``x`` and of every parameter (None for the empty stand-ins of absent biases)."""
        x, *rest = ctx.saved_tensors
        params, saved = rest[: ctx.param_count], rest[ctx.param_count :]
        window_h, window_w, heads, scaler = ctx.config[:4]
        grad_x, *grad_params = _kernel.backward(
            grad, x, params, saved, window_h, window_w, heads, scaler, ctx.needs_input_grad[0]
        )
        grad_params = [g if p.numel() else None for g, p in zip(grad_params, params)]
        return (grad_x if ctx.needs_input_grad[0] else None, None, *grad_params)
