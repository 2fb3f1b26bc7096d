"""gfd.download against a local HTTP server on 127.0.0.1 (port 0): resume with Range after a dropped
connection, a server without Range support, bad checksums, size caps; and safe extraction of
hostile zip / tar archives made here (zip-slip, absolute paths, links, devices, size and count caps)."""
import errno
import hashlib
import http.server
import io
import os
import shutil
import socket
import stat
import tarfile
import threading
import zipfile

import pytest

from gfd import archive as arc
from gfd import download as dl

from gfd.cli import main as cli_main


def run_download(argv):
    """``python -m gfd download ...`` (the one command line of the course)."""
    return cli_main(["download", *argv])

PAYLOAD = bytes(range(256)) * 1200          # 300 KiB, several read chunks
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; ``server.drop_after`` bytes then a dropped connection (once per
    count in ``server.drops``); ``server.ranges`` False ignores Range headers."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):            # keep the test output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append({"path": self.path, "range": self.headers.get("Range")})
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.ranges:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.drops > 0:
            srv.drops -= 1
            self.wfile.write(body[: srv.drop_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.files, srv.requests, srv.drops, srv.drop_after, srv.ranges = {}, [], 0, 100_000, True
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def fetch(url, dest, **kw):
    kw = {"timeout": 5, "retry_wait": 0, "progress": False, "log": lambda m: None, **kw}
    return dl.download(url, dest, **kw)


# --------------------------------------------------------------------------------------------------
# download
# --------------------------------------------------------------------------------------------------

def test_download_checks_the_sha256_and_skips_a_finished_file(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    path = fetch(server.url + "/a.bin", tmp_path, sha256=SHA)
    assert path == tmp_path / "a.bin" and path.read_bytes() == PAYLOAD
    assert not (tmp_path / "a.bin.part").exists()
    fetch(server.url + "/a.bin", tmp_path, sha256=SHA)
    assert len(server.requests) == 1                       # the finished file is not fetched again


def test_an_interrupted_download_keeps_the_part_and_resumes_with_range(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.drops = 1
    with pytest.raises(dl.DownloadError, match="run the same command again to resume"):
        fetch(server.url + "/a.bin", tmp_path / "a.bin", sha256=SHA, retries=0)
    part = tmp_path / "a.bin.part"
    assert 0 < part.stat().st_size < len(PAYLOAD) and not (tmp_path / "a.bin").exists()
    have = part.stat().st_size
    fetch(server.url + "/a.bin", tmp_path / "a.bin", sha256=SHA, retries=0)
    assert server.requests[-1]["range"] == f"bytes={have}-"
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD and not part.exists()


def test_retries_resume_within_one_call(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.drops, server.drop_after = 2, 50_000
    fetch(server.url + "/a.bin", tmp_path / "a.bin", sha256=SHA, retries=3)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == [None, "bytes=50000-", "bytes=100000-"]


def test_a_server_without_range_support_restarts_from_zero(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    server.ranges = False
    (tmp_path / "a.bin.part").write_bytes(b"\xff" * 1000)      # a stale prefix that must not survive
    logs = []
    fetch(server.url + "/a.bin", tmp_path / "a.bin", sha256=SHA, log=logs.append)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD
    assert server.requests[0]["range"] == "bytes=1000-"
    assert any("does not support Range" in m for m in logs)


def test_a_complete_part_is_finished_on_http_416(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD)
    fetch(server.url + "/a.bin", tmp_path / "a.bin", sha256=SHA)
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_a_bad_checksum_deletes_the_file_and_says_so(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    with pytest.raises(dl.ChecksumError, match="deleted") as err:
        fetch(server.url + "/a.bin", tmp_path / "a.bin", sha256="0" * 64)
    assert SHA in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_size_cap_404_and_non_http_urls_are_refused(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    with pytest.raises(dl.DownloadError, match="over the limit"):
        fetch(server.url + "/a.bin", tmp_path / "a.bin", max_bytes=1000)
    with pytest.raises(dl.DownloadError, match="HTTP 404"):
        fetch(server.url + "/missing.bin", tmp_path / "m.bin")
    with pytest.raises(dl.DownloadError, match="only http"):
        fetch("file:///etc/passwd", tmp_path / "p")
    with pytest.raises(dl.DownloadError, match="64 hex"):
        fetch(server.url + "/a.bin", tmp_path / "a.bin", sha256="abc")


# --------------------------------------------------------------------------------------------------
# extraction
# --------------------------------------------------------------------------------------------------

def make_zip(path, members):
    """members: (name, bytes) or (name, bytes, unix mode)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, *mode in members:
            info = zipfile.ZipInfo(name)
            if mode:
                info.external_attr = mode[0] << 16
            zf.writestr(info, data)
    return path


class Special:
    """A tar member that is no regular file: a link, a device, a FIFO."""

    def __init__(self, type, link=""):
        self.type, self.link = type, link


def make_tar(path, members, mode="w:gz"):
    """members: (name, bytes) or (name, Special(tarfile type, linkname))."""
    with tarfile.open(path, mode) as tf:
        for name, data, *link in members:
            info = tarfile.TarInfo(name)
            if isinstance(data, Special):
                info.type, info.linkname = data.type, data.link
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


def test_good_zip_and_tar_archives_are_extracted(tmp_path):
    good = [("top/a.txt", b"alpha"), ("top/sub/b.png", b"\x89PNG beta"), ("./top/c.txt", b"c")]
    z = dl.safe_extract(make_zip(tmp_path / "g.zip", good), tmp_path / "z", progress=False, log=lambda m: None)
    t = dl.safe_extract(make_tar(tmp_path / "g.tar.gz", good), tmp_path / "t", progress=False, log=lambda m: None)
    for root in (z, t):
        assert (root / "top/a.txt").read_bytes() == b"alpha"
        assert (root / "top/sub/b.png").read_bytes() == b"\x89PNG beta"
        assert sorted(p.name for p in root.rglob("*")) == ["a.txt", "b.png", "c.txt", "sub", "top"]
    assert not list(tmp_path.glob(".*extracting"))


@pytest.mark.parametrize("kind, members, message", [
    ("zip", [("ok.txt", b"x"), ("../evil.txt", b"pwned")], "zip-slip"),
    ("zip", [("a/../../evil.txt", b"pwned")], "zip-slip"),
    ("zip", [("/abs/evil.txt", b"pwned")], "absolute"),
    ("zip", [("C:/evil.txt", b"pwned")], "absolute"),
    ("zip", [("..\\evil.txt", b"pwned")], "zip-slip"),
    ("zip", [("link", b"/etc/passwd", stat.S_IFLNK | 0o777)], "symbolic link"),
    ("zip", [("fifo", b"", stat.S_IFIFO | 0o644)], "not a regular file"),
    ("tar", [("ok.txt", b"x"), ("../evil.txt", b"pwned")], "zip-slip"),
    ("tar", [("/tmp/evil.txt", b"pwned")], "absolute"),
    ("tar", [("link", Special(tarfile.SYMTYPE, "/etc/passwd"))], "symbolic link"),
    ("tar", [("ok.txt", b"x"), ("hard", Special(tarfile.LNKTYPE, "ok.txt"))], "hard link"),
    ("tar", [("dev", Special(tarfile.CHRTYPE))], "device"),
    ("tar", [("fifo", Special(tarfile.FIFOTYPE))], "FIFO"),
    ("tar", [("a.txt", b"1"), ("a.txt", b"2")], "twice"),
    ("tar", [("a", b"file"), ("a/b", b"under a file")], "both a file and a folder"),
])
def test_hostile_archives_are_refused_before_anything_is_written(tmp_path, kind, members, message):
    make = make_zip if kind == "zip" else make_tar
    archive = make(tmp_path / f"bad.{'zip' if kind == 'zip' else 'tar.gz'}", members)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(dl.UnsafeArchiveError, match=message):
        dl.safe_extract(archive, work / "out", progress=False)
    assert list(work.iterdir()) == []                       # no target, no temporary folder
    assert not (tmp_path / "evil.txt").exists()


def test_size_and_file_count_caps(tmp_path):
    archive = make_zip(tmp_path / "big.zip", [(f"f{i}.bin", b"\0" * 10_000) for i in range(5)])
    with pytest.raises(dl.UnsafeArchiveError, match="over the limit of 40000"):
        dl.safe_extract(archive, tmp_path / "a", max_bytes=40_000, progress=False)
    with pytest.raises(dl.UnsafeArchiveError, match="more than 4 files and folders, over the limit"):
        dl.safe_extract(archive, tmp_path / "b", max_files=4, progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    dl.safe_extract(archive, tmp_path / "c", max_bytes=50_000, max_files=5, progress=False, log=lambda m: None)
    assert len(list((tmp_path / "c").iterdir())) == 5


def test_a_member_bigger_than_its_header_is_stopped(tmp_path):
    data = b"\0" * 100_000
    archive = tmp_path / "lie.zip"
    make_zip(archive, [("x.bin", data)])
    raw = bytearray(archive.read_bytes())             # the central directory's size field says 10 bytes
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24: cd + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    with pytest.raises(dl.ArchiveError):
        dl.safe_extract(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*extracting"))


def test_extraction_refuses_a_non_empty_target_and_non_archives(tmp_path):
    archive = make_zip(tmp_path / "g.zip", [("a.txt", b"a")])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(dl.ArchiveError, match="not an empty folder"):
        dl.safe_extract(archive, tmp_path / "full", progress=False)
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    (tmp_path / "x.7z").write_bytes(b"7z\xbc\xaf\x27\x1c rest")
    with pytest.raises(dl.ArchiveError, match="neither a zip nor a tar"):
        dl.safe_extract(tmp_path / "x.7z", tmp_path / "y", progress=False)


def test_cli_fetch_and_extract_through_the_server(server, tmp_path, capsys):
    archive = make_zip(tmp_path / "src.zip", [("set/0_real/a.png", b"a"), ("set/1_fake/b.png", b"b")])
    data = archive.read_bytes()
    server.files["/ds.zip"] = data
    out = tmp_path / "dl"
    rc = run_download(["fetch", server.url + "/ds.zip", "--out", str(out), "--extract", "--no-progress",
                  "--sha256", hashlib.sha256(data).hexdigest(), "--timeout", "5"])
    assert rc == 0
    assert (out / "ds.zip").read_bytes() == data
    assert (out / "ds" / "set" / "1_fake" / "b.png").read_bytes() == b"b"
    assert run_download(["fetch", server.url + "/ds.zip", "--out", str(tmp_path / "x"), "--sha256", "1" * 64,
                    "--no-progress", "--timeout", "5", "--retries", "0"]) == 2
    assert "sha256" in capsys.readouterr().err


def test_the_sources_registry_marks_every_url_untested(capsys):
    assert run_download(["list"]) == 0
    text = capsys.readouterr().out
    assert "NOT TESTED HERE" in text
    for s in dl.SOURCES.values():
        assert not s.tested_here and s.name in text
        assert s.url == "" or s.url.startswith(("http://", "https://"))
        if s.url:
            assert f"{s.url}  (not tested here)" in text
    assert run_download(["fetch", "celeba", "--out", "/nonexistent-never-used"]) == 2     # no direct URL: says where
    assert "mmlab.ie.cuhk.edu.hk" in capsys.readouterr().err
    assert dl.parse_size("200G") == 200 * 2**30 and dl.parse_size("1.5K") == 1536


# --------------------------------------------------------------------------------------------------
# limits read from the headers: ratio, free space, streaming member count; a full disk
# --------------------------------------------------------------------------------------------------

BOMB_BYTES = 72 * 2**20                # just past the size where the ratio starts to count (asserted below)


def make_zip_bomb(path):
    """A real zip bomb in miniature: 72 MiB of zeros, deflated to ~70 KB (a ratio of ~1000)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("zeros.bin", "w") as f:
            for _ in range(BOMB_BYTES // 2**20):
                f.write(bytes(2**20))
    assert path.stat().st_size * 200 < BOMB_BYTES
    return path


class Zeros(io.RawIOBase):
    def __init__(self, n):
        self.left = n

    def readable(self):
        return True

    def readinto(self, buf):
        k = min(len(buf), self.left)
        buf[:k] = bytes(k)
        self.left -= k
        return k


def test_a_small_zip_bomb_is_refused_by_its_ratio_from_the_headers(tmp_path, monkeypatch, capsys):
    bomb = make_zip_bomb(tmp_path / "bomb.zip")
    tbomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(tbomb, "w:gz") as tf:
        info = tarfile.TarInfo("zeros.bin")
        info.size = BOMB_BYTES
        tf.addfile(info, io.BufferedReader(Zeros(BOMB_BYTES)))
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda *a, **k: pytest.fail("a member was decompressed"))
    monkeypatch.setattr(tarfile.TarFile, "extractfile", lambda *a, **k: pytest.fail("a member was decompressed"))
    work = tmp_path / "work"
    work.mkdir()
    for archive in (bomb, tbomb):
        with pytest.raises(dl.UnsafeArchiveError, match=r"times its size, over the limit of 100 times") as err:
            dl.safe_extract(archive, work / "out", progress=False)          # the default limits
        assert str(archive) in str(err.value) and "--max-ratio" in str(err.value)
        assert list(work.iterdir()) == []
    assert run_download(["extract", str(bomb), "--out", str(work / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(bomb) in err and "--max-ratio" in err
    assert list(work.iterdir()) == []
    assert dl.RATIO_FREE_BYTES < BOMB_BYTES
    for bad in ("-1", "nan", "inf", "many"):                 # a ratio limit is a number >= 0 (0: none)
        with pytest.raises(SystemExit):
            run_download(["extract", str(bomb), "--out", str(work / "out"), "--max-ratio", bad])


def test_an_archive_bigger_than_the_free_space_is_refused(tmp_path, monkeypatch, capsys):
    archive = make_zip(tmp_path / "five.zip", [(f"f{i}.bin", b"\0" * 10_000) for i in range(5)])
    seen = []

    def disk_usage(path):
        seen.append(path)
        return shutil._ntuple_diskusage(10**9, 10**9 - 30_000, 30_000)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(dl.UnsafeArchiveError, match="has only 30000 bytes free") as err:
        dl.safe_extract(archive, work / "new" / "out", progress=False)
    assert str(archive) in str(err.value) and "extract elsewhere" in str(err.value)
    assert seen == [work]                  # the nearest existing folder of the target
    assert list(work.iterdir()) == []
    assert run_download(["extract", str(archive), "--out", str(work / "out"), "--no-progress"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 0, 50_000))
    dl.safe_extract(archive, work / "out", progress=False, log=lambda m: None)   # exactly fits
    assert len(list((work / "out").iterdir())) == 5


def test_a_tar_with_too_many_members_is_refused_while_streaming(tmp_path, monkeypatch):
    archive = make_tar(tmp_path / "many.tar", [(f"d/f{i}.txt", b"x") for i in range(200)], mode="w")
    held = [0]                                            # the most members a TarFile held in memory
    next_member = tarfile.TarFile.next

    def counting_next(self):
        member = next_member(self)
        held[0] = max(held[0], len(self.members))
        return member

    monkeypatch.setattr(tarfile.TarFile, "next", counting_next)
    monkeypatch.setattr(tarfile.TarFile, "getmembers", lambda self: pytest.fail("every header was parsed"))
    with pytest.raises(dl.UnsafeArchiveError, match="more than 10 files and folders"):
        dl.safe_extract(archive, tmp_path / "out", max_files=10, progress=False)
    assert held[0] == 11                                  # stopped at the 11th member, not after 200
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*extracting"))
    dl.safe_extract(archive, tmp_path / "ok", max_files=200, progress=False, log=lambda m: None)
    assert len(list((tmp_path / "ok" / "d").iterdir())) == 200


class FailingWrites:
    """``open`` for gfd.download whose files raise ``error`` on the ``after``-th write."""

    def __init__(self, error, after):
        self.error, self.after, self.writes = error, after, 0

    def __call__(self, path, mode="r", *args, **kw):
        f = open(path, mode, *args, **kw)
        if "r" in mode:
            return f
        outer = self

        class Writer:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()

            def write(self, data):
                outer.writes += 1
                if outer.writes >= outer.after:
                    f.write(data[: len(data) // 2])    # a full disk takes part of the block
                    raise outer.error
                return f.write(data)

            def __getattr__(self, name):
                return getattr(f, name)

        return Writer()


def test_a_full_disk_during_extraction_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    archive = make_zip(tmp_path / "set.zip", [(f"set/f{i}.bin", bytes([i]) * 5000) for i in range(4)])
    monkeypatch.setattr(arc, "open", FailingWrites(OSError(errno.ENOSPC, "No space left on device"), after=3), raising=False)
    with pytest.raises(dl.ArchiveError, match="disk is full") as err:
        dl.safe_extract(archive, tmp_path / "out", progress=False)
    assert str(archive) in str(err.value) and "partial output was removed" in str(err.value)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*extracting"))
    monkeypatch.setattr(arc, "open", FailingWrites(OSError(errno.ENOSPC, "No space left on device"), after=3), raising=False)
    assert run_download(["extract", str(archive), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*extracting"))
    # Ctrl-C in the middle keeps the same guarantee: no target, no temporary folder
    monkeypatch.setattr(arc, "open", FailingWrites(KeyboardInterrupt(), after=3), raising=False)
    with pytest.raises(KeyboardInterrupt):
        dl.safe_extract(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*extracting"))
    monkeypatch.undo()
    dl.safe_extract(archive, tmp_path / "out", progress=False, log=lambda m: None)   # the rerun works
    assert (tmp_path / "out" / "set" / "f3.bin").read_bytes() == bytes([3]) * 5000


def test_a_full_disk_during_a_download_stops_at_once_and_keeps_the_part(server, tmp_path, monkeypatch):
    server.files["/a.bin"] = PAYLOAD
    monkeypatch.setattr(dl, "open", FailingWrites(OSError(errno.ENOSPC, "No space left on device"), after=1), raising=False)
    with pytest.raises(dl.DownloadError, match="disk is full") as err:
        fetch(server.url + "/a.bin", tmp_path / "a.bin", retries=3)
    assert len(server.requests) == 1                        # a retry cannot make space
    part = tmp_path / "a.bin.part"
    assert part.stat().st_size > 0 and str(part) in str(err.value)
    monkeypatch.undo()
    have = part.stat().st_size
    fetch(server.url + "/a.bin", tmp_path / "a.bin", sha256=SHA)   # resumes once there is space
    assert server.requests[-1]["range"] == f"bytes={have}-"
    assert (tmp_path / "a.bin").read_bytes() == PAYLOAD


def test_fetch_out_a_file_is_one_line_before_any_request(server, tmp_path, capsys):
    server.files["/a.bin"] = PAYLOAD
    afile = tmp_path / "afile"
    afile.write_text("mine")
    for out in (afile, afile / "sub"):
        assert run_download(["fetch", server.url + "/a.bin", "--out", str(out), "--no-progress",
                             "--timeout", "5"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and "is a file, not a folder" in err[0]
        assert str(afile) in err[0] and ".part" not in err[0]
    assert server.requests == [] and afile.read_text() == "mine"


def paths_in(message):
    return [w.rstrip(";:,.)") for w in message.split() if w.startswith("/")]


def test_download_failures_name_only_files_that_exist(server, tmp_path):
    server.files["/a.bin"] = PAYLOAD
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    dest = tmp_path / ("a" * (name_max - 2))               # fits, but its .part does not
    with pytest.raises(dl.DownloadError) as err:
        fetch(server.url + "/a.bin", dest, retries=2)
    assert server.requests == [] and ".part" not in str(err.value)
    assert all(os.path.exists(p) for p in paths_in(str(err.value))), str(err.value)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    closed = f"http://127.0.0.1:{sock.getsockname()[1]}/a.bin"
    sock.close()                                            # nothing listens there: connection refused
    with pytest.raises(dl.DownloadError, match="failed after 1 attempt") as err:
        fetch(closed, tmp_path / "b.bin", retries=0)
    assert ".part" not in str(err.value) and "nothing was kept" in str(err.value)
    assert list(tmp_path.iterdir()) == []
