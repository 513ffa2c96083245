"""SCSA as one registered op, ``torch.ops.scsa_yolo.scsa``, with a CPU kernel (C++) and a CUDA kernel (Triton).

On a CPU the straightforward formulation spends most of its time in per-op dispatch and fresh full-size buffers, and
on a GPU in launching its ~25 small kernels. The op computes the whole block in three passes over the map forward
(profiles, window means, output) and three backward (gate gradient sums, the pooling branch, the input gradient):

* ``scsa_yolo::scsa(x, params, window_h, window_w, heads, scaler, eps_h, eps_w, eps, keep_statistics) -> Tensor[]``
  returns the output, followed, when ``keep_statistics``, by the small tensors of ``STATISTICS`` that the backward
  reuses (as ``aten::native_group_norm`` returns mean and rstd).
* ``scsa_yolo::scsa_backward(grad, x, params, statistics, window_h, window_w, heads, scaler, input_needs_grad)
  -> Tensor[]`` returns the input gradient (empty when not needed) and one gradient per parameter.

Both are defined with ``torch.library.Library`` (the Python form of ``TORCH_LIBRARY``) and have a CPU kernel
(``kernels/cpu.py``: ``csrc/cpu/scsa_cpu.cpp`` built on first use, float32/float64), a CUDA kernel
(``kernels/triton_scsa.py``: float32, float16, bfloat16 inputs) and a fake (meta) implementation, so
``torch.compile`` traces them; ``scsa`` has an Autograd kernel whose backward calls ``scsa_backward``. The
parameters are tensors in the order of ``PARAMETERS``; this module knows tensors and numbers only, never ``SCSA``.

Which device runs the op (``kernel_supports``): on CPU, wherever the C++ kernel built (``SCSA_YOLO_FUSED=0``
switches it off, see ``scsa_yolo.nn.switches``; a failed build warns once, naming the reason, and SCSA runs its
PyTorch ops), for float32/float64 inputs with parameters of the same dtype, outside CPU autocast. On CUDA, only when
``SCSA_YOLO_CUDA_KERNEL=1``: the Triton kernel is tested against the reference under Triton's interpreter, but its GPU
speed has not been measured, so it is opt-in. ``fused_kernel_disabled()`` switches both off in a ``with`` block. Under
``torch.func`` transforms and forward-mode AD (``autograd_transforms_active``) no kernel is used: SCSA runs plain
PyTorch ops there.

Torch versions: the registration feature-detects what it uses (``torch.library.register_fake`` from torch 2.4,
``impl_abstract`` before it; the ``device_type`` argument of ``torch.is_autocast_enabled`` from 2.4). Where the
op cannot be registered at all it warns once and no kernel is used (``registration_error``).
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch.autograd import forward_ad

from scsa_yolo.nn.kernels import PARAMETERS, STATISTICS, statistics_shapes
from scsa_yolo.nn.kernels import cpu as cpu_kernel
from scsa_yolo.nn.switches import CUDA_KERNEL_VARIABLE, kernel_switches

__all__ = [
    "CUDA_SWITCH",
    "PARAMETERS",
    "STATISTICS",
    "autograd_transforms_active",
    "fused_kernel_disabled",
    "kernel_status",
    "refuse_double_backward",
    "kernel_supports",
    "registration_error",
    "scsa",
    "scsa_op",
]

CUDA_SWITCH = CUDA_KERNEL_VARIABLE
"""``SCSA_YOLO_CUDA_KERNEL``: ``1`` runs the Triton kernel on CUDA (read once by ``scsa_yolo.nn.switches``)."""
TRITON_INSTALLED = importlib.util.find_spec("triton") is not None
"""Triton comes with torch's CUDA wheels on Linux; without it CUDA runs the PyTorch-op path."""

_disabled: ContextVar[int] = ContextVar("scsa_fused_kernel_disabled", default=0)
"""Nesting depth of ``fused_kernel_disabled`` in the current thread or task."""

if globals().get("_LIBRARY") is not None:  # importlib.reload: drop the earlier registration (defined once)
    globals()["_LIBRARY"]._destroy()
_LIBRARY = None
registration_error: str | None = None
"""Why the op could not be registered on this torch (None when it was): SCSA then never uses a kernel."""
try:
    _LIBRARY = torch.library.Library("scsa_yolo", "DEF")
    _LIBRARY.define(
        "scsa(Tensor x, Tensor[] params, SymInt window_h, SymInt window_w, int heads, float scaler, float eps_h, "
        "float eps_w, float eps, bool keep_statistics) -> Tensor[]"
    )
    _LIBRARY.define(
        "scsa_backward(Tensor grad, Tensor x, Tensor[] params, Tensor[] statistics, SymInt window_h, "
        "SymInt window_w, int heads, float scaler, bool input_needs_grad) -> Tensor[]"
    )
    scsa_op = torch.ops.scsa_yolo.scsa.default
    scsa_backward_op = torch.ops.scsa_yolo.scsa_backward.default
except Exception as _error:  # a torch whose library API differs: no op, SCSA runs its PyTorch ops
    registration_error = f"{type(_error).__name__}: {_error}"
    scsa_op = scsa_backward_op = None
# Registered with the dispatcher directly (TORCH_LIBRARY style) rather than through torch.library.custom_op: the
# latter's Python wrappers cost about 1 ms per forward + backward, more than the CPU kernel's backward itself.


def _cpu_module():
    module = cpu_kernel.load()
    if module is None:
        raise RuntimeError(f"scsa_yolo::scsa: the CPU kernel is unavailable ({cpu_kernel.unavailable_reason()})")
    return module


def _scsa_cpu(x, params, window_h, window_w, heads, scaler, eps_h, eps_w, eps, keep_statistics):
    return list(_cpu_module().forward(x, params, window_h, window_w, heads, scaler, eps_h, eps_w, eps, keep_statistics))


def _scsa_backward_cpu(grad, x, params, statistics, window_h, window_w, heads, scaler, input_needs_grad):
    grad_x, *grad_params = _cpu_module().backward(
        grad, x, params, statistics, window_h, window_w, heads, scaler, input_needs_grad
    )
    return [grad_x if grad_x is not None else x.new_empty(0), *grad_params]


def _scsa_cuda(x, params, window_h, window_w, heads, scaler, eps_h, eps_w, eps, keep_statistics):
    from scsa_yolo.nn.kernels import triton_scsa

    with torch.cuda.device(x.device):  # Triton launches on the current device; the input may be on another
        return triton_scsa.forward(x, params, window_h, window_w, heads, scaler, eps_h, eps_w, eps, keep_statistics)


def _scsa_backward_cuda(grad, x, params, statistics, window_h, window_w, heads, scaler, input_needs_grad):
    from scsa_yolo.nn.kernels import triton_scsa

    with torch.cuda.device(x.device):
        return triton_scsa.backward(grad, x, params, statistics, window_h, window_w, heads, scaler, input_needs_grad)


def statistics_dtype(x: torch.Tensor) -> torch.dtype:
    """Dtype of the statistics: the input's for float32/float64, float32 for half-precision inputs."""
    return x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32


def _scsa_fake(x, params, window_h, window_w, heads, scaler, eps_h, eps_w, eps, keep_statistics):
    out = x.new_empty(x.shape)
    if not keep_statistics:
        return [out]
    b, c, h, w = x.shape
    shapes = statistics_shapes(b, c, h, w, (h // window_h) * (w // window_w), heads)
    return [out, *(x.new_empty(shape, dtype=statistics_dtype(x)) for shape in shapes)]


def _scsa_backward_fake(grad, x, params, statistics, window_h, window_w, heads, scaler, input_needs_grad):
    grad_x = x.new_empty(x.shape) if input_needs_grad else x.new_empty(0)
    return [grad_x, *(torch.empty_like(p, memory_format=torch.contiguous_format) for p in params)]


class _ScsaFunction(torch.autograd.Function):
    """The op's autograd: forward keeps the statistics, backward calls ``scsa_backward``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, settings: tuple, *params: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Run the op below autograd, keeping what the backward reuses."""
        with torch._C._AutoDispatchBelowADInplaceOrView():
            outputs = scsa_op(x, list(params), *settings[:-1], True)
        ctx.settings = settings
        ctx.param_count = len(params)
        ctx.mark_non_differentiable(*outputs[1:])
        ctx.set_materialize_grads(False)  # no zero gradients for the statistics, which nothing differentiates
        ctx.save_for_backward(x, *params, *outputs[1:])
        return tuple(outputs if settings[-1] else outputs[:1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor | None, *_: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        """Gradients of ``x`` and of every parameter (empty tensors for absent biases)."""
        refuse_double_backward("scsa_yolo::scsa")
        x, *rest = ctx.saved_tensors
        params, statistics = rest[: ctx.param_count], rest[ctx.param_count :]
        window_h, window_w, heads, scaler = ctx.settings[:4]
        if grad is None:
            grad = torch.zeros_like(x)
        grad_x, *grad_params = scsa_backward_op(
            grad, x, params, statistics, window_h, window_w, heads, scaler, ctx.needs_input_grad[0]
        )
        return (grad_x if ctx.needs_input_grad[0] else None, None, *grad_params)


def refuse_double_backward(name: str) -> None:
    """Raise inside a hand-written backward run with ``create_graph=True`` (grad mode is on only then).

    Its gradients would carry no graph, so a gradient penalty or Hessian would silently miss the block.

    Raises:
        RuntimeError: Naming ``name`` and the way to higher-order gradients.
    """
    if torch.is_grad_enabled():
        raise RuntimeError(
            f"{name} has no double backward (backward with create_graph=True). For higher-order gradients of a model "
            "with SCSA blocks use torch.func (grad, jacrev, hessian): under its transforms SCSA runs plain PyTorch ops."
        )


def _scsa_autograd(x, params, window_h, window_w, heads, scaler, eps_h, eps_w, eps, keep_statistics):
    settings = (window_h, window_w, heads, scaler, eps_h, eps_w, eps, keep_statistics)
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
        return list(_ScsaFunction.apply(x, settings, *params))
    with torch._C._AutoDispatchBelowADInplaceOrView():
        return scsa_op(x, params, *settings)


def _register_kernels() -> str | None:
    """Register the device, autograd and fake kernels; returns why not where this torch lacks an API."""
    try:
        for name, impls in {
            "scsa": {"CPU": _scsa_cpu, "CUDA": _scsa_cuda, "Autograd": _scsa_autograd},
            "scsa_backward": {"CPU": _scsa_backward_cpu, "CUDA": _scsa_backward_cuda},
        }.items():
            for key, impl in impls.items():
                _LIBRARY.impl(name, impl, key)
        torch._C._AutoDispatchBelowADInplaceOrView  # noqa: B018 (used by the autograd kernel)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    register_fake = getattr(torch.library, "register_fake", None)  # torch >= 2.4
    if register_fake is None:  # torch 2.2-2.3: the same, under its earlier name
        register_fake = getattr(torch.library, "impl_abstract", None)
    if register_fake is None:
        return f"torch {torch.__version__} has neither torch.library.register_fake nor impl_abstract"
    try:
        register_fake("scsa_yolo::scsa", _scsa_fake, lib=_LIBRARY)
        register_fake("scsa_yolo::scsa_backward", _scsa_backward_fake, lib=_LIBRARY)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


if registration_error is None:
    registration_error = _register_kernels()
if registration_error is not None:
    warnings.warn(
        f"scsa_yolo: the SCSA op could not be registered on torch {torch.__version__} ({registration_error}); "
        "SCSA runs its PyTorch ops, which give the same outputs more slowly.",
        stacklevel=2,
    )


def scsa(
    x: torch.Tensor,
    params: Sequence[torch.Tensor],
    window_h: int,
    window_w: int,
    heads: int,
    scaler: float,
    eps_h: float,
    eps_w: float,
    eps: float,
) -> torch.Tensor:
    """SCSA of a (B, C, H, W) input through ``torch.ops.scsa_yolo.scsa`` (where ``kernel_supports`` says so).

    Args:
        x (torch.Tensor): Input of shape (B, C, H, W).
        params (Sequence[torch.Tensor]): The block's parameters in ``PARAMETERS`` order (absent q/k/v biases as
            empty tensors).
        window_h (int): Pooling window rows (already shrunk to the map).
        window_w (int): Pooling window columns.
        heads (int): Attention heads.
        scaler (float): Attention scale, head_dim ** -0.5.
        eps_h (float): Epsilon of the row-profile GroupNorm.
        eps_w (float): Epsilon of the column-profile GroupNorm.
        eps (float): Epsilon of the pooled map's GroupNorm.

    Returns:
        (torch.Tensor): Output of shape (B, C, H, W), differentiable to ``x`` and every parameter.
    """
    # The Autograd kernel keeps the statistics for the backward itself; the caller needs the output only.
    return scsa_op(x, list(params), window_h, window_w, heads, scaler, eps_h, eps_w, eps, False)[0]


@contextmanager
def fused_kernel_disabled() -> Iterator[None]:
    """Run SCSA blocks on their PyTorch-op path inside the context (this thread or task only).

    For comparisons of the two paths.
    """
    token = _disabled.set(_disabled.get() + 1)
    try:
        yield
    finally:
        _disabled.reset(token)


def autograd_transforms_active() -> bool:
    """Whether a ``torch.func`` transform (grad, vmap, jacrev, ...) or a forward-mode AD level is active.

    The op has no batching rule or forward derivative, and the fast path's hand-written backward passes have no
    ``setup_context`` or ``jvp``: SCSA runs plain PyTorch ops there, which every transform (and higher orders) takes.
    """
    return torch._C._are_functorch_transforms_active() or forward_ad._current_level >= 0


def _cuda_kernel_enabled() -> bool:
    """``SCSA_YOLO_CUDA_KERNEL=1`` (``switches``) and Triton installed."""
    return TRITON_INSTALLED and kernel_switches().cuda_kernel


def _cpu_autocast() -> bool:
    """Whether CPU autocast is on (``torch.is_autocast_enabled("cpu")`` from torch 2.4, an older name before)."""
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:
        return torch.is_autocast_cpu_enabled()


def kernel_supports(x: torch.Tensor, param_dtype: torch.dtype) -> bool:
    """Whether the op has a kernel in use for ``x`` with parameters of ``param_dtype`` on this device.

    Checks the device-level conditions only (the caller checks the block's options): not switched off, the kernel
    available on ``x``'s device, the dtypes it takes there, no autocast it would ignore, no ``torch.func`` transform
    or forward-mode AD.
    """
    if _disabled.get() or registration_error is not None or autograd_transforms_active():
        return False
    if x.device.type == "cpu":
        return (
            x.dtype in (torch.float32, torch.float64)
            and param_dtype == x.dtype
            and not _cpu_autocast()
            and cpu_kernel.unavailable_reason() is None
            and cpu_kernel.load() is not None
        )
    if x.device.type == "cuda":
        taken = (torch.float32, torch.float16, torch.bfloat16)
        return x.dtype in taken and param_dtype in taken and _cuda_kernel_enabled()
    return False


def kernel_status() -> str:
    """One line for reports: which kernel the op runs on CPU and on CUDA here, and if none, why."""
    if registration_error is not None:
        return f"CPU and CUDA: PyTorch ops (the op could not be registered: {registration_error})"
    if cpu_kernel.load() is None:
        cpu = f"CPU: PyTorch ops (fused kernel unavailable: {cpu_kernel.unavailable_reason()})"
    else:
        cpu = f"CPU: fused C++ kernel ({torch.backends.cpu.get_cpu_capability()} build)"
    if _cuda_kernel_enabled():
        cuda = f"CUDA: Triton kernel ({CUDA_SWITCH}=1)"
    else:
        cuda = f"CUDA: PyTorch ops (Triton kernel opt-in with {CUDA_SWITCH}=1)"
    return f"{cpu}; {cuda}"
