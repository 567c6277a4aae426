"""fader.download against a loopback HTTP server and small fixtures built here (no real network)."""

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

import numpy as np
import pytest
import scipy.io
from PIL import Image

from fader.data import celeba
from fader.data.sources import download
from tests.conftest import make_raw_celeba

CONFIRM_UUID = "0f1e2d3c"


# --- Loopback server --------------------------------------------------------------------------


@dataclass
class FakeServer:
    """Serves `files` by path and `drive` by `/uc?id=…`, the way the tests need."""

    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    drive: dict[str, bytes] = field(default_factory=dict)
    confirm: set[str] = field(default_factory=set)  # Drive ids answered by a confirmation page
    quota: set[str] = field(default_factory=set)  # Drive ids answered by an error page
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
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query))
            if parts.path == "/uc" and query.get("id") in server.quota:
                page = (
                    '<html><body><p class="uc-error-subcaption">Too many users have viewed or '
                    "downloaded this file recently.</p></body></html>"
                )
                self._send_html(page)
            elif parts.path == "/uc" and query.get("id") in server.confirm:
                self._send_html(_confirm_page(server.url("/download"), query["id"]))
            elif parts.path == "/uc" and query.get("id") in server.drive:
                self._send_body(server.drive[query["id"]])
            elif parts.path == "/download" and query.get("id") in server.drive:
                ok = query.get("confirm") == "t" and query.get("uuid") == CONFIRM_UUID
                if ok and query.get("export") == "download":
                    self._send_body(server.drive[query["id"]])
                else:
                    self.send_error(403)
            elif parts.path in server.files:
                self._send_body(server.files[parts.path])
            else:
                self.send_error(404)

        def _send_html(self, page: str) -> None:
            data = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_body(self, data: bytes) -> None:
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
            path = urllib.parse.urlsplit(self.path).path
            if path in server.truncate:  # announce the whole body, send part of it, hang up
                body = body[: server.truncate.pop(path)]
            self.wfile.write(body)

    return Handler


def _confirm_page(action: str, file_id: str) -> str:
    """Google Drive's current "can't scan this file for viruses" page, reduced to its form."""
    return f"""<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head>
<body><div class="uc-main"><p class="uc-warning-caption">Google Drive can't scan this file for
viruses.</p><form id="download-form" action="{action}" method="get">
<input type="submit" id="uc-download-link" class="jfk-button" value="Download anyway"/>
<input type="hidden" name="id" value="{file_id}">
<input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t">
<input type="hidden" name="uuid" value="{CONFIRM_UUID}">
</form></div></body></html>"""


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


PAYLOAD = bytes(range(256)) * 40  # 10,240 bytes


# --- download_file ----------------------------------------------------------------------------


def test_md5sum_matches_hashlib(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(PAYLOAD)
    assert download.md5sum(tmp_path / "f", chunk=1000) == _md5(PAYLOAD)


def test_plain_download(server: FakeServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "sub" / "a.bin"
    assert download.download_file(server.url("/a.bin"), dest, _md5(PAYLOAD), progress=True) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "a.bin.part").exists()
    assert server.requests == [("/a.bin", None)]


def test_resumes_a_part_file_with_range(server: FakeServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD[:1000])
    download.download_file(server.url("/a.bin"), dest, _md5(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/a.bin", "bytes=1000-")]


def test_server_ignoring_range_restarts(server: FakeServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = PAYLOAD
    server.ignore_range = True
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(b"stale bytes that must not survive")
    download.download_file(server.url("/a.bin"), dest, _md5(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_part_longer_than_file_restarts(server: FakeServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD + b"extra")  # server answers 416
    download.download_file(server.url("/a.bin"), dest, _md5(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [f"bytes={len(PAYLOAD) + 5}-", None]


def test_broken_connection_keeps_part_then_resumes(server: FakeServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = PAYLOAD
    server.truncate["/a.bin"] = 3000
    dest = tmp_path / "a.bin"
    with pytest.raises(download.DownloadError, match="3000 of 10240 bytes.*resume"):
        download.download_file(server.url("/a.bin"), dest, _md5(PAYLOAD), progress=False)
    assert not dest.exists()
    assert (tmp_path / "a.bin.part").stat().st_size == 3000
    download.download_file(server.url("/a.bin"), dest, _md5(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/a.bin", "bytes=3000-")


def test_md5_mismatch_deletes_part_and_names_both_sums(server: FakeServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    with pytest.raises(download.ChecksumError, match=f"md5 {_md5(PAYLOAD)}, expected 0123abcd"):
        download.download_file(server.url("/a.bin"), dest, "0123abcd", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_404_says_what_to_do(server: FakeServer, tmp_path: Path) -> None:
    dest = tmp_path / "missing.bin"
    url = server.url("/missing.bin")
    with pytest.raises(download.DownloadError) as info:
        download.download_file(url, dest, None, progress=False)
    message = str(info.value)
    assert "HTTP 404" in message and url in message and f"save it as {dest}" in message
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_says_offline(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dest = tmp_path / "a.bin"
    with pytest.raises(download.DownloadError, match="no connection.*offline"):
        download.download_file(f"http://127.0.0.1:{port}/a.bin", dest, None, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_kept_or_replaced_by_md5(server: FakeServer, tmp_path: Path) -> None:
    server.files["/a.bin"] = PAYLOAD
    dest = tmp_path / "a.bin"
    dest.write_bytes(PAYLOAD)
    download.download_file(server.url("/a.bin"), dest, _md5(PAYLOAD), progress=False)
    assert server.requests == []  # right md5: nothing fetched
    dest.write_bytes(b"corrupt")
    download.download_file(server.url("/a.bin"), dest, _md5(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_google_drive_confirmation_page(server: FakeServer, tmp_path: Path) -> None:
    server.drive["big"] = PAYLOAD
    server.confirm.add("big")
    url = download._drive_url(server.url("/uc"), "big")
    dest = tmp_path / "big.zip"
    download.download_file(url, dest, _md5(PAYLOAD), progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [urllib.parse.urlsplit(p).path for p, _ in server.requests] == ["/uc", "/download"]


def test_google_drive_confirmation_page_when_resuming(server: FakeServer, tmp_path: Path) -> None:
    server.drive["big"] = PAYLOAD
    server.confirm.add("big")
    (tmp_path / "big.zip.part").write_bytes(PAYLOAD[:500])
    url = download._drive_url(server.url("/uc"), "big")
    download.download_file(url, tmp_path / "big.zip", _md5(PAYLOAD), progress=False)
    assert (tmp_path / "big.zip").read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == ["bytes=500-", "bytes=500-"]


def test_google_drive_quota_page_is_an_error(server: FakeServer, tmp_path: Path) -> None:
    server.quota.add("busy")
    url = download._drive_url(server.url("/uc"), "busy")
    with pytest.raises(download.DownloadError, match="Too many users"):
        download.download_file(url, tmp_path / "x.zip", None, progress=False)
    assert list(tmp_path.iterdir()) == []


# --- CelebA -----------------------------------------------------------------------------------


def _fake_celeba_files(root: Path) -> tuple[dict[str, bytes], dict[str, download.RemoteFile]]:
    """A tiny CelebA (6 images): file bytes by name, and a RemoteFile table with their md5s."""
    folder = make_raw_celeba(root / "src", n=6, size=(36, 44))
    buffer = _io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((folder / celeba.IMAGE_DIR).iterdir()):
            archive.write(path, f"{celeba.IMAGE_DIR}/{path.name}")
    data = {
        f"{celeba.IMAGE_DIR}.zip": buffer.getvalue(),
        celeba.ATTR_FILE: (folder / celeba.ATTR_FILE).read_bytes(),
        celeba.PARTITION_FILE: (folder / celeba.PARTITION_FILE).read_bytes(),
    }
    files = {
        name: download.RemoteFile(f"id-{i}", _md5(b)) for i, (name, b) in enumerate(data.items())
    }
    return data, files


def test_fetch_celeba_downloads_and_keeps_the_zip(server: FakeServer, tmp_path: Path) -> None:
    data, files = _fake_celeba_files(tmp_path)
    for name, remote in files.items():
        server.drive[remote.source] = data[name]
    server.confirm.add(files[f"{celeba.IMAGE_DIR}.zip"].source)  # the big file needs confirming
    raw = tmp_path / "data" / "raw"
    download.fetch_celeba(raw, None, progress=False, base_url=server.url("/uc"), files=files)
    assert sorted(p.name for p in raw.iterdir()) == sorted(data)
    for name, content in data.items():
        assert (raw / name).read_bytes() == content
    with zipfile.ZipFile(raw / f"{celeba.IMAGE_DIR}.zip") as archive:
        assert f"{celeba.IMAGE_DIR}/000001.jpg" in archive.namelist()
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]  # download cache removed
    assert any(p.startswith("/download?") for p, _ in server.requests)


def test_fetch_celeba_offline_lists_manual_steps(server: FakeServer, tmp_path: Path) -> None:
    raw = tmp_path / "data" / "raw"
    with pytest.raises(download.DownloadError) as info:
        download.fetch_celeba(raw, None, progress=False, base_url=server.url("/uc"))
    message = str(info.value)
    assert "HTTP 404" in message and "celeba_dir" in message
    assert "list_attr_celeba.txt  (md5 75e246fa4810816ffd6ee81facbd244c)" in message
    assert "img_align_celeba.zip" in message
    assert not raw.exists()


def test_fetch_celeba_links_a_local_copy(tmp_path: Path) -> None:
    src = make_raw_celeba(tmp_path / "copy", n=5, size=(36, 44))
    (src / celeba.IMAGE_DIR).rename(src / "img_align_celeba_36x44")  # any img_align_celeba* name
    (src / "img_align_celeba_36x44" / "notes.txt").write_text("not an image")
    files = {
        name: download.RemoteFile("unused", download.md5sum(src / name))
        for name in (celeba.ATTR_FILE, celeba.PARTITION_FILE)
    }
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "stale.txt").write_text("from an older run")
    download.fetch_celeba(raw, src, progress=False, files=files)
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        [celeba.IMAGE_DIR, celeba.ATTR_FILE, celeba.PARTITION_FILE]
    )
    images = sorted(p.name for p in (raw / celeba.IMAGE_DIR).iterdir())
    assert images == [f"{i:06d}.jpg" for i in range(1, 6)]
    assert (raw / celeba.IMAGE_DIR / "000001.jpg").samefile(
        src / "img_align_celeba_36x44" / "000001.jpg"
    )
    assert len(celeba.read_attributes(raw / celeba.ATTR_FILE)) == 5


def test_fetch_celeba_links_a_local_zip(tmp_path: Path) -> None:
    data, files = _fake_celeba_files(tmp_path)
    src = tmp_path / "copy"
    src.mkdir()
    for name, content in data.items():
        (src / name).write_bytes(content)
    download.fetch_celeba(tmp_path / "raw", src, progress=False, files=files)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(data)


def test_fetch_celeba_refuses_unofficial_txt(tmp_path: Path) -> None:
    src = make_raw_celeba(tmp_path / "copy", n=3, size=(36, 44))
    with pytest.raises(download.ChecksumError, match="expected 75e246fa.*not the official file"):
        download.fetch_celeba(tmp_path / "raw", src, progress=False)
    assert not (tmp_path / "raw").exists()


def test_fetch_celeba_names_missing_files(tmp_path: Path) -> None:
    src = tmp_path / "copy"
    src.mkdir()
    with pytest.raises(FileNotFoundError) as info:
        download.fetch_celeba(tmp_path / "raw", src, progress=False)
    message = str(info.value)
    assert f"expected {src / celeba.ATTR_FILE}" in message
    assert f"expected {src / celeba.PARTITION_FILE}" in message
    for name in (celeba.ATTR_FILE, celeba.PARTITION_FILE):
        (src / name).write_text("x")
    (src / celeba.IMAGE_DIR).mkdir()  # present but empty: no images
    with pytest.raises(FileNotFoundError, match=r"no CelebA images.*img_align_celeba\.zip"):
        download.fetch_celeba(tmp_path / "raw", src, progress=False)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        download.fetch_celeba(tmp_path / "raw", tmp_path / "nowhere", progress=False)
    assert not (tmp_path / "raw").exists()


def test_fetch_celeba_refuses_two_image_folders(tmp_path: Path) -> None:
    src = make_raw_celeba(tmp_path / "copy", n=2, size=(36, 44))
    (src / celeba.IMAGE_DIR).rename(src / "img_align_celeba_a")
    (src / "img_align_celeba_b").mkdir()
    (src / "img_align_celeba_b" / "000001.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="several image folders"):
        download.fetch_celeba(tmp_path / "raw", src, progress=False)


@pytest.mark.celeba
def test_fetch_celeba_from_shared_mini(shared_celeba: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    download.fetch_celeba(raw, shared_celeba, progress=False)
    assert len(os.listdir(raw / celeba.IMAGE_DIR)) == 5000
    assert download.md5sum(raw / celeba.ATTR_FILE) == download.CELEBA_FILES[celeba.ATTR_FILE].md5
    assert len(celeba.read_partition(raw / celeba.PARTITION_FILE)) == 202_599


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
        download.FLOWERS_IMAGES: _tar_gz(images),
        download.FLOWERS_LABELS: _mat(labels=np.array([[1, 1, 2, 2]], np.uint8)),
        download.FLOWERS_SETID: _mat(**{k: np.array([v], np.uint16) for k, v in SPLIT.items()}),
        download.FLOWERS_CAPTIONS: _tar_gz(captions),
    }


def _write_local(folder: Path, data: dict[str, bytes]) -> Path:
    folder.mkdir()
    for name, content in data.items():
        (folder / name).write_bytes(content)
    return folder


def _files(data: dict[str, bytes], url: str = "unused") -> dict[str, download.RemoteFile]:
    return {
        name: download.RemoteFile(f"{url}/{name}", _md5(content)) for name, content in data.items()
    }


def _check_flowers(raw: Path, min_captions: int = 5) -> None:
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        [celeba.IMAGE_DIR, celeba.ATTR_FILE, celeba.PARTITION_FILE]
    )
    names = [f"image_{i:05d}.jpg" for i in CAPTIONS]
    assert sorted(os.listdir(raw / celeba.IMAGE_DIR)) == names
    with Image.open(raw / celeba.IMAGE_DIR / "image_00002.jpg") as image:
        assert image.size == (12, 8)
    table = celeba.read_attributes(raw / celeba.ATTR_FILE)
    assert list(table.columns) == list(download.FLOWER_COLOURS)
    assert list(table.index) == names
    on = {name: set(table.columns[table.loc[name] == 1]) for name in names}
    if min_captions == 5:
        assert on == {
            "image_00001.jpg": {"pink"},
            "image_00002.jpg": {"pink"},
            "image_00003.jpg": {"red", "orange"},
            "image_00004.jpg": {"white"},
        }
    split = celeba.read_partition(raw / celeba.PARTITION_FILE)
    assert split.to_dict() == dict(zip(names, ["train", "train", "valid", "test"], strict=True))


def test_fetch_flowers_from_local_archives(tmp_path: Path) -> None:
    data = _flowers_data()
    src = _write_local(tmp_path / "copy", data)
    download.fetch_flowers(tmp_path / "raw", src, progress=False, files=_files(data))
    _check_flowers(tmp_path / "raw")


def test_caption_threshold_is_a_parameter(tmp_path: Path) -> None:
    data = _flowers_data()
    src = _write_local(tmp_path / "copy", data)
    raw = tmp_path / "raw"
    download.fetch_flowers(raw, src, progress=False, min_captions=4, files=_files(data))
    table = celeba.read_attributes(raw / celeba.ATTR_FILE)
    assert table.loc["image_00001.jpg", "yellow"] == 1  # 4/10 now enough
    assert table.loc["image_00003.jpg", "pink"] == 1
    assert table.loc["image_00004.jpg", "white"] == 1
    with pytest.raises(ValueError, match="min_captions"):
        download.fetch_flowers(raw, src, progress=False, min_captions=0, files=_files(data))


def test_fetch_flowers_from_extracted_folders(tmp_path: Path) -> None:
    data = _flowers_data()
    src = tmp_path / "copy"
    src.mkdir()
    for name in (download.FLOWERS_LABELS, download.FLOWERS_SETID):
        (src / name).write_bytes(data[name])
    for name in (download.FLOWERS_IMAGES, download.FLOWERS_CAPTIONS):
        with tarfile.open(fileobj=_io.BytesIO(data[name])) as archive:
            # the "data" filter exists from Python 3.11.4 (Debian 12 ships 3.11.2)
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(src, **safe)
    download.fetch_flowers(tmp_path / "raw", src, progress=False, files=_files(data))
    _check_flowers(tmp_path / "raw")


def test_fetch_flowers_downloads(server: FakeServer, tmp_path: Path) -> None:
    data = _flowers_data()
    files = _files(data, server.url("/vgg"))
    for name in (download.FLOWERS_IMAGES, download.FLOWERS_LABELS, download.FLOWERS_SETID):
        server.files[f"/vgg/{name}"] = data[name]
    # The captions come from Google Drive, behind its confirmation page, with no md5.
    server.drive["captions"] = data[download.FLOWERS_CAPTIONS]
    server.confirm.add("captions")
    files[download.FLOWERS_CAPTIONS] = download.RemoteFile(
        download._drive_url(server.url("/uc"), "captions"), None
    )
    raw = tmp_path / "data" / "raw"
    download.fetch_flowers(raw, None, progress=False, files=files)
    _check_flowers(raw)
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]  # download cache removed


def test_fetch_flowers_offline_lists_manual_steps(server: FakeServer, tmp_path: Path) -> None:
    files = {
        name: download.RemoteFile(server.url(f"/gone/{name}"), remote.md5)
        for name, remote in download.FLOWERS_FILES.items()
    }
    with pytest.raises(download.DownloadError) as info:
        download.fetch_flowers(tmp_path / "raw", None, progress=False, files=files)
    message = str(info.value)
    assert "HTTP 404" in message and "flowers_dir" in message
    assert download.FLOWERS_CAPTIONS_PAGE in message
    assert not (tmp_path / "raw").exists()


def test_fetch_flowers_refuses_unofficial_archives(tmp_path: Path) -> None:
    src = _write_local(tmp_path / "copy", _flowers_data())
    with pytest.raises(download.ChecksumError, match="expected 52808999.*not the official file"):
        download.fetch_flowers(tmp_path / "raw", src, progress=False)


def test_fetch_flowers_names_missing_files(tmp_path: Path) -> None:
    data = _flowers_data()
    src = _write_local(tmp_path / "copy", {download.FLOWERS_SETID: data[download.FLOWERS_SETID]})
    with pytest.raises(FileNotFoundError) as info:
        download.fetch_flowers(tmp_path / "raw", src, progress=False, files=_files(data))
    message = str(info.value)
    for name in (download.FLOWERS_IMAGES, download.FLOWERS_LABELS, download.FLOWERS_CAPTIONS):
        assert f"expected {src / name}" in message
    assert f"expected {src / download.FLOWERS_SETID}" not in message
    assert not (tmp_path / "raw").exists()


def test_captions_archive_structure_is_checked(tmp_path: Path) -> None:
    data = _flowers_data()
    data[download.FLOWERS_CAPTIONS] = _tar_gz({"text_c10/class_00001/image_00001.txt": b"red\n"})
    src = _write_local(tmp_path / "copy", data)
    with pytest.raises(ValueError, match="no captions for 3 of 4 images.*image_00002"):
        download.fetch_flowers(tmp_path / "raw", src, progress=False, files=_files(data))
    data[download.FLOWERS_CAPTIONS] = b"<html>an error page, not a tar</html>"
    (src / download.FLOWERS_CAPTIONS).write_bytes(data[download.FLOWERS_CAPTIONS])
    with pytest.raises(ValueError, match="not a readable tar archive"):
        download.fetch_flowers(tmp_path / "raw", src, progress=False, files=_files(data))
    assert not (tmp_path / "raw").exists()


def test_missing_images_are_named(tmp_path: Path) -> None:
    data = _flowers_data()
    data[download.FLOWERS_IMAGES] = _tar_gz({"jpg/image_00001.jpg": _jpeg((0, 0, 0))})
    src = _write_local(tmp_path / "copy", data)
    with pytest.raises(ValueError, match="lacks 3 of the 4 images.*image_00002"):
        download.fetch_flowers(tmp_path / "raw", src, progress=False, files=_files(data))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]  # no temporary left behind
