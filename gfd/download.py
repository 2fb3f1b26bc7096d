"""Fetch the public data sets of the paper: a resumable, checksummed HTTP(S) download and a safe
extraction of zip and tar archives.  Standard library only (``urllib``, ``zipfile``, ``tarfile``,
``hashlib``).

::

    python -m gfd download list                                  # the registry SOURCES below
    python -m gfd download fetch URL|NAME --out DIR [--sha256 HEX] [--extract]
    python -m gfd download extract ARCHIVE --out DIR [--max-size 200G] [--max-files 2000000] [--max-ratio 100]

**Download** (:func:`download`).  Bytes go to ``<file>.part``; an interrupted download (dropped
connection, time-out, Ctrl-C) keeps the ``.part`` and the next call resumes it with an HTTP
``Range: bytes=N-`` request.  A server that ignores ``Range`` (answers ``200`` instead of ``206``)
makes the download restart from byte 0; that is logged.  Transient failures are retried
``retries`` times, each retry resuming.  Only when the file is complete is its sha256 checked (if
one is given): a mismatch **deletes** the ``.part`` (a resumed download could never repair it) and
raises :class:`ChecksumError`; a match renames ``.part`` to the final name, so a file without
``.part`` is always complete.  A final file that is already there is not downloaded again.  A local
write error (a full disk, a folder that cannot be written) is not retried: it ends in one
:class:`DownloadError` that names only files that exist (the ``.part`` only when it holds bytes).

**Extraction** (:func:`gfd.archive.safe_extract`): every member checked before anything is written,
limits on size, count, compression ratio and free space, the target complete or absent.

``SOURCES`` lists the public data the paper uses, with what the authors' own pages say; **no URL in
it has been tested here** (this machine has no internet access), and where a data set has no
direct, stable URL the field is empty and ``page`` says where to get it.
"""
from __future__ import annotations

import argparse
import errno
import hashlib
import http.client
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from gfd.archive import (CHUNK, DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, DEFAULT_MAX_RATIO,  # noqa: F401
                         RATIO_FREE_BYTES, ArchiveError, UnsafeArchiveError, archive_stem, safe_extract)

USER_AGENT = "gfd-course-download/1"


class DownloadError(ValueError):
    """A download that cannot go on; the message names the URL or file and the fix (an archive that
    cannot be extracted raises :class:`gfd.archive.ArchiveError`)."""


class ChecksumError(DownloadError):
    """The downloaded file's sha256 is not the expected one (the file has been deleted)."""


# --------------------------------------------------------------------------------------------------
# the registry of public sources (Sec. 4.2 and 4.3 of the paper)
# --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """One public data set.  ``url`` is a direct download documented by the authors, or empty
    (then ``page`` says how to get it).  No URL here has been tested from this repository."""

    name: str
    title: str
    used_for: str            # where the paper uses it
    page: str                # the official project page
    url: str = ""            # direct download as documented by the authors ("" = none / not stable)
    size: str = ""           # as stated by the authors; "" = not stated where we looked
    license: str = ""        # as stated by the authors; "" = see the page
    sha256: str = ""         # none of the authors publish one for these archives
    notes: str = ""
    tested_here: bool = False


SOURCES: dict[str, Source] = {s.name: s for s in [
    Source("forensynths-test", "ForenSynths / CNNDetection test set (13 generators)",
           "Sec. 4.3, Table 3: one test set per generator",
           "https://github.com/PeterWang512/CNNDetection",
           url="https://huggingface.co/datasets/sywang/CNNDetection/resolve/main/CNN_synth_testset.zip",
           license="CC BY-NC-SA 4.0 (the repository's LICENSE.txt)",
           notes="URL from the authors' dataset/test/download_testset.sh; zip of <generator>/[<class>/]"
                 "{0_real,1_fake}. Prepare with: python -m gfd prepare detection --test ..."),
    Source("forensynths-train", "ForenSynths / CNNDetection training set (ProGAN, 20 LSUN classes)",
           "Sec. 4.3: GFD-Net trains on ProGAN-airplane vs LSUN-airplane only",
           "https://github.com/PeterWang512/CNNDetection",
           license="CC BY-NC-SA 4.0 (the repository's LICENSE.txt)",
           notes="Google Drive / Box links in the authors' README (no direct URL: Drive needs a "
                 "confirmation page); <class>/{0_real,1_fake}."),
    Source("forensynths-val", "ForenSynths / CNNDetection validation set (held-out ProGAN)",
           "Sec. 4.3: validation of the detection experiment",
           "https://github.com/PeterWang512/CNNDetection",
           license="CC BY-NC-SA 4.0 (the repository's LICENSE.txt)",
           notes="Google Drive link in the authors' README; same layout as the training set."),
    Source("celeba", "CelebA (aligned and cropped faces)",
           "Sec. 4.2.1: real class and GAN training data of the closed world (128 px)",
           "http://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
           license="non-commercial research use only (agreement on the project page)",
           notes="Google Drive / Baidu links on the project page."),
    Source("lsun-bedroom", "LSUN bedroom",
           "Sec. 4.2.1: real class and GAN training data of the open world (128 px)",
           "https://github.com/fyu/lsun",
           url="http://dl.yf.io/lsun/scenes/bedroom_train_lmdb.zip",
           notes="URL built as in the authors' download.py (category 'bedroom', set 'train'); an LMDB "
                 "database, export it to image files with the authors' data.py before gfd prepare."),
    Source("ffhq", "Flickr-Faces-HQ (FFHQ), 1024x1024",
           "Sec. 4.2.2: half of the real class (1024 px); StyleGAN/StyleGAN2-FFHQ samples",
           "https://github.com/NVlabs/ffhq-dataset",
           size="89.1 GB (images1024x1024, 70,000 PNG)",
           license="dataset CC BY-NC-SA 4.0 (NVIDIA); images under their Flickr licences",
           notes="Google Drive; use the authors' download_ffhq.py --images."),
    Source("celeba-hq", "CelebA-HQ",
           "Sec. 4.2.2: half of the real class; ProGAN-CelebA-HQ samples (1024 px)",
           "https://github.com/tkarras/progressive_growing_of_gans",
           license="CelebA's terms for the images (the ProGAN code itself is CC BY-NC 4.0)",
           notes="built from CelebA with the ProGAN repository's dataset tool; the same page links "
                 "pre-trained networks + 100,000 generated PNGs per dataset (Google Drive)."),
    Source("stylegan-ffhq", "StyleGAN and StyleGAN2 pre-trained FFHQ networks / generated images",
           "Sec. 4.2.2: StyleGAN-FFHQ and StyleGAN2-FFHQ classes",
           "https://github.com/NVlabs/stylegan2",
           license="Nvidia Source Code License-NC",
           notes="Google Drive folders 'networks' and '100k-generated-images' on the page; "
                 "StyleGAN (v1): https://github.com/NVlabs/stylegan."),
    Source("seeprettyface", "seeprettyface StyleGAN / StyleGAN2 models (yellow, model, asian star, kid, ...)",
           "Sec. 4.2.2: open world of the 1024 px experiment (Table 2)",
           "http://www.seeprettyface.com/mydataset.html",
           notes="the page given in the paper's footnote 2; no direct URL here."),
    Source("whichfaceisreal", "whichfaceisreal.com images",
           "Sec. 4.3: WFIR test set (included in the ForenSynths test zip)",
           "https://www.whichfaceisreal.com/",
           notes="already part of forensynths-test."),
    Source("gan-128px", "ProGAN, MMDGAN, SNGAN, InfoMaxGAN trained on CelebA and LSUN bedroom",
           "Sec. 4.2.1: the four GAN classes (closed world: -CelebA, open world: -LSUN)",
           "",
           notes="the paper does not say where these models come from. Yu et al.'s GANFingerprints "
                 "(https://github.com/ningyu1991/GANFingerprints) has ProGAN, SNGAN, MMDGAN and CramerGAN "
                 "for CelebA and LSUN bedroom (code; pre-trained models linked in its README); InfoMaxGAN "
                 "is not there. Generate samples per model, then gfd prepare attribution."),
]}


def describe_sources() -> str:
    """The registry as text, one block per source (what ``python -m gfd download list`` prints)."""
    lines = ["Public sources of the paper's data.  NOT TESTED HERE: no URL below was fetched from this "
             "repository; check each page for the current link and terms."]
    for s in SOURCES.values():
        lines += ["", f"{s.name}: {s.title}", f"  used for: {s.used_for}"]
        for key in ("page", "url", "size", "license", "notes"):
            value = getattr(s, key)
            if key == "url":
                value = f"{value}  (not tested here)" if value else "(none: see page / notes)"
            if value:
                lines.append(f"  {key}: {value}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------------------

def sha256_file(path: str | os.PathLike, chunk: int = CHUNK) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _file_name_of(url: str) -> str:
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")
    return name or "download"


_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def download(url: str, dest: str | os.PathLike, *, sha256: str | None = None, retries: int = 3,
             timeout: float = 60.0, max_bytes: int | None = None, retry_wait: float = 2.0,
             progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """Download ``url`` to ``dest`` (a file, or an existing folder to put the URL's file name in).

    Resumes ``dest.part`` with a ``Range`` request; restarts from 0 if the server ignores ``Range``;
    retries ``retries`` times on a dropped connection or time-out; checks ``sha256`` when given
    (mismatch: the ``.part`` is deleted and :class:`ChecksumError` raised); refuses more than
    ``max_bytes``.  Returns the final path.  Raises :class:`DownloadError` with the fix in the message.
    """
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(f"only http(s) URLs can be downloaded, got {url!r}")
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / _file_name_of(url)
    _make_folder(dest.parent, "the folder to download into")
    part = dest.with_name(dest.name + ".part")
    expected = sha256.lower().strip() if sha256 else None
    if expected is not None and not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise DownloadError(f"--sha256 must be 64 hex digits, got {sha256!r}")

    if dest.exists():
        if expected is None:
            log(f"{dest} is already there (no checksum given; delete it to download again)")
            return dest
        actual = sha256_file(dest)
        if actual != expected:
            raise ChecksumError(f"{dest} is already there but its sha256 is {actual}, not {expected}; "
                                f"delete it (or choose another destination) to download it again")
        log(f"{dest} is already there, sha256 ok")
        return dest

    failures = 0
    while True:
        try:
            complete = _fetch_once(url, part, timeout=timeout, max_bytes=max_bytes, progress=progress, log=log)
        except DownloadError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout,
                TimeoutError, OSError) as err:
            if isinstance(err, urllib.error.HTTPError) and err.code < 500 and err.code not in (408, 429):
                raise DownloadError(f"{url}: the server answered HTTP {err.code} {err.reason}; "
                                    f"check the URL (SOURCES lists the authors' pages)") from err
            failures += 1
            have = _size(part)
            if failures > retries:
                raise DownloadError(
                    f"download of {url} failed after {failures} attempt(s) ({type(err).__name__}: {err}); "
                    f"{_kept(part)}") from err
            log(f"{url}: {type(err).__name__}: {err}; {have} bytes so far, retrying "
                f"({failures}/{retries}) with a Range request")
            time.sleep(retry_wait * 2 ** (failures - 1))
            continue
        if complete:
            break
        failures += 1                                     # short body without an exception
        if failures > retries:
            raise DownloadError(f"download of {url} ended early {failures} time(s); {_kept(part)}")
        log(f"{url}: connection closed early; resuming ({failures}/{retries})")
        time.sleep(retry_wait * 2 ** (failures - 1))

    if expected is not None:
        actual = sha256_file(part)
        if actual != expected:
            part.unlink()
            raise ChecksumError(
                f"sha256 of {url} is {actual}, expected {expected}; the downloaded file was deleted "
                f"(resuming could not repair it). Check the URL and the checksum, then download again.")
    os.replace(part, dest)
    log(f"downloaded {dest} ({dest.stat().st_size} bytes{', sha256 ok' if expected else ''})")
    return dest


def _make_folder(folder: Path, what: str) -> None:
    """``mkdir -p folder``, or one :class:`DownloadError` naming ``folder`` (or the file in its way)."""
    if folder.exists() and not folder.is_dir():
        raise DownloadError(f"{what} {folder} is a file, not a folder; give a folder to download into "
                            f"(it is made if missing); nothing was downloaded")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        blocker = next((a for a in folder.parents if a.exists() and not a.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker else (err.strerror or str(err))
        raise DownloadError(f"cannot make {what} {folder}: {why}; choose another folder; "
                            f"nothing was downloaded") from err


def _size(part: Path) -> int:
    """The bytes in ``part``; 0 when it is missing or cannot be looked at."""
    try:
        return part.stat().st_size if part.is_file() else 0
    except OSError:
        return 0


def _kept(part: Path) -> str:
    """What an interrupted download leaves, naming the ``.part`` only when it exists."""
    have = _size(part)
    if have:
        return f"{have} bytes are kept in {part}: run the same command again to resume"
    return "nothing was kept: run the same command again to retry"


def _write_failed(err: OSError, part: Path, url: str) -> DownloadError:
    """One :class:`DownloadError` for a local write error (not retried: a retry cannot fix it)."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(f"the disk is full: no space left to write {url} into {part.parent} "
                             f"({_kept(part).replace(': run', '; free some space and run')})")
    return DownloadError(f"cannot write the download of {url} into the folder {part.parent} "
                         f"({type(err).__name__}: {err.strerror or err}); choose another --out folder; "
                         f"{_kept(part)}")


def _fetch_once(url: str, part: Path, *, timeout: float, max_bytes: int | None, progress: bool,
                log: Callable[[str], None]) -> bool:
    """One HTTP request appending to ``part``; True when the file is complete (its length known and
    reached, or the body ended without a length), False when the body ended early.  A local error
    while opening or writing ``part`` raises :class:`DownloadError` at once (no retry)."""
    from gfd.utils import pbar

    try:
        offset = part.stat().st_size
    except FileNotFoundError:
        offset = 0
    except OSError as err:                               # e.g. a name too long for the file system
        raise _write_failed(err, part, url) from err
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:                    # nothing after `offset`: the part may be whole
            m = re.search(r"/(\d+)\s*$", err.headers.get("Content-Range", "") or "")
            if m and int(m.group(1)) == offset:
                return True
            log(f"{url}: the server refused to resume at byte {offset} (HTTP 416); restarting from 0")
            part.unlink()
            return False
        raise
    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        if status == 206:
            m = _RANGE.search(response.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                log(f"{url}: the server resumed at an unexpected position "
                    f"({response.headers.get('Content-Range')!r}); restarting from 0")
                part.unlink()
                return False
            total = int(m.group(3)) if m.group(3).isdigit() else (offset + length if length is not None else None)
            mode = "ab"
        else:
            if offset:
                log(f"{url}: the server does not support Range requests (HTTP {status}); "
                    f"restarting from byte 0")
            offset, total, mode = 0, length, "wb"
        if max_bytes is not None and total is not None and total > max_bytes:
            raise DownloadError(f"{url} is {total} bytes, over the limit of {max_bytes} bytes "
                                f"(raise --max-size if this is expected)")
        bar = pbar(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                   desc=part.name[:-5][:30], enabled=progress, leave=False)
        size = offset
        try:
            try:
                f = open(part, mode)
            except OSError as err:
                raise _write_failed(err, part, url) from err
            with f:
                while block := response.read(CHUNK):
                    size += len(block)
                    if max_bytes is not None and size > max_bytes:
                        f.close()
                        part.unlink()
                        raise DownloadError(f"{url} sent more than the limit of {max_bytes} bytes; "
                                            f"the partial file was deleted (raise --max-size if expected)")
                    try:
                        f.write(block)
                        f.flush()                 # a full disk shows here, not in the close below
                    except OSError as err:
                        try:
                            f.close()             # closes the file even when its last flush fails
                        except OSError:
                            pass
                        raise _write_failed(err, part, url) from err
                    bar.update(len(block))
        finally:
            bar.close()
    return total is None or size >= total


# --------------------------------------------------------------------------------------------------
# command line: python -m gfd download list|fetch|extract
# --------------------------------------------------------------------------------------------------

def parse_size(text: str) -> int:
    """``123``, ``64K``, ``500M``, ``200G``, ``1T`` (binary units) -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500M, 200G)")
    return int(float(m.group(1)) * 1024 ** " KMGT".index((m.group(2) or " ").upper()))


def parse_ratio(text: str) -> float:
    """A ``--max-ratio``: a finite number >= 0 (0: no ratio limit)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0 <= value < float("inf")):
        raise argparse.ArgumentTypeError(f"not a ratio: {text!r} (a number >= 0, e.g. 100; 0: no limit)")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="{list,fetch,extract}")
    sub.add_parser("list", help="the public sources of the paper's data (URLs not tested here)")

    f = sub.add_parser("fetch", help="resumable download with sha256 check, optionally extracted")
    f.add_argument("what", metavar="URL|NAME", help="an http(s) URL or a name from 'download list'")
    f.add_argument("--out", default=None, help="folder to download into (default data/downloads of the repository)")
    f.add_argument("--sha256", default=None, help="expected sha256; a mismatch deletes the file")
    f.add_argument("--extract", action="store_true",
                   help="then extract the archive safely into OUT/<archive name without extension>")
    f.add_argument("--retries", type=int, default=3, help="retries after a dropped connection (default 3)")
    f.add_argument("--timeout", type=float, default=60.0, help="socket time-out in seconds (default 60)")
    f.add_argument("--max-size", type=parse_size, default=DEFAULT_MAX_BYTES,
                   help="refuse downloads and extractions bigger than this (default 200G)")
    f.add_argument("--max-files", type=int, default=DEFAULT_MAX_FILES,
                   help=f"refuse archives with more files and folders (default {DEFAULT_MAX_FILES})")
    f.add_argument("--max-ratio", type=parse_ratio, default=DEFAULT_MAX_RATIO,
                   help=f"refuse archives extracting to more than this times their size, once past "
                        f"{RATIO_FREE_BYTES >> 20} MiB (default {DEFAULT_MAX_RATIO:g}; 0: no ratio limit)")
    f.add_argument("--no-progress", action="store_true", help="no progress bars")

    x = sub.add_parser("extract", help="extract a local zip / tar archive safely")
    x.add_argument("archive")
    x.add_argument("--out", required=True, help="target folder (must not exist or be empty)")
    x.add_argument("--max-size", type=parse_size, default=DEFAULT_MAX_BYTES, help="size cap (default 200G)")
    x.add_argument("--max-files", type=int, default=DEFAULT_MAX_FILES, help="cap on the files and folders")
    x.add_argument("--max-ratio", type=parse_ratio, default=DEFAULT_MAX_RATIO,
                   help=f"cap on extracted / archive size, once past {RATIO_FREE_BYTES >> 20} MiB "
                        f"(default {DEFAULT_MAX_RATIO:g}; 0: none)")
    x.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``download`` command (what ``python -m gfd download`` calls)."""
    if args.action == "list":
        print(describe_sources())
        return 0
    if args.action == "extract":
        safe_extract(args.archive, args.out, max_bytes=args.max_size, max_files=args.max_files,
                     max_ratio=args.max_ratio, progress=not args.no_progress)
        return 0
    url = args.what
    if not re.match(r"^[a-z][a-z0-9+.-]*://", url, re.IGNORECASE):
        if url not in SOURCES:
            raise DownloadError(f"{url!r} is neither a URL nor a known source; known: {sorted(SOURCES)}")
        source = SOURCES[url]
        if not source.url:
            raise DownloadError(f"source {source.name!r} has no direct download URL: {source.notes} "
                                f"Get it from {source.page or 'the page named in the notes'}.")
        print(f"{source.name}: {source.url}  (URL as documented by the authors, not tested here)")
        url = source.url
    if args.out is None:
        from gfd.utils import data_dir
        out = data_dir() / "downloads"
    else:
        out = Path(args.out)
    _make_folder(out, "--out")                  # a file given as --out: one line, before any request
    path = download(url, out, sha256=args.sha256, retries=args.retries, timeout=args.timeout,
                    max_bytes=args.max_size, progress=not args.no_progress)
    if args.extract:
        safe_extract(path, path.parent / archive_stem(path), max_bytes=args.max_size,
                     max_files=args.max_files, max_ratio=args.max_ratio, progress=not args.no_progress)
    return 0
