"""Finding the input: --source checks, archives unpacked, one walk over the files, split names, text lines.

:func:`scan_sources` walks every source once and keeps *regular files* only: a FIFO, socket or device named like an
annotation would block or fail the first read (a FIFO never returns), and a dangling link has nothing to read. Those
are counted and named in the report instead. Links to folders are followed (datasets on shared storage are often
linked in), each real folder read once, so link loops end.
"""

from __future__ import annotations

import os
import re
import stat
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ultralytics.data.utils import IMG_FORMATS

from ..errors import ConversionError
from .archives import ARCHIVE_SUFFIXES, extract_archive
from .report import ConversionReport

SYSTEM_FOLDERS = (Path("/proc"), Path("/sys"), Path("/dev"))  # virtual file systems: never a dataset
SKIPPED_FOLDER_NAMES = {"__MACOSX"}  # macOS zip resource forks are not data


def check_sources(sources: Iterable[Path | str]) -> list[Path]:
    """Check --source arguments before anything is read: each must be an existing folder or archive file.

    Returns:
        The absolute paths, in the order given.

    Raises:
        ConversionError: For an empty argument, a path that does not exist, a FIFO/device, or a system folder.
    """
    checked = []
    for source in sources:
        if str(source).strip() == "":
            raise ConversionError("--source is empty (''); pass the extracted download folder or the archive")
        path = Path(os.path.abspath(Path(source).expanduser()))
        if not path.exists():
            raise ConversionError(f"--source {path} does not exist; pass the extracted download folder or the archive")
        if not path.is_dir() and not path.is_file():
            raise ConversionError(f"--source {path} is neither a folder nor a file (a FIFO or device?)")
        real = path.resolve()
        if any(real == folder or folder in real.parents for folder in SYSTEM_FOLDERS):
            raise ConversionError(f"--source {path} is a system folder ({real}), not a dataset download")
        checked.append(path)
    return checked


def resolve_sources(sources: list[Path], scratch: Path) -> tuple[list[Path], dict[Path, Path]]:
    """Turn checked --source paths into folders to search, unpacking archives into ``scratch``.

    Args:
        sources: Paths from :func:`check_sources`: folders, or .zip / .tar (.tar.gz, .tgz, .tar.bz2, .tar.xz)
            archives (see :func:`.archives.extract_archive`).
        scratch: Folder for unpacked archives (inside --dest's work folder, removed after the run).

    Returns:
        Folders to search in the order given, and unpacked folder -> archive (for the report's names).
    """
    roots, archives = [], {}
    for index, source in enumerate(sources):
        if source.is_dir():
            roots.append(source)
        else:
            target = scratch / f"{index}_{source.name}"  # a fixed name: re-runs sort files the same way
            extract_archive(source, target)
            roots.append(target)
            archives[target] = source
    return roots, archives


@dataclass
class SourceTree:
    """Every regular file below the sources, found by one walk.

    Attributes:
        roots: The folders walked (sources, or where archives were unpacked).
        files: Sorted regular files (links to files resolved to be regular, kept under the linked name).
        special: Entries named like data that are no regular file: ``(path, why)`` (FIFO, device, socket, dangling
            link, unreadable).
        archives: Archive files found inside the sources (nested archives are not unpacked).
    """

    roots: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    special: list[tuple[Path, str]] = field(default_factory=list)
    archives: list[Path] = field(default_factory=list)

    def with_suffixes(self, suffixes: Iterable[str]) -> list[Path]:
        """Return the files whose lower-case suffix (without the dot) is one of ``suffixes``, sorted."""
        wanted = set(suffixes)
        return [p for p in self.files if p.name.rsplit(".", 1)[-1].lower() in wanted]

    def root_of(self, path: Path) -> Path | None:
        """Return the deepest root that ``path`` lies below, or None."""
        below = [root for root in self.roots if path.is_relative_to(root)]
        return max(below, key=lambda root: len(root.parts), default=None)

    def images(self) -> list[Path]:
        """Return every file Ultralytics reads as an image, sorted."""
        return self.with_suffixes(IMG_FORMATS)

    def report_to(self, report: ConversionReport) -> None:
        """Count the entries that are not regular files (reason ``not_a_regular_file``) and note nested archives."""
        for path, why in self.special:
            report.issue("not_a_regular_file", f"{path}: {why}; skipped")
        if self.special:
            report.note(f"{len(self.special)} entries under --source are no readable regular file and were skipped")
        if self.archives:
            report.note(f"archives inside --source are not unpacked: {', '.join(map(str, self.archives[:3]))}")


def _kind(mode: int) -> str:
    """Name a non-regular file type."""
    return "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"


def scan_sources(roots: Iterable[Path], exclude: Path | None = None) -> SourceTree:
    """Walk ``roots`` once (see the module docstring).

    Args:
        roots: Folders to walk.
        exclude: A folder to leave out (the output folder, which may lie inside a source folder).
    """
    exclude_real = exclude.resolve() if exclude else None
    tree, seen = SourceTree(roots=list(roots)), set()
    errors: list[OSError] = []
    for root in tree.roots:
        for folder, subfolders, files in os.walk(root, followlinks=True, onerror=errors.append):
            here = Path(folder)
            real = here.resolve()
            if real == exclude_real or real in seen:
                subfolders[:] = []
                continue
            seen.add(real)
            subfolders[:] = sorted(d for d in subfolders if d not in SKIPPED_FOLDER_NAMES)
            for name in files:
                if name.startswith("._"):  # macOS resource forks
                    continue
                path = here / name
                try:
                    mode = os.stat(path).st_mode
                except OSError as e:
                    why = "a dangling link" if os.path.islink(path) else f"unreadable ({e.strerror})"
                    tree.special.append((path, why))
                    continue
                if not stat.S_ISREG(mode):
                    tree.special.append((path, _kind(mode)))
                elif name.lower().endswith(ARCHIVE_SUFFIXES):
                    tree.archives.append(path)
                else:
                    tree.files.append(path)
    tree.special += [(Path(e.filename or "?"), f"unreadable folder ({e.strerror})") for e in errors]
    tree.files.sort()
    tree.special.sort()
    tree.archives.sort()
    return tree


def index_by_name(paths: Iterable[Path]) -> dict[str, list[Path]]:
    """Map lower-case file name to the paths with that name (file names vary in case across OS and tools)."""
    index: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        index[path.name.lower()].append(path)
    return index


def pick_by_name(candidates: list[Path], name: str) -> Path | None:
    """Choose the file called ``name`` among same-folder ``candidates`` that match it ignoring case.

    The exact spelling wins; otherwise a match ignoring case is taken only when it is the only one (``a.jpg`` is
    never labelled onto ``A.jpg`` when both exist).
    """
    exact = [p for p in candidates if p.name == name]
    if exact:
        return exact[0]
    folded = [p for p in candidates if p.name.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


def split_from_name(name: str) -> str | None:
    """Guess a split from a folder or file name such as ``VisDrone2019-DET-val`` or ``instances_train``.

    Returns:
        ``"train"``, ``"val"`` or ``"test"``, or None if the name says none of them.
    """
    tokens = re.split(r"[^a-z]+", name.lower())
    for split, words in (("train", {"train", "training"}), ("val", {"val", "valid", "validation"}), ("test", {"test"})):
        if words & set(tokens):
            return split
    return None


def iter_text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, stripped line) of a text file, tolerating a BOM and stray non-UTF-8 bytes."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for number, line in enumerate(f, 1):
            yield number, line.strip()
