"""Owning --dest for one run: a lock, a staging folder inside it, and the swap that replaces the earlier output.

A run never touches the earlier output until the new one is complete:

1. :class:`DestLock` takes an exclusive lock on the folder; a second run (or a `profile` writing into it) is refused at
   once with a message, never queued (a run takes minutes to hours; silently waiting looks like a hang).
2. :func:`recover` finishes or undoes a swap that a killed run left half-way (below), then the file list is checked.
3. The new output is written into ``DEST/.prepare-work/new`` (archives are unpacked into ``.prepare-work/extracted``).
4. :meth:`DestSession.commit` swaps: the earlier run's top-level entries are moved (renamed, same file system) into
   ``.prepare-work/old``, a ``committed`` marker is written, the new entries are moved into ``DEST``, the earlier
   files are deleted by their recorded names, and the work folder goes. Any failure before the marker rolls the
   earlier entries back; after it the swap is completed. A kill in between is finished by the next run's recover.

So a bad or empty --source, an exception, a full disk or a kill leave ``DEST`` as it was (plus, after a kill, the work
folder, which the next run removes). A new ``DEST`` that a failed run created is removed again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import DestError
from .manifest import (
    MANIFEST_NAME,
    WORK_DIR_NAME,
    check_dest,
    entries_below,
    is_label_cache,
    read_manifest,
    remove_recorded,
)

try:
    import fcntl
except ImportError:  # Windows: a lock file created exclusively instead
    fcntl = None

OWNER_FILE = "owner.txt"  # written first into the work folder: only a folder holding it is removed by this tool
COMMITTED_FILE = "committed"
LOCK_FILE_NAME = ".prepare-lock"  # only where fcntl is missing


class DestLock:
    """Exclusive lock on a folder for the length of a ``with`` block; refuses (never waits) when it is held.

    POSIX: ``flock`` on the folder itself (no file is written; the lock goes with the process, so a killed run leaves
    none behind). Elsewhere: a lock file created exclusively and removed on exit.
    """

    def __init__(self, folder: Path, what: str = "--dest") -> None:
        """Remember the folder; ``what`` names it in the message (``--dest``, ``--out``)."""
        self.folder, self.what, self.handle = folder, what, None

    def busy(self) -> DestError:
        """The error for a folder another run holds."""
        return DestError(
            f"{self.what} {self.folder} is in use by another scsa-yolo prepare/profile run; wait until it has "
            f"finished or choose another folder (runs into one folder are refused, not queued)"
        )

    def __enter__(self) -> DestLock:
        """Take the lock or raise :meth:`busy`."""
        if fcntl is not None:
            self.handle = os.open(self.folder, os.O_RDONLY)
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(self.handle)
                self.handle = None
                raise self.busy() from None
        else:
            try:
                self.handle = os.open(self.folder / LOCK_FILE_NAME, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                raise DestError(f"{self.busy()} (if no run is going, delete {self.folder / LOCK_FILE_NAME})") from None
        return self

    def __exit__(self, *exc) -> None:
        """Release the lock."""
        if self.handle is not None:
            os.close(self.handle)
            self.handle = None
            if fcntl is None:
                (self.folder / LOCK_FILE_NAME).unlink(missing_ok=True)


def make_folder(folder: Path, what: str) -> bool:
    """Create ``folder`` (and its parents) if needed, turning OS errors into one-line messages.

    Returns:
        True if this call created it.

    Raises:
        DestError: If it is a file, lies below a file, or cannot be created (read-only, /proc, permissions).
    """
    if folder.exists() and not folder.is_dir():
        raise DestError(f"{what} {folder} is a file, not a folder; choose a folder")
    if folder.is_dir():
        return False
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        return False
    except OSError as e:
        raise DestError(
            f"{what} {folder} cannot be created ({e.strerror}: {e.filename}); choose a folder you can write to"
        ) from e
    return True


def _owned_work_folder(work: Path) -> bool:
    """Return True if ``work`` is this tool's work folder: it holds the owner file, or is empty (killed at once)."""
    return (work / OWNER_FILE).is_file() or (work.is_dir() and not any(work.iterdir()))


def _move_back_leftovers(old: Path, dest: Path) -> None:
    """Put entries of ``old`` that were not recorded (none, unless something changed under the lock) back in dest."""
    for name in entries_below(old, set()):
        target = dest / name
        if not os.path.lexists(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(old / name, target)


def _finish(work: Path, dest: Path) -> None:
    """Complete a committed swap: move what is still staged into ``dest``, delete the earlier files, remove ``work``."""
    staged, old = work / "new", work / "old"
    if staged.is_dir():
        for entry in sorted(staged.iterdir()):
            if not os.path.lexists(dest / entry.name):
                os.replace(entry, dest / entry.name)
    if old.is_dir():
        for cache in sorted((old / "labels").glob(f"*{'.cache'}")) if (old / "labels").is_dir() else []:
            if is_label_cache(f"labels/{cache.name}") and not os.path.lexists(dest / "labels" / cache.name):
                (dest / "labels").mkdir(exist_ok=True)
                os.replace(cache, dest / "labels" / cache.name)  # Ultralytics' caches stay where they were
        remove_recorded(old, read_manifest(old))
        _move_back_leftovers(old, dest)
    shutil.rmtree(work)


def _roll_back(work: Path, dest: Path) -> None:
    """Undo an uncommitted swap: every earlier entry moved to ``work/old`` goes back; ``work`` is removed."""
    old = work / "old"
    if old.is_dir():
        for entry in sorted(old.iterdir()):
            if not os.path.lexists(dest / entry.name):
                os.replace(entry, dest / entry.name)
        _move_back_leftovers(old, dest)
    shutil.rmtree(work)


def recover(dest: Path) -> None:
    """Finish or undo what a killed run left in ``dest/.prepare-work`` (call with the lock held).

    Raises:
        DestError: If a folder of that name is not this tool's (it is then left alone).
    """
    work = dest / WORK_DIR_NAME
    if not os.path.lexists(work):
        return
    if work.is_symlink() or not _owned_work_folder(work):
        raise DestError(f"{work} is not a scsa-yolo work folder (no {OWNER_FILE}); move it away and run again")
    if (work / COMMITTED_FILE).is_file():
        _finish(work, dest)
    else:
        _roll_back(work, dest)


class DestSession:
    """One run's ownership of --dest: lock, checked file list, staging folder and the final swap.

    Usage::

        with DestSession(dest) as session:
            write everything into session.staging (names relative to it are names relative to dest)
            session.commit()
    """

    def __init__(self, dest: Path, what: str = "--dest") -> None:
        """Remember the folder (absolute, links not resolved)."""
        self.dest = Path(os.path.abspath(dest))
        self.what = what
        self.work = self.dest / WORK_DIR_NAME
        self.staging = self.work / "new"
        self.scratch = self.work / "extracted"
        self.created = False
        self.committed = False
        self.recorded: list[str] = []
        self._lock: DestLock | None = None

    def __enter__(self) -> DestSession:
        """Create and lock ``dest``, recover a killed run, check the file list, make the staging folder."""
        self.created = make_folder(self.dest, self.what)
        try:
            self._lock = DestLock(self.dest, self.what).__enter__()
            recover(self.dest)
            self.recorded = check_dest(self.dest)
            self.work.mkdir()
            (self.work / OWNER_FILE).write_text("scratch folder of scsa-yolo prepare; removed by its next run\n")
            self.staging.mkdir()
            self.scratch.mkdir()
        except BaseException as e:
            self.__exit__(None, None, None)
            if isinstance(e, OSError):  # not readable or writable, full, a read-only file system
                raise DestError(f"{self.what} {self.dest} cannot be used: {e.strerror} ({e.filename})") from e
            raise
        return self

    def commit(self) -> None:
        """Swap the staged output in for the earlier one (see the module docstring)."""
        old = self.work / "old"
        old.mkdir()
        tops = sorted({name.split("/")[0] for name in self.recorded} | {MANIFEST_NAME})
        try:
            for top in tops:
                if os.path.lexists(self.dest / top):
                    os.replace(self.dest / top, old / top)
            (self.work / COMMITTED_FILE).write_text("swap committed\n")
        except BaseException as e:
            _roll_back(self.work, self.dest)
            if isinstance(e, OSError):
                raise DestError(
                    f"{self.what} {self.dest}: the new output could not be swapped in ({e.strerror}: "
                    f"{e.filename}); the earlier output was put back"
                ) from e
            raise
        self.committed = True
        _finish(self.work, self.dest)

    def __exit__(self, *exc) -> None:
        """Discard an uncommitted staging folder, remove a ``dest`` this run created and left empty, unlock."""
        try:
            if self._lock is None:  # refused or never locked: the folder belongs to whoever holds it
                return
            if os.path.isdir(self.work) and not self.committed and _owned_work_folder(self.work):
                _roll_back(self.work, self.dest)
            if self.created and self.dest.is_dir() and not any(self.dest.iterdir()):
                self.dest.rmdir()
        finally:
            if self._lock is not None:
                self._lock.__exit__()
                self._lock = None
