"""Build and load the C++ CPU kernel of the SCSA op (``csrc/cpu/scsa_cpu.cpp``) on first use.

It is compiled with ``torch.utils.cpp_extension`` (the C++ compiler torch finds, the ``ninja`` wheel) and cached in
torch's extension folder (``TORCH_EXTENSIONS_DIR`` moves it), one build per kernel source (content and location),
Python, torch version and CPU instruction set, so the first CPU forward in a new environment pauses for about a
minute (logged; ``scripts/setup.sh`` builds it up front). Where it cannot be built (no C++ compiler, no Python
headers, a torch whose extension API or headers the source does not fit), ``load`` warns once and returns None, and
SCSA runs its PyTorch-op path, which computes the same thing. ``SCSA_YOLO_FUSED=0`` (``scsa_yolo.nn.switches``)
skips the build.
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
from pathlib import Path
from types import ModuleType

import torch

from scsa_yolo.nn.switches import CPU_KERNEL_VARIABLE, kernel_switches

__all__ = ["ENV_SWITCH", "SOURCE", "load", "unavailable_reason"]

SOURCE = Path(__file__).parents[1] / "csrc" / "cpu" / "scsa_cpu.cpp"
ENV_SWITCH = CPU_KERNEL_VARIABLE
"""``SCSA_YOLO_FUSED``: read once by ``scsa_yolo.nn.switches``."""

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

_kernel: ModuleType | None = None
_unavailable_reason: str | None = None
"""Why the build failed (None: not tried yet, or built)."""
_load_lock = threading.Lock()


def load() -> ModuleType | None:
    """The compiled kernel module, building it on first call; None (after one warning) where it cannot be built."""
    global _kernel, _unavailable_reason
    if not kernel_switches().cpu_kernel:
        return None
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
                    stacklevel=3,
                )
    return _kernel


def unavailable_reason() -> str | None:
    """Why the kernel is not in use (switched off, or the build error), or None while it is (or is not yet built)."""
    if not kernel_switches().cpu_kernel:
        return f"{ENV_SWITCH}=0"
    return _unavailable_reason


def _failure_reason(error: Exception) -> str:
    """The line of a build error that says what went wrong (the compiler's ``error:`` line, not ninja's summary)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    cause = next((line for line in lines if "error:" in line.lower()), lines[-1] if lines else "")
    return f"{type(error).__name__}: {cause}"


def _build() -> ModuleType:
    """Compile (or load the cached build of) ``csrc/cpu/scsa_cpu.cpp`` for this CPU's instruction set."""
    from ultralytics.utils import LOGGER

    with _quiet_logger("torch.utils.cpp_extension"):  # a CUDA build of torch on a machine without CUDA warns here
        from torch.utils import cpp_extension

    capability = torch.backends.cpu.get_cpu_capability()
    name = _build_name(SOURCE, capability)
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


def _build_name(source: Path, capability: str) -> str:
    """Module name of the build of ``source`` for an instruction set: one per source content, location and ISA.

    With Python and torch versions in the folder name, the cache may be shared by environments, checkouts and
    machines without a new version being mistaken for a finished build. The location counts because ninja rebuilds
    when the compile command (which names the source path) changes: two checkouts sharing one folder rebuilt it at
    every switch (about a minute each).
    """
    digest = hashlib.sha1(source.read_bytes() + str(source.resolve()).encode()).hexdigest()[:10]
    return f"scsa_yolo_cpu_{re.sub(r'[^a-z0-9]', '_', capability.lower())}_{digest}"  # a C identifier ("NO AVX")


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
