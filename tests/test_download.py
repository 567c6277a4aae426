"""The data sources' downloads against a loopback HTTP server and fixtures built here (offline).

gdown treats only drive.google.com links as Google Drive, so the Drive side (which file id, the
resumable output path, what happens to Drive's errors) is checked with a stand-in for
`gdown.download`; plain URLs go through the real gdown against the loopback server.
"""

from __future__ import annotations

import hashlib
import http.server
import io as _io
import os
import socket
import tarfile
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gdown
import numpy as np
import pytest
import requests
import scipy.io
from PIL import Image

from fader.data import formats
from fader.data.sources import celeba as celeba_source
from fader.data.sources import flowers, remote
from tests.conftest import make_raw_celeba

# --- Loopback server --------------------------------------------------------------------------


@dataclass
class FakeServer:
    """Serves `files` by path, honouring Range requests unless told otherwise."""

    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    ignore_range: bool = False
    truncate: dict[str, int] = field(default_factory=dict)  # path -> bytes sent, then hang up
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path?query, Range)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(server: FakeServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            server.requests.append((self.path, self.headers.get("Range")))
            path = urllib.parse.urlsplit(self.path).path
            if path in server.files:
                self._send_body(path, server.files[path])
            else:
                self.send_error(404)

        def _send_body(self, path: str, data: bytes) -> None:
            start = 0
            range_header = self.headers.get("Range")
            if range_header and not server.ignore_range:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if path in server.truncate:  # announce the whole body, send part of it, hang up
                body = body[: server.truncate.pop(path)]
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client hung up first
                pass

    return Handler


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    fake.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _parts(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.part"))


PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes
# gdown reads 512 KiB at a time and loses the chunk that a hang-up cuts short, so the tests of a
# broken transfer need a file of several chunks.
BIG = bytes(range(251)) * 12_000  # 3,012,000 bytes
CUT = 1_500_000  # bytes sent before the server hangs up


# --- A stand-in for gdown.download on Google Drive ----------------------------------------------


@dataclass
class FakeDrive:
    """Replaces `gdown.download`: serves `files` by Drive id, or raises `error`."""

    files: dict[str, bytes] = field(default_factory=dict)
    error: Exception | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, **kwargs: Any) -> str:
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        file_id, is_drive_link = gdown.parse_url.parse_url(kwargs["url"])
        assert is_drive_link and file_id in self.files, kwargs["url"]
        data = self.files[file_id]
        Path(kwargs["output"]).write_bytes(data)  # gdown moves its .part there once complete
        if kwargs["hasher"] is not None:
            kwargs["hasher"].update(data)
        return kwargs["output"]

    def ids(self) -> list[str | None]:
        return [gdown.parse_url.parse_url(c["url"])[0] for c in self.calls]


@pytest.fixture
def drive(monkeypatch: pytest.MonkeyPatch) -> FakeDrive:
    fake = FakeDrive()
    monkeypatch.setattr(gdown, "download", fake)
    return fake


# --- fetch_file on plain URLs (the real gdown) ----------------------------------------------------


def test_md5sum_matches_hashlib(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(PAYLOAD)
    assert remote.md5sum(tmp_path / "f") == _md5(PAYLOAD)


def test_plain_download(server: FakeServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "sub" / "a.bin"
    file = remote.RemoteFile(server.url("/a.bin"), _md5(PAYLOAD))
    assert remote.fetch_file(file, dest, progress=True) == dest
    assert dest.read_bytes() == PAYLOAD
    assert os.listdir(tmp_path / "sub") == ["a.bin"]  # no .part left behind
    assert server.requests == [("/a.bin", None)]


def _cut_short(server: FakeServer, folder: Path) -> tuple[remote.RemoteFile, int]:
    """A first download of BIG that breaks after CUT bytes: the file and its .part's size."""
    server.files["/big.bin"] = BIG
    server.truncate["/big.bin"] = CUT
    file = remote.RemoteFile(server.url("/big.bin"), _md5(BIG))
    with pytest.raises(remote.DownloadError, match=f"received .* announced {len(BIG)} bytes"):
        remote.fetch_file(file, folder / "big.bin", progress=False, retries=0)
    assert not (folder / "big.bin").exists()
    [part] = _parts(folder)
    kept = part.read_bytes()
    assert 0 < len(kept) <= CUT and kept == BIG[: len(kept)]  # a true prefix, kept for resume
    return file, len(kept)


def test_broken_connection_keeps_part_then_resumes(server: FakeServer, tmp_path: Path) -> None:
    file, kept = _cut_short(server, tmp_path)
    remote.fetch_file(file, tmp_path / "big.bin", progress=False, retries=0)  # the next run
    assert (tmp_path / "big.bin").read_bytes() == BIG  # and the md5, fed the kept bytes, matched
    assert server.requests[-1] == ("/big.bin", f"bytes={kept}-")
    assert _parts(tmp_path) == []


def test_retries_resume_within_one_call(server: FakeServer, tmp_path: Path) -> None:
    server.files["/big.bin"] = BIG
    server.truncate["/big.bin"] = CUT
    dest = tmp_path / "big.bin"
    remote.fetch_file(remote.RemoteFile(server.url("/big.bin"), _md5(BIG)), dest, False, 1)
    assert dest.read_bytes() == BIG
    ranges = [r for _, r in server.requests]
    assert len(ranges) == 2 and ranges[0] is None and ranges[1].startswith("bytes=")


def test_server_ignoring_range_restarts(server: FakeServer, tmp_path: Path) -> None:
    file, _ = _cut_short(server, tmp_path)
    server.ignore_range = True  # answers the resume with 200 and the whole file
    remote.fetch_file(file, tmp_path / "big.bin", progress=False, retries=0)
    assert (tmp_path / "big.bin").read_bytes() == BIG
    assert _parts(tmp_path) == []  # the stale .part went, or the next resume would trip on it


def test_changed_file_restarts(server: FakeServer, tmp_path: Path) -> None:
    file, kept = _cut_short(server, tmp_path)
    server.files["/big.bin"] = BIG[: kept - 10]  # now shorter than the .part: answered with 416
    file = file._replace(md5=_md5(BIG[: kept - 10]))
    remote.fetch_file(file, tmp_path / "big.bin", progress=False, retries=0)
    assert (tmp_path / "big.bin").read_bytes() == BIG[: kept - 10]
    assert ("/big.bin", f"bytes={kept}-") in server.requests
    assert _parts(tmp_path) == []


def test_md5_mismatch_deletes_the_file_and_names_both_sums(
    server: FakeServer, tmp_path: Path
) -> None:
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    with pytest.raises(remote.ChecksumError, match=f"md5 {_md5(PAYLOAD)}, expected 0123abcd"):
        remote.fetch_file(remote.RemoteFile(server.url("/a.bin"), "0123abcd"), dest, False)
    assert list(tmp_path.iterdir()) == []


def test_http_404_says_what_to_do(server: FakeServer, tmp_path: Path) -> None:
    dest = tmp_path / "missing.bin"
    url = server.url("/missing.bin")
    with pytest.raises(remote.DownloadError) as info:
        remote.fetch_file(remote.RemoteFile(url, None), dest, progress=False)
    message = str(info.value)
    assert "HTTP 404 Not Found" in message and url in message and f"save it as {dest}" in message
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_says_offline(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    file = remote.RemoteFile(f"http://127.0.0.1:{port}/a.bin", None)
    with pytest.raises(remote.DownloadError, match="no connection.*offline"):
        remote.fetch_file(file, tmp_path / "a.bin", progress=False, retries=0)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_kept_or_replaced_by_md5(server: FakeServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    file = remote.RemoteFile(server.url("/a.bin"), _md5(PAYLOAD))
    dest.write_bytes(PAYLOAD)
    remote.fetch_file(file, dest, progress=False)
    assert server.requests == []  # right md5: nothing fetched
    dest.write_bytes(b"corrupt")
    remote.fetch_file(file, dest, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert len(server.requests) == 1
    dest.write_bytes(b"no published md5: kept as it is")
    remote.fetch_file(file._replace(md5=None), dest, progress=False)
    assert dest.read_bytes() == b"no published md5: kept as it is"
    assert len(server.requests) == 1


# --- Google Drive (gdown.download replaced by FakeDrive) ----------------------------------------


def test_official_files_are_drive_links_by_id() -> None:
    """gdown reads each official URL as a Drive file with the id torchvision / reedscot give."""
    ids = {name: gdown.parse_url.parse_url(r.url) for name, r in celeba_source.CELEBA_FILES.items()}
    assert ids == {
        "img_align_celeba.zip": ("0B7EVK8r0v71pZjFTYXZWM3FlRnM", True),
        formats.ATTR_FILE: ("0B7EVK8r0v71pblRyaVFSWGxPY0U", True),
        formats.PARTITION_FILE: ("0B7EVK8r0v71pY0NSMzRuSXJEVkk", True),
    }
    captions = flowers.FLOWERS_FILES[flowers.FLOWERS_CAPTIONS].url
    assert gdown.parse_url.parse_url(captions) == (flowers.FLOWERS_CAPTIONS_ID, True)
    for name in (flowers.FLOWERS_IMAGES, flowers.FLOWERS_LABELS, flowers.FLOWERS_SETID):
        assert gdown.parse_url.parse_url(flowers.FLOWERS_FILES[name].url) == (None, False)


def _fake_celeba_files(
    root: Path, url: Any = remote.drive_url
) -> tuple[dict[str, bytes], dict[str, remote.RemoteFile]]:
    """A tiny CelebA (6 images): file bytes by name, and a RemoteFile table with their md5s.

    The URLs are `url("id-0")`, `url("id-1")`, `url("id-2")` (Drive links by default).
    """
    folder = make_raw_celeba(root / "src", n=6, size=(36, 44))
    buffer = _io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((folder / formats.IMAGE_DIR).iterdir()):
            archive.write(path, f"{formats.IMAGE_DIR}/{path.name}")
    data = {
        f"{formats.IMAGE_DIR}.zip": buffer.getvalue(),
        formats.ATTR_FILE: (folder / formats.ATTR_FILE).read_bytes(),
        formats.PARTITION_FILE: (folder / formats.PARTITION_FILE).read_bytes(),
    }
    files = {
        name: remote.RemoteFile(url(f"id-{i}"), _md5(b)) for i, (name, b) in enumerate(data.items())
    }
    return data, files


def test_fetch_celeba_from_drive_through_gdown(drive: FakeDrive, tmp_path: Path) -> None:
    data, files = _fake_celeba_files(tmp_path)
    drive.files = {f"id-{i}": content for i, content in enumerate(data.values())}
    raw = tmp_path / "data" / "raw"
    celeba_source.fetch_celeba(raw, None, progress=False, files=files)
    cache = tmp_path / "data" / ".raw.download"
    assert drive.ids() == ["id-0", "id-1", "id-2"]
    assert [c["output"] for c in drive.calls] == [str(cache / name) for name in data]
    assert all(c["resume"] is True and c["quiet"] is True for c in drive.calls)
    assert all(c["use_cookies"] is False for c in drive.calls)
    assert sorted(p.name for p in raw.iterdir()) == sorted(data)
    for name, content in data.items():
        assert (raw / name).read_bytes() == content
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]  # download cache removed


def test_drive_file_with_another_md5_is_refused(drive: FakeDrive, tmp_path: Path) -> None:
    data, files = _fake_celeba_files(tmp_path)
    drive.files = {f"id-{i}": content for i, content in enumerate(data.values())}
    drive.files["id-1"] = b"<html>a page Drive sent instead</html>"
    raw = tmp_path / "data" / "raw"
    with pytest.raises(remote.ChecksumError) as info:
        celeba_source.fetch_celeba(raw, None, progress=False, files=files)
    assert f"expected {files[formats.ATTR_FILE].md5}" in str(info.value)
    assert "celeba_dir" in str(info.value)
    cache = tmp_path / "data" / ".raw.download"
    assert sorted(p.name for p in cache.iterdir()) == [f"{formats.IMAGE_DIR}.zip"]
    assert not raw.exists()


def test_drive_quota_page_lists_manual_steps(drive: FakeDrive, tmp_path: Path) -> None:
    drive.error = gdown.FileURLRetrievalError(
        "Failed to retrieve file url:\n\n\tToo many users have viewed or downloaded this file "
        "recently."
    )
    raw = tmp_path / "data" / "raw"
    with pytest.raises(remote.DownloadError) as info:
        celeba_source.fetch_celeba(raw, None, progress=False)
    message = str(info.value)
    assert "Google Drive refused the download" in message and "Too many users" in message
    assert "celeba_dir" in message
    assert "list_attr_celeba.txt  (md5 75e246fa4810816ffd6ee81facbd244c)" in message
    assert drive.ids() == ["0B7EVK8r0v71pZjFTYXZWM3FlRnM"]
    assert not raw.exists()


def test_fetch_celeba_offline_lists_manual_steps(drive: FakeDrive, tmp_path: Path) -> None:
    drive.error = requests.ConnectionError("Failed to resolve 'drive.google.com'")
    raw = tmp_path / "data" / "raw"
    with pytest.raises(remote.DownloadError) as info:
        celeba_source.fetch_celeba(raw, None, progress=False)
    message = str(info.value)
    assert "no connection" in message and "offline" in message and "celeba_dir" in message
    assert "list_attr_celeba.txt  (md5 75e246fa4810816ffd6ee81facbd244c)" in message
    assert "img_align_celeba.zip" in message
    assert not raw.exists()


def test_failed_download_keeps_the_cache_for_resume(drive: FakeDrive, tmp_path: Path) -> None:
    data, files = _fake_celeba_files(tmp_path)
    drive.files = {f"id-{i}": content for i, content in enumerate(data.values())}
    raw = tmp_path / "data" / "raw"
    cache = tmp_path / "data" / ".raw.download"
    part = cache / f"{formats.IMAGE_DIR}.zipabcdefgh.part"

    def cut_short(**kwargs: Any) -> str:
        drive.calls.append(kwargs)
        part.write_bytes(data[f"{formats.IMAGE_DIR}.zip"][:100])
        raise gdown.exceptions.DownloadError("Download is incomplete: received 100 bytes")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gdown, "download", cut_short)
        with pytest.raises(remote.DownloadError, match="received 100 bytes"):
            celeba_source.fetch_celeba(raw, None, progress=False, files=files)
    assert part.is_file()  # kept for gdown's resume=True
    celeba_source.fetch_celeba(raw, None, progress=False, files=files)
    assert drive.calls[0]["output"] == drive.calls[1]["output"]  # the same place, so it resumes
    assert all(c["resume"] is True for c in drive.calls)
    assert (raw / formats.ATTR_FILE).read_bytes() == data[formats.ATTR_FILE]


def test_fetch_celeba_over_plain_urls(server: FakeServer, tmp_path: Path) -> None:
    data, files = _fake_celeba_files(tmp_path, url=lambda i: server.url(f"/{i}"))
    for i, content in enumerate(data.values()):
        server.files[f"/id-{i}"] = content
    raw = tmp_path / "data" / "raw"
    celeba_source.fetch_celeba(raw, None, progress=False, files=files)
    with zipfile.ZipFile(raw / f"{formats.IMAGE_DIR}.zip") as archive:
        assert f"{formats.IMAGE_DIR}/000001.jpg" in archive.namelist()
    assert (raw / formats.PARTITION_FILE).read_bytes() == data[formats.PARTITION_FILE]
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]


# --- CelebA local copies ------------------------------------------------------------------------


def test_fetch_celeba_links_a_local_copy(tmp_path: Path) -> None:
    src = make_raw_celeba(tmp_path / "copy", n=5, size=(36, 44))
    (src / formats.IMAGE_DIR).rename(src / "img_align_celeba_36x44")  # any img_align_celeba* name
    (src / "img_align_celeba_36x44" / "notes.txt").write_text("not an image")
    files = {
        name: remote.RemoteFile("unused", remote.md5sum(src / name))
        for name in (formats.ATTR_FILE, formats.PARTITION_FILE)
    }
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "stale.txt").write_text("from an older run")
    celeba_source.fetch_celeba(raw, src, progress=False, files=files)
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        [formats.IMAGE_DIR, formats.ATTR_FILE, formats.PARTITION_FILE]
    )
    images = sorted(p.name for p in (raw / formats.IMAGE_DIR).iterdir())
    assert images == [f"{i:06d}.jpg" for i in range(1, 6)]
    assert (raw / formats.IMAGE_DIR / "000001.jpg").samefile(
        src / "img_align_celeba_36x44" / "000001.jpg"
    )
    assert len(formats.read_attributes(raw / formats.ATTR_FILE)) == 5


def test_fetch_celeba_links_a_local_zip(tmp_path: Path) -> None:
    data, files = _fake_celeba_files(tmp_path)
    src = tmp_path / "copy"
    src.mkdir()
    for name, content in data.items():
        (src / name).write_bytes(content)
    celeba_source.fetch_celeba(tmp_path / "raw", src, progress=False, files=files)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(data)


def test_fetch_celeba_refuses_unofficial_txt(tmp_path: Path) -> None:
    src = make_raw_celeba(tmp_path / "copy", n=3, size=(36, 44))
    with pytest.raises(remote.ChecksumError, match="expected 75e246fa.*not the official file"):
        celeba_source.fetch_celeba(tmp_path / "raw", src, progress=False)
    assert not (tmp_path / "raw").exists()


def test_fetch_celeba_names_missing_files(tmp_path: Path) -> None:
    src = tmp_path / "copy"
    src.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        celeba_source.fetch_celeba(tmp_path / "raw", src, progress=False)
    message = str(info.value)
    assert f"expected {src / formats.ATTR_FILE}" in message
    assert f"expected {src / formats.PARTITION_FILE}" in message
    for name in (formats.ATTR_FILE, formats.PARTITION_FILE):
        (src / name).write_text("x")
    (src / formats.IMAGE_DIR).mkdir()  # present but empty: no images
    with pytest.raises(FileNotFoundError, match=r"no CelebA images.*img_align_celeba\.zip"):
        celeba_source.fetch_celeba(tmp_path / "raw", src, progress=False)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        celeba_source.fetch_celeba(tmp_path / "raw", tmp_path / "nowhere", progress=False)
    assert not (tmp_path / "raw").exists()


def test_fetch_celeba_refuses_two_image_folders(tmp_path: Path) -> None:
    src = make_raw_celeba(tmp_path / "copy", n=2, size=(36, 44))
    (src / formats.IMAGE_DIR).rename(src / "img_align_celeba_a")
    (src / "img_align_celeba_b").mkdir()
    (src / "img_align_celeba_b" / "000001.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="several image folders"):
        celeba_source.fetch_celeba(tmp_path / "raw", src, progress=False)


@pytest.mark.celeba
def test_fetch_celeba_from_shared_mini(shared_celeba: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    celeba_source.fetch_celeba(raw, shared_celeba, progress=False)
    assert len(os.listdir(raw / formats.IMAGE_DIR)) == 5000
    assert (
        remote.md5sum(raw / formats.ATTR_FILE) == celeba_source.CELEBA_FILES[formats.ATTR_FILE].md5
    )
    assert len(formats.read_partition(raw / formats.PARTITION_FILE)) == 202_599


# --- Oxford-102 flowers -----------------------------------------------------------------------

# Ten captions per image; the comments give the expected attributes at min_captions = 5.
CAPTIONS = {
    1: ["this flower has pink petals"] * 5 + ["the petals are yellow"] * 4 + ["a flower"],
    # pink 5/10 -> 1, yellow 4/10 -> -1
    2: ["Pink petals, reddish centre"] * 10,  # pink (any case) -> 1; "reddish" is not red
    3: ["red-orange petals"] * 5 + ["pink and pink and PINK"] * 4 + ["green stem"],
    # red 5 -> 1, orange 5 -> 1, pink 4 (once per caption) -> -1
    4: ["white flower"] * 5 + ["it has no colour word"] * 5,  # white -> 1
}
SPLIT = {"trnid": [1, 2], "valid": [3], "tstid": [4]}


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = _io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, _io.BytesIO(content))
    return buffer.getvalue()


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    buffer = _io.BytesIO()
    Image.new("RGB", (12, 8), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def _mat(**arrays: np.ndarray) -> bytes:
    buffer = _io.BytesIO()
    scipy.io.savemat(buffer, arrays)
    return buffer.getvalue()


def _flowers_data() -> dict[str, bytes]:
    """The four flowers files in miniature (4 images, 2 classes), as bytes by name."""
    images = {f"jpg/image_{i:05d}.jpg": _jpeg((60 * i, 0, 0)) for i in CAPTIONS}
    captions = {
        f"cvpr2016_flowers/text_c10/class_{1 + (i > 2):05d}/image_{i:05d}.txt": (
            "\n".join(lines) + "\n"
        ).encode()
        for i, lines in CAPTIONS.items()
    }
    captions["cvpr2016_flowers/text_c10/class_00001/image_00001.h5"] = b"not text"
    captions["cvpr2016_flowers/trainvalclasses.txt"] = b"class_00001\n"
    return {
        flowers.FLOWERS_IMAGES: _tar_gz(images),
        flowers.FLOWERS_LABELS: _mat(labels=np.array([[1, 1, 2, 2]], np.uint8)),
        flowers.FLOWERS_SETID: _mat(**{k: np.array([v], np.uint16) for k, v in SPLIT.items()}),
        flowers.FLOWERS_CAPTIONS: _tar_gz(captions),
    }


def _write_local(folder: Path, data: dict[str, bytes]) -> Path:
    folder.mkdir()
    for name, content in data.items():
        (folder / name).write_bytes(content)
    return folder


def _files(data: dict[str, bytes], url: str = "unused") -> dict[str, remote.RemoteFile]:
    return {
        name: remote.RemoteFile(f"{url}/{name}", _md5(content)) for name, content in data.items()
    }


def _check_flowers(raw: Path, min_captions: int = 5) -> None:
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        [formats.IMAGE_DIR, formats.ATTR_FILE, formats.PARTITION_FILE]
    )
    names = [f"image_{i:05d}.jpg" for i in CAPTIONS]
    assert sorted(os.listdir(raw / formats.IMAGE_DIR)) == names
    with Image.open(raw / formats.IMAGE_DIR / "image_00002.jpg") as image:
        assert image.size == (12, 8)
    table = formats.read_attributes(raw / formats.ATTR_FILE)
    assert list(table.columns) == list(flowers.FLOWER_COLOURS)
    assert list(table.index) == names
    on = {name: set(table.columns[table.loc[name] == 1]) for name in names}
    if min_captions == 5:
        assert on == {
            "image_00001.jpg": {"pink"},
            "image_00002.jpg": {"pink"},
            "image_00003.jpg": {"red", "orange"},
            "image_00004.jpg": {"white"},
        }
    split = formats.read_partition(raw / formats.PARTITION_FILE)
    assert split.to_dict() == dict(zip(names, ["train", "train", "valid", "test"], strict=True))


def test_fetch_flowers_from_local_archives(tmp_path: Path) -> None:
    data = _flowers_data()
    src = _write_local(tmp_path / "copy", data)
    flowers.fetch_flowers(tmp_path / "raw", src, progress=False, files=_files(data))
    _check_flowers(tmp_path / "raw")


def test_caption_threshold_is_a_parameter(tmp_path: Path) -> None:
    data = _flowers_data()
    src = _write_local(tmp_path / "copy", data)
    raw = tmp_path / "raw"
    flowers.fetch_flowers(raw, src, progress=False, min_captions=4, files=_files(data))
    table = formats.read_attributes(raw / formats.ATTR_FILE)
    assert table.loc["image_00001.jpg", "yellow"] == 1  # 4/10 now enough
    assert table.loc["image_00003.jpg", "pink"] == 1
    assert table.loc["image_00004.jpg", "white"] == 1
    with pytest.raises(ValueError, match="min_captions"):
        flowers.fetch_flowers(raw, src, progress=False, min_captions=0, files=_files(data))


def test_fetch_flowers_from_extracted_folders(tmp_path: Path) -> None:
    data = _flowers_data()
    src = tmp_path / "copy"
    src.mkdir()
    for name in (flowers.FLOWERS_LABELS, flowers.FLOWERS_SETID):
        (src / name).write_bytes(data[name])
    for name in (flowers.FLOWERS_IMAGES, flowers.FLOWERS_CAPTIONS):
        with tarfile.open(fileobj=_io.BytesIO(data[name])) as archive:
            # the "data" filter exists from Python 3.11.4 (Debian 12 ships 3.11.2)
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(src, **safe)
    flowers.fetch_flowers(tmp_path / "raw", src, progress=False, files=_files(data))
    _check_flowers(tmp_path / "raw")


def test_fetch_flowers_downloads(server: FakeServer, tmp_path: Path) -> None:
    data = _flowers_data()
    files = _files(data, server.url("/vgg"))
    for name, content in data.items():
        server.files[f"/vgg/{name}"] = content
    # The captions have no published md5 (their structure is checked instead).
    files[flowers.FLOWERS_CAPTIONS] = files[flowers.FLOWERS_CAPTIONS]._replace(md5=None)
    raw = tmp_path / "data" / "raw"
    flowers.fetch_flowers(raw, None, progress=False, files=files)
    _check_flowers(raw)
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]  # download cache removed
    assert sorted(path for path, _ in server.requests) == sorted(f"/vgg/{n}" for n in data)


def test_fetch_flowers_offline_lists_manual_steps(server: FakeServer, tmp_path: Path) -> None:
    files = {
        name: remote.RemoteFile(server.url(f"/gone/{name}"), r.md5)
        for name, r in flowers.FLOWERS_FILES.items()
    }
    with pytest.raises(remote.DownloadError) as info:
        flowers.fetch_flowers(tmp_path / "raw", None, progress=False, files=files)
    message = str(info.value)
    assert "HTTP 404" in message and "flowers_dir" in message
    assert flowers.FLOWERS_CAPTIONS_PAGE in message
    assert "md5 52808999861908f626f3c1f4e79d11fa" in message
    assert not (tmp_path / "raw").exists()


def test_fetch_flowers_refuses_unofficial_archives(tmp_path: Path) -> None:
    src = _write_local(tmp_path / "copy", _flowers_data())
    with pytest.raises(remote.ChecksumError, match="expected 52808999.*not the official file"):
        flowers.fetch_flowers(tmp_path / "raw", src, progress=False)


def test_fetch_flowers_names_missing_files(tmp_path: Path) -> None:
    data = _flowers_data()
    src = _write_local(tmp_path / "copy", {flowers.FLOWERS_SETID: data[flowers.FLOWERS_SETID]})
    with pytest.raises(FileNotFoundError) as info:
        flowers.fetch_flowers(tmp_path / "raw", src, progress=False, files=_files(data))
    message = str(info.value)
    for name in (flowers.FLOWERS_IMAGES, flowers.FLOWERS_LABELS, flowers.FLOWERS_CAPTIONS):
        assert f"expected {src / name}" in message
    assert f"expected {src / flowers.FLOWERS_SETID}" not in message
    assert not (tmp_path / "raw").exists()


def test_captions_archive_structure_is_checked(tmp_path: Path) -> None:
    data = _flowers_data()
    data[flowers.FLOWERS_CAPTIONS] = _tar_gz({"text_c10/class_00001/image_00001.txt": b"red\n"})
    src = _write_local(tmp_path / "copy", data)
    with pytest.raises(ValueError, match="no captions for 3 of 4 images.*image_00002"):
        flowers.fetch_flowers(tmp_path / "raw", src, progress=False, files=_files(data))
    data[flowers.FLOWERS_CAPTIONS] = b"<html>an error page, not a tar</html>"
    (src / flowers.FLOWERS_CAPTIONS).write_bytes(data[flowers.FLOWERS_CAPTIONS])
    with pytest.raises(ValueError, match="not a readable tar archive"):
        flowers.fetch_flowers(tmp_path / "raw", src, progress=False, files=_files(data))
    assert not (tmp_path / "raw").exists()


def test_missing_images_are_named(tmp_path: Path) -> None:
    data = _flowers_data()
    data[flowers.FLOWERS_IMAGES] = _tar_gz({"jpg/image_00001.jpg": _jpeg((0, 0, 0))})
    src = _write_local(tmp_path / "copy", data)
    with pytest.raises(ValueError, match="lacks 3 of the 4 images.*image_00002"):
        flowers.fetch_flowers(tmp_path / "raw", src, progress=False, files=_files(data))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]  # no temporary left behind
