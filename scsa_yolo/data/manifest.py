"""The file list that bounds what `prepare` may delete in --dest (``prepare_files.txt``) and every check on it.

The list holds one relative path a line: every file a run wrote below ``DEST``. A later run replaces exactly those and
refuses to start when ``DEST`` holds anything else. The list is a plain text file a user (or an attacker) can edit, so
every name is checked before anything is moved or deleted: it must be a plain path inside ``DEST`` (no absolute path,
no ``.``/``..``/empty component, no line break) that reaches its file without passing through a symbolic link;
names are made from absolute paths without resolving links (:func:`relative_name`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import DestError

MANIFEST_NAME = "prepare_files.txt"
WORK_DIR_NAME = ".prepare-work"  # staging, scratch and swap folder of a run (see scsa_yolo.data.dest)
LEGACY_EXTRACT_DIR_NAME = ".extracted"  # scratch folder of versions before the staging folder; never ours to delete
LABEL_CACHE_SUFFIX = ".cache"  # labels/<split>.cache: Ultralytics' label cache, rebuilt by it when the labels change


def is_one_line(name: str) -> bool:
    """Return True if ``name`` holds no line break (any separator ``str.splitlines`` knows: LF, CR, NEL, U+2028)."""
    return name.splitlines() == [name]


def name_problem(name: str) -> str | None:
    """Say why a manifest entry is not a plain relative path inside the folder, or None if it is."""
    if not name:
        return "is empty"
    if not is_one_line(name):
        return "contains a line break"
    if "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "is absolute or uses backslashes"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' component"
    if parts[0] == WORK_DIR_NAME:
        return f"lies in the scratch folder {WORK_DIR_NAME}"
    return None


def link_on_the_way(dest: Path, name: str) -> str | None:
    """Return the first folder of ``name`` below ``dest`` that is a symbolic link (never followed), or None."""
    here = dest
    for part in name.split("/")[:-1]:
        here = here / part
        try:
            if stat.S_ISLNK(os.lstat(here).st_mode):
                return here.relative_to(dest).as_posix()
        except OSError:
            return None  # the rest does not exist: nothing to follow
    return None


def read_manifest(dest: Path) -> list[str]:
    """Return the checked names an earlier run recorded in ``dest``'s list (empty if there is none).

    Raises:
        DestError: Naming every entry that is not a plain path inside ``dest`` or passes through a link there.
    """
    manifest = dest / MANIFEST_NAME
    if not manifest.is_file() or manifest.is_symlink():
        return []
    names = [line for line in manifest.read_text(encoding="utf-8", errors="replace").splitlines() if line]
    bad = [f"{name!r} {why}" for name in names if (why := name_problem(name))]
    bad += [f"{name!r} passes through the link {link}" for name in names if (link := link_on_the_way(dest, name))]
    if bad:  # the list is a plain text file: never let an edited one point a deletion elsewhere
        raise DestError(
            f"{manifest} names files outside --dest, in its scratch folder or through a link ({'; '.join(bad[:5])}); "
            "refused, nothing was deleted. Remove those lines, or use a new --dest"
        )
    return names


def relative_name(root: Path, path: Path) -> str:
    """Return ``path`` relative to ``root`` as a manifest name, comparing absolute paths without resolving links.

    Raises:
        DestError: If ``path`` is not below ``root`` or the name cannot be listed (a line break).
    """
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    name = Path(relative).as_posix()
    why = name_problem(name)
    if why:
        raise DestError(f"{path}: cannot be listed in {root / MANIFEST_NAME}: {name!r} {why}")
    return name


def write_manifest(root: Path, names: Iterable[str]) -> None:
    """Write the list into ``root`` (the manifest itself first, then ``names`` in order, each once)."""
    ordered = list(dict.fromkeys([MANIFEST_NAME, *names]))
    (root / MANIFEST_NAME).write_text("".join(f"{name}\n" for name in ordered), encoding="utf-8")


def record_written(root: Path, paths: Iterable[Path]) -> None:
    """Add files below ``root`` to its list, so a later `prepare` run may replace exactly those.

    Raises:
        DestError: If a path is not a plain path inside ``root``; nothing is written then.
    """
    new = [relative_name(root, Path(p)) for p in paths]
    write_manifest(root, [*read_manifest(root), *new])


def check_listable_names(names: Iterable[str]) -> None:
    """Refuse file names that the one-name-a-line lists (``prepare_files.txt``, ``splits/*.txt``) cannot hold.

    Raises:
        DestError: Naming the first such name; nothing was deleted or written.
    """
    bad = [name for name in names if not is_one_line(name)]
    if bad:
        raise DestError(
            f"{len(bad)} file name(s) contain a line break, e.g. {bad[0]!r}: {MANIFEST_NAME} and splits/*.txt list "
            "one name a line (as Ultralytics' list files do) and cannot hold them; rename those files. Nothing was "
            "deleted or written"
        )


def entries_below(dest: Path, skip: set[str]) -> Iterator[str]:
    """Yield every file, link and special entry below ``dest`` as a relative name, not entering ``skip`` folders.

    Links are listed as one entry and never entered.
    """
    for folder, subfolders, files in os.walk(dest):
        here = Path(folder)
        links = [d for d in subfolders if (here / d).is_symlink()]
        subfolders[:] = [
            d for d in subfolders if d not in links and (here / d).relative_to(dest).as_posix() not in skip
        ]
        for name in (*files, *links):
            yield (here / name).relative_to(dest).as_posix()


def is_label_cache(name: str) -> bool:
    """Return True for Ultralytics' ``labels/<split>.cache`` (neither recorded nor foreign: Ultralytics rebuilds it)."""
    return name.startswith("labels/") and name.endswith(LABEL_CACHE_SUFFIX) and name.count("/") == 1


def check_dest(dest: Path) -> list[str]:
    """Check that ``dest`` may receive a (re-)run, deleting and writing nothing.

    Files an earlier run recorded may be replaced. Anything else below ``dest`` - a file the user put there, or the
    output of an older version that kept no list - is foreign. Not foreign: Ultralytics' label caches, this tool's
    scratch folder ``.prepare-work`` and the ``.extracted`` scratch folder of older versions.

    Returns:
        The names the list records (empty for a new or empty folder).

    Raises:
        DestError: If the list names paths outside ``dest`` or through a link, or ``dest`` holds foreign files.
    """
    recorded = read_manifest(dest)
    skip = {WORK_DIR_NAME, LEGACY_EXTRACT_DIR_NAME} if recorded else {WORK_DIR_NAME}
    known = set(recorded)
    foreign = [name for name in entries_below(dest, skip) if name not in known and not is_label_cache(name)]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise DestError(
            f"--dest {dest} holds {len(foreign)} file(s) that no earlier scsa-yolo prepare run recorded in "
            f"{MANIFEST_NAME} ({shown}); nothing was deleted. Use an empty or new folder, or move those files away"
        )
    return recorded


def remove_recorded(root: Path, names: Iterable[str]) -> list[str]:
    """Delete the recorded files below ``root`` (links as links, never followed), then the folders they leave empty.

    Returns:
        Names of entries below ``root`` that were not recorded and so were left in place.
    """
    names = sorted(set(names))
    folders = set()
    for name in names:
        path = root / name
        if link_on_the_way(root, name):
            continue
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            continue
        if not stat.S_ISDIR(mode):
            path.unlink()
        folders.update(p for p in path.parents if p != root and root in p.parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):  # deepest first; only empty ones go
        if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
            folder.rmdir()
    return list(entries_below(root, set())) if root.is_dir() else []
