"""`fader serve`: the web app over HTTP, and in a real browser (Debian's chromium, driven by
Playwright; skipped with a reason when no browser is installed)."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fader import edit, serve
from fader.data.config import PreprocessConfig
from fader.data.prepared import PreparedDataset
from fader.data.preprocess import prepare
from fader.model.networks import AutoEncoder, ModelConfig
from tests.conftest import SHARED_CELEBA, make

ATTRS = ["Smiling", "Male"]


@pytest.fixture(scope="module")
def editor() -> edit.Editor:
    torch.manual_seed(0)
    cfg = make(ModelConfig, img_size=32, n_layers=4, n_attr=len(ATTRS), init_fm=4, max_fm=16)
    return edit.Editor(AutoEncoder(cfg), ATTRS)


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    from tests.conftest import make_raw_celeba

    root = tmp_path_factory.mktemp("examples")
    raw = make_raw_celeba(root / "raw")
    config = make(PreprocessConfig, img_size=32, attributes=tuple(ATTRS), workers=1)
    prepare(raw, root / "prepared", config, progress=False)
    return PreparedDataset(root / "prepared", "test", attributes=ATTRS)


@pytest.fixture(scope="module")
def url(editor: edit.Editor, examples: PreparedDataset) -> Iterator[str]:
    """A live server on a free loopback port, for the module's tests."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = serve.create_app(editor, examples, max_photos=3, max_upload_bytes=200_000)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def call(url: str, path: str, data: bytes | None = None, headers: dict | None = None):
    """(status, content type, body) of one request."""
    request = urllib.request.Request(url + path, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["content-type"], response.read()
    except urllib.error.HTTPError as failure:
        return failure.code, failure.headers["content-type"], failure.read()


def upload(url: str, data: bytes, name: str = "photo.png"):
    boundary = "fader-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return call(url, "/api/photos", body, headers)


def decoded(body: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(body)) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def real_face() -> bytes:
    """A real CelebA face at full aligned size, on a larger canvas (so it must be aligned)."""
    path = SHARED_CELEBA / "img_align_celeba_89x109" / "000001.jpg"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    with Image.open(path) as image:
        face = image.convert("RGB").resize((178, 218), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (300, 340), (40, 90, 160))
    canvas.paste(face, (70, 60))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


# --- HTTP ----------------------------------------------------------------------------------------


def test_an_example_is_encoded_once_and_each_edit_decodes_like_the_library(
    url: str, editor: edit.Editor, examples: PreparedDataset
) -> None:
    status, _, body = call(url, "/api/examples/0", b"")
    assert status == 200, body
    photo = json.loads(body)
    assert photo["attributes"] == ATTRS and photo["range"] == [-1.0, 2.0]
    encoded = editor.encode(
        edit.Photo(decoded(call(url, f"/api/photos/{photo['id']}/original.png")[2])).pixels
    )
    for query, settings in (("Smiling=1.5&Male=0", {"Smiling": 1.5, "Male": 0.0}), ("", {})):
        status, kind, body = call(url, f"/api/photos/{photo['id']}/edit.png?{query}")
        assert status == 200 and kind == "image/png"
        assert np.array_equal(decoded(body), editor.decode(encoded, settings))
    first = decoded(call(url, f"/api/photos/{photo['id']}/edit.png?Smiling=-1")[2])
    assert not np.array_equal(
        first, decoded(call(url, f"/api/photos/{photo['id']}/edit.png?Smiling=2")[2])
    )


def test_bad_requests_get_a_message_and_the_server_keeps_serving(url: str) -> None:
    status, kind, body = upload(url, b"this is not an image", "notes.txt")
    assert status == 400 and kind == "application/json"
    assert "notes.txt is not a readable image" in json.loads(body)["error"]
    status, _, body = upload(url, b"\0" * 300_000)
    assert status == 413 and "larger than" in json.loads(body)["error"]
    status, _, body = call(url, "/api/photos/nope/edit.png")
    assert status == 404 and "upload it again" in json.loads(body)["error"]
    status, _, body = call(url, "/api/examples/99", b"")
    assert status == 404
    photo = json.loads(call(url, "/api/examples/1", b"")[2])
    for query, message in (("Nope=1", "unknown attribute 'Nope'"), ("Male=nan", "not a finite")):
        status, _, body = call(url, f"/api/photos/{photo['id']}/edit.png?{query}")
        assert status == 400 and message in json.loads(body)["error"]
    assert call(url, "/api/info")[0] == 200  # still serving


def test_users_do_not_see_each_others_photos(url: str) -> None:
    ids = [json.loads(call(url, "/api/examples/0", b"")[2])["id"] for _ in range(4)]
    assert len(set(ids)) == 4 and all(len(key) >= 20 for key in ids)  # unguessable
    assert call(url, f"/api/photos/{ids[0]}/edit.png")[0] == 404  # past max_photos (3): forgotten
    assert call(url, f"/api/photos/{ids[-1]}/edit.png")[0] == 200


def test_an_uploaded_real_face_is_aligned_and_pasted_back(url: str) -> None:
    data = real_face()
    status, _, body = upload(url, data, "face.jpg")
    assert status == 200, body
    photo = json.loads(body)
    assert photo["aligned"] is True
    aligned = decoded(call(url, f"/api/photos/{photo['id']}/aligned.png")[2])
    assert aligned.shape == (218, 178, 3)
    pasted = decoded(call(url, f"/api/photos/{photo['id']}/pasted.png?Smiling=2")[2])
    assert pasted.shape == (340, 300, 3)  # the whole photo


def test_the_server_binds_to_this_machine_by_default() -> None:
    import inspect

    import stages.serve

    assert inspect.signature(stages.serve.main).parameters["host"].default.default == "127.0.0.1"


# --- in a real browser ---------------------------------------------------------------------------


def test_the_page_uploads_a_face_and_a_slider_moves_it(
    url: str, browser, editor: edit.Editor, tmp_path: Path
) -> None:
    data = real_face()
    page = browser.new_page(viewport={"width": 1000, "height": 760})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    (tmp_path / "face.jpg").write_bytes(data)
    page.set_input_files("#upload", str(tmp_path / "face.jpg"))
    page.wait_for_function("document.getElementById('edited').src.startsWith('blob:')")
    before = page.get_attribute("#edited", "src")
    page.fill("#fader-Smiling", "2")
    page.wait_for_function(f"document.getElementById('edited').src !== {before!r}")
    page.wait_for_function("document.getElementById('edited').dataset.query.includes('Smiling=2')")
    shown = page.evaluate(
        """async () => {
            const blob = await (await fetch(document.getElementById('edited').src)).blob();
            return Array.from(new Uint8Array(await blob.arrayBuffer()));
        }"""
    )
    query = page.get_attribute("#edited", "data-query")
    settings = {k: float(v) for k, v in (part.split("=") for part in query.split("&"))}
    photo = edit.prepare_photo(data, editor.img_size, source="face.jpg")
    expected = editor.decode(editor.encode(photo.pixels), settings)
    assert settings["Smiling"] == 2.0
    assert np.array_equal(decoded(bytes(shown)), expected)  # what `fader edit` gives
    # offline: every request went to this server (or a blob of its answers)
    assert requested and all(u.startswith(url) or u.startswith(f"blob:{url}") for u in requested)
    screenshot = os.environ.get("FADER_SCREENSHOT")
    page.screenshot(path=screenshot or str(tmp_path / "page.png"))
    page.close()


def test_a_bad_upload_shows_a_message_in_the_page(url: str, browser, tmp_path: Path) -> None:
    page = browser.new_page()
    page.goto(url)
    (tmp_path / "notes.txt").write_text("not a photo")
    page.set_input_files("#upload", str(tmp_path / "notes.txt"))
    page.wait_for_function("document.getElementById('status').className === 'error'")
    assert "not a readable image" in page.text_content("#status")
    page.close()
