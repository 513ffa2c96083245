"""Unpacking downloaded archives safely: nothing an archive holds may land outside the folder it is unpacked into.

The check is lexical (this module's own, the same on every Python version); where ``tarfile`` has the "data"
extraction filter it is applied as well. See ``docs/datasets.md`` ("Archives").
"""

from __future__ import annotations

import lzma
import posixpath
import re
import tarfile
import unicodedata
import zipfile
import zlib
from pathlib import Path

from ..errors import ConversionError


def leaves_folder(name: str) -> bool:
    """Return True if an archive member name is absolute or climbs out of the folder it is extracted into."""
    name = name.replace("\\", "/")
    normal = posixpath.normpath(name)
    return name.startswith("/") or bool(re.match(r"^[A-Za-z]:", name)) or normal == ".." or normal.startswith("../")


def _parts(name: str) -> list[str]:
    """Split an archive path into its components, leaving out empty ones and ``.``."""
    return [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]


def _link_key(name: str) -> str:
    """Compare archive paths as case-insensitive, normalisation-insensitive file systems (macOS, Windows) do."""
    return unicodedata.normalize("NFC", name).casefold()


def _symlink_problem(name: str, target: str, symlinks: set[str]) -> str | None:
    """Say why a symbolic link member is unsafe, or None: its target leaves the folder or passes through a link.

    The target is walked component by component from the link's folder; passing through any symbolic link member of
    the archive (before or after this one: extraction order does not matter to the result) is refused, since ``..``
    after a link follows the link's target, which a lexical check cannot see. A hard link is a plain file, so a target
    that is one is fine (GNU tar stores every second name of a file as a hard link).
    """
    target = target.replace("\\", "/")
    if target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        return "is absolute"
    parts = _parts(posixpath.dirname(name))
    for component in _parts(target):
        if component == "..":
            if not parts:
                return "leaves the extraction folder"
            parts.pop()
        else:
            parts.append(component)
            if _link_key("/".join(parts)) in symlinks:
                return f"passes through the link {'/'.join(parts)}"
    return None


def unsafe_tar_members(members: list[tarfile.TarInfo]) -> list[str]:
    """Name the members of a tar archive that could write outside the folder it is extracted into.

    Refused: absolute names and names with a ``..`` component (after a link, ``..`` climbs from the link's target,
    whatever the name looks like); symbolic links whose target is absolute, climbs out, or passes through any link of
    the archive; hard links to a name that is absolute, has ``..`` or is or passes through a symbolic link; any member
    stored below a link, or written over a symbolic link of the same name (opening it would follow the link); devices
    and FIFOs. Links are collected from the whole archive first, so their order in it does not matter. Paths are
    compared case-insensitively, as on macOS and Windows. The check is lexical, so it needs no file system and behaves
    the same on every Python version; where tarfile has the "data" extraction filter (3.12, and 3.9.17+ / 3.10.12+ /
    3.11.4+) it is applied as well.

    Returns:
        ``"<name>: <why>"`` for each refused member, in archive order.
    """
    symlinks = {_link_key("/".join(_parts(m.name))) for m in members if m.issym()}
    links = symlinks | {_link_key("/".join(_parts(m.name))) for m in members if m.islnk()}
    refused = []
    for member in members:
        parts = _parts(member.name)
        name = "/".join(parts)
        below = [p for p in ("/".join(parts[:i]) for i in range(1, len(parts))) if _link_key(p) in links]
        if leaves_folder(member.name) or ".." in parts:
            refused.append(f"{member.name}: path leaves the extraction folder or contains '..'")
        elif below:
            refused.append(f"{member.name}: stored below a link ({below[0]})")
        elif not member.issym() and _link_key(name) in symlinks:
            refused.append(f"{member.name}: would be written through the symbolic link of the same name")
        elif member.issym():
            why = _symlink_problem(name, member.linkname, symlinks)
            if why:
                refused.append(f"{member.name}: symbolic link to {member.linkname} {why}")
        elif member.islnk():
            target = _parts(member.linkname)
            through = [p for p in ("/".join(target[:i]) for i in range(1, len(target) + 1)) if _link_key(p) in symlinks]
            if leaves_folder(member.linkname) or ".." in target:
                refused.append(f"{member.name}: hard link to {member.linkname} leaves the extraction folder")
            elif through:
                refused.append(f"{member.name}: hard link to {member.linkname} passes through the link {through[0]}")
        elif not (member.isfile() or member.isdir()):
            refused.append(f"{member.name}: device or FIFO member")
    return refused


ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
# What a damaged or truncated archive raises while it is read: tarfile, zipfile and each decompressor have their own
DAMAGED_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError, OSError)


def extract_archive(source: Path, target: Path) -> None:
    """Unpack a .zip or tar archive into ``target``, refusing archives with members that would land outside it.

    Args:
        source: The archive.
        target: Scratch folder (created).

    Raises:
        ConversionError: If the file is no supported archive, cannot be read to its end (a truncated or damaged
            download; what was extracted is removed with the scratch folder), or names every member that would leave
            ``target`` (nothing is extracted then).
    """
    try:
        if zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                refused = [f"{n}: path leaves the extraction folder" for n in archive.namelist() if leaves_folder(n)]
                if not refused:  # zipfile never creates links; it would rename these silently, so refuse them instead
                    archive.extractall(target)
        elif tarfile.is_tarfile(source):
            with tarfile.open(source) as archive:
                members = archive.getmembers()
                refused = unsafe_tar_members(members)
                if not refused and hasattr(tarfile, "data_filter"):
                    archive.extractall(target, members=members, filter="data")
                elif not refused:
                    archive.extractall(target, members=members)  # noqa: S202 (members checked above)
        elif source.name.lower().endswith(ARCHIVE_SUFFIXES):
            raise ConversionError(f"--source {source} cannot be read as an archive: truncated or damaged download?")
        else:
            raise ConversionError(
                f"--source {source} is not a folder or a supported archive ({', '.join(ARCHIVE_SUFFIXES)})"
            )
    except DAMAGED_ARCHIVE_ERRORS as e:  # tarfile's FilterError (the data filter refusing a member) is a TarError
        raise ConversionError(
            f"--source {source}: refused or failed while extracting ({type(e).__name__}: {e}); if the download is "
            "truncated or damaged, fetch it again"
        ) from e
    if refused:
        shown = "; ".join(refused[:5]) + (f"; and {len(refused) - 5} more" if len(refused) > 5 else "")
        raise ConversionError(
            f"--source {source}: refused to extract, {len(refused)} member(s) would be written outside the "
            f"extraction folder: {shown}. Extract it yourself after checking it, and pass the folder"
        )
