"""Safe extraction of zip and tar archives (the paper's data sets come as archives): standard
library only (``zipfile``, ``tarfile``).

Every member is checked before anything is written, and the
archive is refused (:class:`UnsafeArchiveError`, nothing written) if a member name is absolute,
has a drive letter or a ``..`` component (zip-slip), is a symlink, hard link, device, FIFO or any
other non-regular type, or appears twice.  The declared sizes and the number of entries are
added up while the members are read, and the archive is refused as soon as they pass a limit:
more than ``max_files`` entries (files and folders), more than ``max_bytes`` bytes, more than
``max_ratio`` times the archive's own size once past ``RATIO_FREE_BYTES`` (a decompression bomb:
a 1 MB zip of zeros declares 1 GiB), or more than the free space where the target is made
(``shutil.disk_usage``).  A tar is read one header at a time, so a tar with millions of members
is refused after ``max_files + 1`` headers, not after all of them are parsed and held in memory.
Files are written with ordinary permissions (no set-uid bits, no owners) into a temporary folder
next to the target, which is renamed into place at the end; the bytes written are counted again
while writing, so an archive that lies about its sizes is stopped at the cap too.  Whatever stops
the extraction (a refusal, a corrupt member, a full disk, Ctrl-C) removes the temporary folder, so
the target is either complete or absent; a full disk or another write error ends in one
:class:`ArchiveError` line.
"""
from __future__ import annotations

import errno
import gzip
import lzma
import os
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable

DEFAULT_MAX_BYTES = 200 * 2**30          # 200 GiB: the ForenSynths training set fits, a zip bomb does not
DEFAULT_MAX_FILES = 2_000_000
DEFAULT_MAX_RATIO = 100.0                # extracted / archive bytes: images and most data sets are ~1-10
RATIO_FREE_BYTES = 64 * 2**20            # an archive extracting to at most this is never refused for its ratio
CHUNK = 1 << 20
_EXTRACT_MARKER = ".gfd-extract-partial"


class ArchiveError(ValueError):
    """An archive that could not be extracted: one line naming the archive and the fix."""


class UnsafeArchiveError(ArchiveError):
    """An archive refused before anything was written (unsafe member, or over a limit)."""



def _safe_member_path(name: str, archive: Path) -> PurePosixPath | None:
    """The relative path a member may be written to; None for the archive's root ("./");
    :class:`UnsafeArchiveError` for an absolute path, a drive letter, ``..`` or a NUL byte."""
    unsafe = name.replace("\\", "/")
    if "\x00" in unsafe:
        raise UnsafeArchiveError(f"{archive}: member {name!r} has a NUL byte in its name; refusing the archive")
    if unsafe.startswith("/") or re.match(r"^[A-Za-z]:", unsafe):
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path; refusing the archive "
                                 f"(nothing was extracted)")
    parts = [p for p in unsafe.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{archive}: member {name!r} would be written outside the target folder "
                                 f"('..' in its path, a 'zip-slip'); refusing the archive (nothing was extracted)")
    return PurePosixPath(*parts) if parts else None


class _Budget:
    """Running totals of an archive's entries and declared sizes, checked after every member so that
    an archive is refused as soon as it passes a limit (before anything is written, and for a tar
    before the rest of its headers are read).  The limits: ``max_files`` entries (files and folders);
    ``max_bytes``; ``max_ratio`` times the archive's size once the total passes ``RATIO_FREE_BYTES``
    (``None`` or 0: no ratio limit); the free space of the file system the target is made on."""

    def __init__(self, archive: Path, target: Path, max_bytes: int, max_files: int, max_ratio: float | None):
        self.archive, self.max_bytes, self.max_files, self.max_ratio = archive, max_bytes, max_files, max_ratio
        self.archive_size = max(archive.stat().st_size, 1)
        self.where = next(a for a in (target, *target.parents) if a.exists())   # the target is made beside it
        self.free = shutil.disk_usage(self.where).free
        self.entries = self.total = 0

    def add(self, size: int) -> None:
        self.entries += 1
        self.total += size
        archive, total = self.archive, self.total
        if self.entries > self.max_files:
            raise UnsafeArchiveError(f"{archive} holds more than {self.max_files} files and folders, over the "
                                     f"limit (raise --max-files if this is expected); nothing was extracted")
        if total > self.max_bytes:
            raise UnsafeArchiveError(f"{archive} would extract to at least {total} bytes, over the limit of "
                                     f"{self.max_bytes} (raise --max-size if this is expected); nothing was extracted")
        if self.max_ratio and total > RATIO_FREE_BYTES and total > self.max_ratio * self.archive_size:
            raise UnsafeArchiveError(
                f"{archive} ({self.archive_size} bytes) would extract to at least {total} bytes, "
                f"{total / self.archive_size:.0f} times its size, over the limit of {self.max_ratio:g} times "
                f"(a decompression bomb?); nothing was extracted. If you trust it, raise --max-ratio")
        if total > self.free:
            raise UnsafeArchiveError(
                f"{archive} would extract to at least {total} bytes, but {self.where} has only {self.free} "
                f"bytes free; free some space or extract elsewhere (--out); nothing was extracted")


def _plan_zip(zf: zipfile.ZipFile, archive: Path, budget: _Budget) -> list[tuple[PurePosixPath, bool, int, object]]:
    plan = []
    for info in zf.infolist():
        path = _safe_member_path(info.filename, archive)
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link; links are not "
                                     f"extracted, refusing the archive (nothing was extracted)")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is not a regular file or folder "
                                     f"(mode {oct(mode)}); refusing the archive (nothing was extracted)")
        is_dir = info.is_dir() or kind == stat.S_IFDIR
        budget.add(0 if is_dir else info.file_size)
        if path is not None:
            plan.append((path, is_dir, info.file_size, info))
    return plan


def _plan_tar(tf: tarfile.TarFile, archive: Path, budget: _Budget) -> list[tuple[PurePosixPath, bool, int, object]]:
    """The tar's members, read one header at a time (iterating the TarFile, not ``getmembers()``, which
    parses every header first), so that a limit stops the reading at the member that passes it."""
    plan = []
    for member in tf:
        path = _safe_member_path(member.name, archive)
        if member.issym() or member.islnk():
            raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a {'symbolic' if member.issym() else 'hard'} "
                                     f"link (to {member.linkname!r}); links are not extracted, refusing the "
                                     f"archive (nothing was extracted)")
        if not (member.isreg() or member.isdir()):
            raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a device, FIFO or other special file; "
                                     f"refusing the archive (nothing was extracted)")
        budget.add(member.size if member.isreg() else 0)
        if path is not None:
            plan.append((path, member.isdir(), member.size if member.isreg() else 0, member))
    return plan


def _check_plan(plan, archive: Path) -> None:
    """Refuse a path that appears twice, or that is both a file and a folder."""
    seen: dict[PurePosixPath, bool] = {}
    for path, is_dir, _, _ in plan:
        if path in seen and not (is_dir and seen[path]):
            raise UnsafeArchiveError(f"{archive}: member {str(path)!r} appears twice; refusing the archive")
        seen[path] = is_dir
    for path, is_dir in seen.items():
        for parent in path.parents:
            if seen.get(parent) is False:
                raise UnsafeArchiveError(f"{archive}: {str(parent)!r} is both a file and a folder; "
                                         f"refusing the archive")


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_files: int = DEFAULT_MAX_FILES, max_ratio: float | None = DEFAULT_MAX_RATIO,
                 progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """Extract a zip or tar (``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``) archive into
    ``target`` (which must not exist or be empty), refusing unsafe archives before writing anything:
    see the module's docstring for the checks and limits (``max_ratio`` ``None`` or 0: no ratio
    limit).  The files go to a temporary folder beside ``target`` that is renamed into place at the
    end and removed on any failure, so ``target`` is complete or absent.  Returns ``target``."""
    from gfd.utils import pbar

    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise ArchiveError(f"archive {archive} does not exist or is not a file")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ArchiveError(f"extraction target {target} exists and is not an empty folder; "
                            f"choose a new folder (nothing was extracted)")
    tmp = target.parent / f".{target.name}.extracting"
    if tmp.exists():
        if not (tmp / _EXTRACT_MARKER).exists():
            raise ArchiveError(f"{tmp} exists and was not made by gfd; remove or rename it")
        shutil.rmtree(tmp)

    corrupt = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile)
    if zipfile.is_zipfile(archive):
        opener, plan_of = zipfile.ZipFile, _plan_zip
    elif tarfile.is_tarfile(archive):
        opener, plan_of = (lambda path: tarfile.open(path, "r:*")), _plan_tar
    else:
        raise ArchiveError(f"{archive} is neither a zip nor a tar archive (a .7z or .rar needs its own tool)")

    written = 0
    made_tmp = False
    try:
        with opener(archive) as container:
            plan = plan_of(container, archive, _Budget(archive, target, max_bytes, max_files, max_ratio))
            _check_plan(plan, archive)                          # nothing is written before this passes
            open_member = container.open if plan_of is _plan_zip else container.extractfile
            tmp.mkdir(parents=True)
            made_tmp = True
            (tmp / _EXTRACT_MARKER).touch()
            for path, is_dir, size, member in pbar(plan, desc=f"extract {archive.name[:30]}", unit="file",
                                                   enabled=progress, leave=False):
                out = tmp.joinpath(*path.parts)
                if is_dir:
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                n = 0
                with open_member(member) as src, open(out, "xb") as f:
                    while block := src.read(CHUNK):
                        n += len(block)
                        written += len(block)
                        if n > size or written > max_bytes:
                            raise UnsafeArchiveError(
                                f"{archive}: member {str(path)!r} holds more bytes than its header says, or the "
                                f"archive passes the size limit of {max_bytes}; refusing the archive")
                        f.write(block)
        (tmp / _EXTRACT_MARKER).unlink()
        if target.exists():
            target.rmdir()
        os.replace(tmp, target)
    except BaseException as err:                                # Ctrl-C too: no half-extracted output
        if made_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, corrupt):
            raise ArchiveError(f"{archive} is corrupt or truncated ({type(err).__name__}: {err}); "
                                f"download it again (nothing was extracted)") from err
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ArchiveError(f"the disk is full: extracting {archive} into {target} stopped after {written} "
                                f"bytes and the partial output was removed; free some space or extract "
                                f"elsewhere (--out), then run the same command again") from err
        if isinstance(err, OSError):
            raise ArchiveError(f"extracting {archive} into {target} failed ({type(err).__name__}: "
                                f"{err.strerror or err}); nothing was extracted, choose another --out or "
                                f"fix the error and run the same command again") from err
        raise
    log(f"extracted {len([p for p in plan if not p[1]])} files ({written} bytes) from {archive} to {target}")
    return target


def archive_stem(path: Path) -> str:
    name = path.name
    for suffix in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)] or "extracted"
    return name + ".extracted"
