"""The faders in a web page: upload a photo, move one slider per attribute, see the face change.

"Sliding knobs, like faders on a mixing console" (Sec. 1). A Starlette app (`create_app`) with
a small static page (`fader/web/`: HTML, CSS and plain JavaScript, nothing from a CDN):

- `POST /api/photos` (multipart `photo`) aligns and encodes an upload once; the answer holds a
  new random id, the attribute names, the slider range and the photo's own values (the
  classifier's verdicts, as `fader edit` uses them);
- `POST /api/examples/{index}` does the same for one of the prepared test images, when the
  app was given a prepared dataset (already aligned);
- `GET /api/photos/{id}/edit.png?Smiling=0.5&...` only decodes: a slider move;
- `GET /api/photos/{id}/{original,aligned,pasted}.png`: the photo, its aligned crop, and the
  edit pasted back into the whole photo at its own resolution.

Each photo lives in memory under an unguessable id (`secrets.token_urlsafe`), so users only see
their own; the oldest are forgotten past `max_photos`. A bad upload answers 400 with a message
the page shows, and the server keeps serving. One lock serialises the model: a CPU has no
parallelism to spare for two decodes at once.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fader import edit
from fader.data.prepared import PreparedDataset
from fader.image import PhotoError, encode_png, to_uint8_image

log = logging.getLogger(__name__)

WEB = Path(__file__).with_name("web")

#: Uploads larger than this are refused before they are decoded.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: The sliders' range: the paper's extrapolation beyond [0, 1].
SLIDER_RANGE = (-1.0, 2.0)
#: Example photos offered from the prepared test split, at most.
MAX_EXAMPLES = 12


@dataclass(frozen=True)
class Session:
    """One uploaded photo, encoded once."""

    photo: edit.Photo
    encoded: edit.Encoded


class PhotoStore:
    """The encoded photos by id, the oldest forgotten past `capacity` (thread-safe)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, session: Session) -> str:
        key = secrets.token_urlsafe(16)
        with self._lock:
            self._items[key] = session
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return key

    def get(self, key: str) -> Session | None:
        with self._lock:
            session = self._items.get(key)
            if session is not None:
                self._items.move_to_end(key)
            return session


def png(pixels: np.ndarray) -> Response:
    """An (H, W, 3) uint8 image as a PNG response (fast compression: it is sent, not stored)."""
    return Response(
        encode_png(pixels, compress_level=1),
        media_type="image/png",
        headers={"Cache-Control": "no-store"},
    )


def error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    editor: edit.Editor,
    examples: PreparedDataset | None = None,
    max_photos: int = 64,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
) -> Starlette:
    """The web app for one model (`editor`), optionally with example photos from `examples`."""
    store = PhotoStore(max_photos)
    model_lock = threading.Lock()
    n_examples = 0 if examples is None else min(len(examples), MAX_EXAMPLES)

    def describe(key: str, session: Session) -> JSONResponse:
        own = session.encoded.own[0].tolist()
        return JSONResponse(
            {
                "id": key,
                "attributes": editor.attributes,
                "values": dict(zip(editor.attributes, own)),
                "range": SLIDER_RANGE,
                "aligned": session.photo.alignment is not None,
                "size": editor.img_size,
            }
        )

    def open_session(photo: edit.Photo) -> JSONResponse:
        with model_lock:
            encoded = editor.encode(photo.pixels)
        session = Session(photo, encoded)
        return describe(store.add(session), session)

    def info(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "attributes": editor.attributes,
                "range": SLIDER_RANGE,
                "size": editor.img_size,
                "examples": n_examples,
                "classifier": editor.classifier is not None,
                "max_upload_bytes": max_upload_bytes,
            }
        )

    async def upload(request: Request) -> JSONResponse:
        if int(request.headers.get("content-length") or 0) > max_upload_bytes + 65536:
            return error(f"the upload is larger than {max_upload_bytes // 2**20} MB", 413)
        form = await request.form(max_files=1, max_fields=2, max_part_size=max_upload_bytes)
        upload = form.get("photo")
        if upload is None or isinstance(upload, str):
            return error("send the photo as the multipart field 'photo'")
        data = await upload.read()
        if len(data) > max_upload_bytes:
            return error(f"the upload is larger than {max_upload_bytes // 2**20} MB", 413)
        name = upload.filename or "the upload"
        try:  # aligning and encoding take tens of ms: off the event loop
            photo = await run_in_threadpool(edit.prepare_photo, data, editor.img_size, source=name)
        except PhotoError as problem:
            return error(str(problem))
        log.info("photo %s: %dx%d px", name, photo.original.shape[1], photo.original.shape[0])
        return await run_in_threadpool(open_session, photo)

    def example(request: Request) -> JSONResponse:
        index = request.path_params["index"]
        if examples is None or not 0 <= index < n_examples:
            return error(f"example {index} does not exist ({n_examples} examples)", 404)
        x, _ = examples.batch([index])
        return open_session(edit.Photo(to_uint8_image(x[0])))

    def session_of(request: Request) -> Session | None:
        return store.get(request.path_params["key"])

    def settings_of(request: Request) -> Mapping[str, float]:
        settings = {}
        for name, value in request.query_params.items():
            if name not in editor.attributes:
                raise ValueError(
                    f"unknown attribute {name!r}; this model edits {editor.attributes}"
                )
            settings[name] = edit.parse_value(name, value)
        return settings

    def image(request: Request) -> Response:  # sync: Starlette runs it in its thread pool
        session = session_of(request)
        if session is None:
            return error("no such photo (it may have been forgotten: upload it again)", 404)
        kind = request.path_params["kind"]
        if kind == "original":
            original = session.photo.original
            return png(original if original is not None else session.photo.pixels)
        if kind == "aligned":
            alignment = session.photo.alignment
            return png(alignment.aligned if alignment is not None else session.photo.pixels)
        try:
            settings = settings_of(request)
        except ValueError as problem:
            return error(str(problem))
        with model_lock:
            if kind == "edit":
                return png(editor.decode(session.encoded, settings))
            if kind == "pasted":
                if session.photo.alignment is None:
                    return error("an example photo has no original to paste back into")
                result = edit.edit_photo(editor, session.photo, settings, paste_back=True)
                return png(result)
        return error(f"unknown image {kind!r}", 404)

    def index(request: Request) -> FileResponse:
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-store"})

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/photos", upload, methods=["POST"]),
        Route("/api/examples/{index:int}", example, methods=["POST"]),
        Route("/api/photos/{key}/{kind}.png", image),
        Mount("/static", StaticFiles(directory=WEB), name="static"),
    ]
    return Starlette(routes=routes)
