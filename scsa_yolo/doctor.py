"""What works in this environment: the checks behind ``scsa-yolo doctor`` (Ultralytics has ``yolo checks``).

Each check returns :class:`Finding` records: a status, what was found and, for a problem, the fix. The versions are
compared with what the installed distribution declares (``Requires-Python``, ``torch>=...``) and with
``integration.SUPPORTED_ULTRALYTICS``; the extras and their packages are read from the distribution's metadata, so
nothing here repeats pyproject.toml. A ``fail`` is something the user asked for that cannot run (exit 1); ``warn``
works with a cost; ``info`` is a fact.
"""

from __future__ import annotations

import os
import shutil
import site
import sys
import sysconfig
import tempfile
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from scsa_yolo import hook
from scsa_yolo.version import __version__

DISTRIBUTION = "scsa-yolo"
OK, INFO, WARN, FAIL = "ok", "info", "warn", "fail"

EXTRA_FEATURES: dict[str, str] = {
    "compare": "the comparison blocks built on timm (SE, CBAM, ECA, CoordAtt) and `scsa-yolo cam` (grad-cam)",
    "cluster": "`scsa-yolo benchmark --engine ray` (Ray Tune trials)",
    "dev": "the test suite, ruff and wheel builds",
}
"""What each extra enables, for the report (the extras themselves and their packages come from the metadata)."""


@dataclass(frozen=True)
class Finding:
    """One line of the report.

    Attributes:
        status (str): One of ``ok``, ``info``, ``warn``, ``fail``.
        topic (str): What was checked, e.g. 'torch'.
        found (str): What was found.
        fix (str): For ``warn``/``fail``: what to do, on the same line.
    """

    status: str
    topic: str
    found: str
    fix: str = ""

    def line(self) -> str:
        """The report line: ``FAIL  topic: found; fix: ...``."""
        fix = f" -> fix: {self.fix}" if self.fix else ""
        return f"{self.status.upper():<5} {self.topic}: {self.found}{fix}"


def satisfies(version: str, specifier: str) -> bool:
    """Whether ``version`` meets a PEP 440 specifier such as ``>=8.2.103,<8.5`` (pre-releases count as releases)."""
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(specifier).contains(version, prereleases=True)


def requirements() -> dict[str | None, dict[str, str]]:
    """The installed distribution's requirements: extra (None for the core) -> package name -> version specifier."""
    from packaging.requirements import Requirement

    found: dict[str | None, dict[str, str]] = {}
    try:
        lines = metadata.requires(DISTRIBUTION) or []
        extras = metadata.metadata(DISTRIBUTION).get_all("Provides-Extra") or []
    except metadata.PackageNotFoundError:
        return found
    for line in lines:
        requirement = Requirement(line)
        marker = requirement.marker
        extra = None if marker is None else next((e for e in extras if marker.evaluate({"extra": e})), None)
        found.setdefault(extra, {})[requirement.name] = str(requirement.specifier)
    return found


def installed_version(package: str) -> str | None:
    """Version of an installed distribution, or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_versions() -> list[Finding]:
    """Python, scsa-yolo, torch and torchvision against what the distribution declares."""
    core = requirements().get(None, {})
    python = ".".join(map(str, sys.version_info[:3]))
    try:
        requires_python = metadata.metadata(DISTRIBUTION)["Requires-Python"] or ""
    except metadata.PackageNotFoundError:
        requires_python = ""
    here = Path(__file__).parent
    if installed_version(DISTRIBUTION):
        findings = [Finding(OK, "scsa-yolo", f"{__version__} ({here})")]
    else:
        findings = [Finding(WARN, "scsa-yolo", f"{__version__} from {here}, not installed", "pip install -e .")]
    if requires_python and not satisfies(python, requires_python):
        fix = f"use Python {requires_python}"
        findings.append(Finding(FAIL, "Python", f"{python}, outside {requires_python}", fix))
    else:
        findings.append(Finding(OK, "Python", f"{python} (supported {requires_python or 'unknown'})"))
    for package in ("torch", "torchvision"):
        version, wanted = installed_version(package), core.get(package, "")
        if version is None:
            findings.append(Finding(FAIL, package, "not installed", f"pip install '{package}{wanted}'"))
        elif not satisfies(version, wanted):
            findings.append(Finding(FAIL, package, f"{version}, outside {wanted}", f"pip install '{package}{wanted}'"))
        else:
            findings.append(Finding(OK, package, f"{version} (supported {wanted})"))
    return findings


def check_ultralytics() -> list[Finding]:
    """Ultralytics' version against the supported range, its internals, the families it ships, the registration."""
    version = installed_version("ultralytics")
    from scsa_yolo import integration

    wanted = integration.SUPPORTED_ULTRALYTICS
    if version is None:
        return [Finding(FAIL, "ultralytics", "not installed", f"pip install 'ultralytics{wanted}'")]
    with warnings.catch_warnings():  # the import-time registration warns; the findings below say it once
        warnings.simplefilter("ignore")
        from ultralytics.nn import tasks
    try:
        integration.check_ultralytics()
    except integration.UnsupportedUltralytics as error:
        return [
            Finding(
                FAIL,
                "ultralytics",
                f"{version}: {error}".split("; scsa_yolo supports")[0],
                f"pip install 'ultralytics{wanted}'",
            )
        ]
    from scsa_yolo import models

    families = [f"{f} (from {since})" for f, since in integration.FAMILY_RELEASES.items()]
    shipped = [f for f in integration.FAMILY_RELEASES if any(s.startswith(f) for s in models.stock_configs())]
    missing = [f for f in families if f.split()[0] not in shipped]
    loading = integration.restricted_loading()
    loading = "no restricted loading" if loading is None else f"restricted loading {'on' if loading else 'off'}"
    absent = f"; not in {version}: {', '.join(missing)}" if missing else ""
    findings = [
        Finding(OK, "ultralytics", f"{version} (supported {wanted}); {loading}"),
        Finding(INFO, "model families", ", ".join(shipped) + absent),
    ]
    if all(isinstance(getattr(tasks, name, None), type) for name in integration.BLOCKS):
        findings.append(Finding(OK, "registration", f"{len(integration.BLOCKS)} blocks registered with Ultralytics"))
    else:
        fix = "in Python, scsa_yolo.register() raises the error"
        findings.append(Finding(FAIL, "registration", f"blocks not registered ({hook.failure})", fix))
    return findings


def _site_dirs() -> list[Path]:
    dirs = [*getattr(site, "getsitepackages", list)(), site.getusersitepackages(), sysconfig.get_path("purelib")]
    return list(dict.fromkeys(Path(d) for d in dirs))


def check_startup_hook() -> Finding:
    """Whether the start-up hook runs in this interpreter, and if not, why: what the stock ``yolo`` command needs."""
    topic = "start-up hook"
    alternative = "or run `python -m scsa_yolo ARGS` in place of `yolo ARGS`"
    if os.environ.get(hook.ENV_SWITCH, "1") == "0":
        return Finding(
            FAIL,
            topic,
            f"off ({hook.ENV_SWITCH}=0): the stock `yolo` command cannot see SCSA models",
            f"unset {hook.ENV_SWITCH} {alternative}",
        )
    if sys.flags.no_site:
        return Finding(
            FAIL,
            topic,
            "off: this Python runs without site-packages processing (-S)",
            f"run Python without -S {alternative}",
        )
    pth = [d / hook.PTH_FILE for d in _site_dirs() if (d / hook.PTH_FILE).is_file()]
    if not pth:
        where = ", ".join(str(d) for d in _site_dirs())
        return Finding(
            FAIL,
            topic,
            f"off: {hook.PTH_FILE} is in none of {where}",
            f"pip install --force-reinstall --no-deps scsa-yolo {alternative}",
        )
    if "scsa_yolo_autoload" not in sys.modules:
        return Finding(
            FAIL,
            topic,
            f"off: {pth[0]} did not run in this interpreter",
            f"pip install --force-reinstall --no-deps scsa-yolo {alternative}",
        )
    return Finding(OK, topic, f"active ({pth[0]}): the stock `yolo` command sees SCSA models")


def check_cpu_kernel(build: bool = True) -> list[Finding]:
    """The fused C++ CPU kernel: switched on, compiler and headers found, ISA, built."""
    import torch
    from torch.utils import cpp_extension

    from scsa_yolo.nn.kernels import cpu

    topic = "CPU kernel"
    isa = torch.backends.cpu.get_cpu_capability()
    if os.environ.get(cpu.ENV_SWITCH, "1") == "0":
        return [Finding(INFO, topic, f"off ({cpu.ENV_SWITCH}=0): SCSA runs PyTorch ops on CPU (same results, slower)")]
    compiler = os.environ.get("CXX", "c++")
    missing = []
    if shutil.which(compiler) is None:
        missing.append(f"no C++ compiler ('{compiler}' is not on PATH)")
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        missing.append("no Python headers (Python.h)")
    if not cpp_extension.is_ninja_available():
        missing.append("no ninja")
    if missing:
        return [
            Finding(
                FAIL,
                topic,
                f"cannot be built: {', '.join(missing)}",
                f"install g++ and the Python headers (e.g. apt install g++ python3-dev) and ninja, or set "
                f"{cpu.ENV_SWITCH}=0 to run the PyTorch ops",
            )
        ]
    found = f"compiler {shutil.which(compiler)}, ISA {isa}"
    if not build:
        return [Finding(OK, topic, f"{found}; builds on the first CPU forward (about a minute, once)")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = cpu.load()
    if built is None:
        return [
            Finding(
                FAIL,
                topic,
                f"{found}; the build failed: {cpu.unavailable_reason()}",
                f"set {cpu.ENV_SWITCH}=0 to run the PyTorch ops, and report the build error",
            )
        ]
    return [Finding(OK, topic, f"built and loaded ({found}; {Path(built.__file__).parent})")]


def check_cuda() -> list[Finding]:
    """The CUDA path: a card, Triton for the optional kernel."""
    import torch

    from scsa_yolo.nn import scsa_fused

    switch = getattr(scsa_fused, "CUDA_SWITCH", "SCSA_YOLO_CUDA_KERNEL")
    wanted = os.environ.get(switch, "0") == "1"
    triton = installed_version("triton")
    if not torch.cuda.is_available():
        return [Finding(INFO, "CUDA", f"no CUDA device (torch {torch.__version__}); training runs on CPU")]
    card = torch.cuda.get_device_name(0)
    if wanted and triton is None:
        return [Finding(FAIL, "CUDA", f"{card}; {switch}=1 but Triton is not installed", "pip install triton")]
    kernel = f"Triton {triton}" if triton else "no Triton"
    state = "Triton kernel on" if wanted else f"PyTorch ops (Triton kernel opt-in with {switch}=1)"
    return [Finding(OK, "CUDA", f"{card} ({torch.cuda.device_count()} device(s)); {kernel}; {state}")]


def check_extras(needed: list[str]) -> list[Finding]:
    """Each extra: its packages installed or not, what it enables; a missing extra in ``needed`` is a failure."""
    findings = []
    declared = {extra: packages for extra, packages in requirements().items() if extra}
    for extra in needed:
        if extra not in declared:
            known = ", ".join(declared) or "none (scsa-yolo is not installed)"
            findings.append(Finding(FAIL, f"extra '{extra}'", "not an extra of scsa-yolo", f"choose from: {known}"))
    for extra, packages in declared.items():
        absent = [p for p in packages if installed_version(p) is None]
        enables = EXTRA_FEATURES.get(extra, "")
        if not absent:
            findings.append(Finding(OK, f"extra '{extra}'", f"installed: {enables}"))
        else:
            status = FAIL if extra in needed else INFO
            findings.append(
                Finding(
                    status,
                    f"extra '{extra}'",
                    f"not installed ({', '.join(absent)} missing): without it no {enables}",
                    f"pip install 'scsa-yolo[{extra}]'",
                )
            )
    return findings


def check_config_dir() -> Finding:
    """Whether derived model YAMLs can be written to Ultralytics' config folder (else a private temp folder)."""
    from scsa_yolo import models

    folder = models.cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp"):
            pass
    except OSError as error:
        return Finding(
            WARN,
            "config dir",
            f"derived model YAMLs cannot be written to {folder} ({error.strerror}); "
            "each process writes them to a private temp folder",
            "set YOLO_CONFIG_DIR to a writable folder",
        )
    return Finding(OK, "config dir", f"derived model YAMLs go to {folder}")


def diagnose(needed: list[str] = (), build: bool = True) -> list[Finding]:
    """Run every check, the light ones first; a check that needs a missing package says so instead of running.

    Args:
        needed (list[str]): Extras the user intends to use (their absence fails).
        build (bool): Build the CPU kernel if it is not built yet (about a minute, once per environment).

    Returns:
        (list[Finding]): The report, in order.
    """
    findings = [*check_versions(), check_startup_hook()]
    torch_ok = all(f.status != FAIL for f in findings if f.topic in ("torch", "torchvision"))
    if torch_ok:
        findings += check_ultralytics()
        ultralytics_ok = all(f.status != FAIL for f in findings if f.topic == "ultralytics")
        findings += check_cpu_kernel(build) + check_cuda()
        if ultralytics_ok:
            findings.append(check_config_dir())
    findings += check_extras(list(needed))
    return findings
