"""The switches that choose SCSA's kernels: one place, read from the environment once.

Environment variables, read when this module is first imported (the first ``import scsa_yolo.nn``, which the
Ultralytics start-up hook does at interpreter start): set them in the shell or before that import. Changing
``os.environ`` later changes nothing; in a running process use ``set_kernel_switches`` (as timm's ``TIMM_FUSED_ATTN``
is read once into ``use_fused_attn()`` and changed with ``set_fused_attn``).

=========================  =======  ====================================================================================
variable                   default  effect
=========================  =======  ====================================================================================
``SCSA_YOLO_FUSED``        ``1``    ``0``: no fused C++ CPU kernel (not even built); SCSA runs its PyTorch ops on CPU
``SCSA_YOLO_CUDA_KERNEL``  ``0``    ``1``: the Triton kernel on CUDA (opt-in until its GPU speed is measured)
=========================  =======  ====================================================================================

``scsa_yolo.nn.scsa_fused.fused_kernel_disabled()`` switches both kernels off inside a ``with`` block (this thread
only), for comparisons. Exports never run a kernel: they trace SCSA's PyTorch ops (``scsa_yolo.nn.functional``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

__all__ = [
    "CPU_KERNEL_VARIABLE",
    "CUDA_KERNEL_VARIABLE",
    "KernelSwitches",
    "kernel_switches",
    "kernel_switches_set",
    "set_kernel_switches",
]

CPU_KERNEL_VARIABLE = "SCSA_YOLO_FUSED"
"""``0`` switches the fused C++ CPU kernel off (it is then never built)."""
CUDA_KERNEL_VARIABLE = "SCSA_YOLO_CUDA_KERNEL"
"""``1`` switches the Triton CUDA kernel on."""


@dataclass(frozen=True)
class KernelSwitches:
    """Which of the op's kernels may run (a kernel also needs to be available for the input: see ``scsa_fused``).

    Attributes:
        cpu_kernel (bool): The fused C++ kernel on CPU (``SCSA_YOLO_FUSED``, default on).
        cuda_kernel (bool): The Triton kernel on CUDA (``SCSA_YOLO_CUDA_KERNEL``, default off).
    """

    cpu_kernel: bool = True
    cuda_kernel: bool = False

    @classmethod
    def from_environment(cls, environ: dict[str, str] | os._Environ = os.environ) -> KernelSwitches:
        """The switches the environment variables set (anything but ``0`` / ``1`` leaves the default)."""
        return cls(
            cpu_kernel=environ.get(CPU_KERNEL_VARIABLE, "1") != "0",
            cuda_kernel=environ.get(CUDA_KERNEL_VARIABLE, "0") == "1",
        )

    def describe(self) -> str:
        """``SCSA_YOLO_FUSED=1 SCSA_YOLO_CUDA_KERNEL=0``: the settings as environment assignments."""
        return f"{CPU_KERNEL_VARIABLE}={int(self.cpu_kernel)} {CUDA_KERNEL_VARIABLE}={int(self.cuda_kernel)}"


_switches = KernelSwitches.from_environment()
"""The switches in force: read from the environment here, once; changed only by ``set_kernel_switches``."""


def kernel_switches() -> KernelSwitches:
    """The switches in force."""
    return _switches


def set_kernel_switches(*, cpu_kernel: bool | None = None, cuda_kernel: bool | None = None) -> KernelSwitches:
    """Change the switches for the whole process (``None`` keeps a switch); returns the previous ones.

    Switching the CPU kernel on after ``SCSA_YOLO_FUSED=0`` builds it at the next CPU forward.
    """
    global _switches
    previous = _switches
    changes = {
        name: value for name, value in (("cpu_kernel", cpu_kernel), ("cuda_kernel", cuda_kernel)) if value is not None
    }
    _switches = replace(previous, **changes)
    return previous


@contextmanager
def kernel_switches_set(*, cpu_kernel: bool | None = None, cuda_kernel: bool | None = None) -> Iterator[None]:
    """``set_kernel_switches`` inside the context, the previous switches restored after it (process-wide)."""
    previous = set_kernel_switches(cpu_kernel=cpu_kernel, cuda_kernel=cuda_kernel)
    try:
        yield
    finally:
        set_kernel_switches(cpu_kernel=previous.cpu_kernel, cuda_kernel=previous.cuda_kernel)
