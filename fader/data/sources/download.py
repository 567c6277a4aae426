"""The `download` stage's library: fetch CelebA or Oxford-102 flowers into CelebA's on-disk layout.

PAPER.md, Data (Section 5): CelebA (202,599 aligned images, 40 attributes, the official split),
and Oxford-102 flowers with colour attributes built from Reed et al.'s ten captions per image
("an image has a colour attribute if that colour word appears in at least 5 of its 10
captions"). The official FaderNetworks code has no download step (its README asks for a manual
download), so the sources and md5 sums here are those of torchvision's `datasets/celeba.py` and
`datasets/flowers102.py`.

Every source ends up in one layout, the one the `preprocess` stage reads (`fader.celeba`):

    raw_dir/img_align_celeba/  (JPEGs)  or  raw_dir/img_align_celeba.zip  (CelebA's own zip)
    raw_dir/list_attr_celeba.txt
    raw_dir/list_eval_partition.txt

`raw_dir` is written with `io.atomic_dir`, so a failure leaves nothing half-written. Downloads go
first to a hidden sibling folder `.<raw_dir name>.download/` (resumable `.part` files, kept
between failed runs) that is removed once `raw_dir` is in place.
"""

from __future__ import annotations

import hashlib
import html.parser
import http.client
import http.cookiejar
import logging
import os
import re
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
import pandas as pd
from tqdm import tqdm

from fader import io
from fader.data import celeba

logger = logging.getLogger(__name__)


class RemoteFile(NamedTuple):
    """Where one file lives and the md5 of its official version (None: no published checksum).

    `source` is a Google Drive file id in `CELEBA_FILES` and a full URL in `FLOWERS_FILES`.
    """

    source: str
    md5: str | None


#: Google Drive's download endpoint; a file is `?export=download&id=<file id>`.
GOOGLE_DRIVE_URL = "https://drive.google.com/uc"

#: CelebA's official Google Drive files: ids and md5 sums as in torchvision's `CelebA.file_list`.
CELEBA_FILES: dict[str, RemoteFile] = {
    "img_align_celeba.zip": RemoteFile(
        "0B7EVK8r0v71pZjFTYXZWM3FlRnM", "00d2c5bc6d35e252742224ab0c1e8fcb"
    ),
    celeba.ATTR_FILE: RemoteFile(
        "0B7EVK8r0v71pblRyaVFSWGxPY0U", "75e246fa4810816ffd6ee81facbd244c"
    ),
    celeba.PARTITION_FILE: RemoteFile(
        "0B7EVK8r0v71pY0NSMzRuSXJEVkk", "d32c9cbf5e040fd4025c592c306e6668"
    ),
}

#: The CelebA project page, for manual downloads.
CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"

#: Oxford VGG's Flowers-102 folder (torchvision `Flowers102._download_url_prefix`).
OXFORD_FLOWERS_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"

FLOWERS_IMAGES = "102flowers.tgz"
FLOWERS_LABELS = "imagelabels.mat"
FLOWERS_SETID = "setid.mat"
FLOWERS_CAPTIONS = "cvpr2016_flowers.tar.gz"

#: Oxford-102 (md5 sums from torchvision `Flowers102._file_dict`) and Reed et al. 2016's
#: captions. The captions archive is the Google Drive file linked from github.com/reedscot/cvpr2016
#: ("Learning Deep Representations of Fine-Grained Visual Descriptions"); the resource key is the
#: one Drive added to its link in 2021. No checksum of it is published anywhere we could find, so
#: its structure is checked instead (`text_c10/class_XXXXX/image_XXXXX.txt` for every image).
FLOWERS_FILES: dict[str, RemoteFile] = {
    FLOWERS_IMAGES: RemoteFile(
        OXFORD_FLOWERS_URL + FLOWERS_IMAGES, "52808999861908f626f3c1f4e79d11fa"
    ),
    FLOWERS_LABELS: RemoteFile(
        OXFORD_FLOWERS_URL + FLOWERS_LABELS, "e0620be6f572b9609742df49c70aed4d"
    ),
    FLOWERS_SETID: RemoteFile(
        OXFORD_FLOWERS_URL + FLOWERS_SETID, "a5357ecc9cb78c4bef273ce3793fc85c"
    ),
    FLOWERS_CAPTIONS: RemoteFile(
        GOOGLE_DRIVE_URL
        + "?export=download&id=0B0ywwgffWnLLcms2WWJQRFNSWXM&resourcekey=0-Av8zFbeDDvNcF1sSjDR32w",
        None,
    ),
}

#: The page a person opens to fetch the captions by hand.
FLOWERS_CAPTIONS_PAGE = (
    "https://drive.google.com/file/d/0B0ywwgffWnLLcms2WWJQRFNSWXM/view"
    "?resourcekey=0-Av8zFbeDDvNcF1sSjDR32w"
)

#: Colour words looked for in the captions; each becomes one attribute column (PAPER.md, Data).
FLOWER_COLOURS: tuple[str, ...] = (
    "red",
    "pink",
    "orange",
    "yellow",
    "white",
    "purple",
    "blue",
    "green",
    "violet",
    "lavender",
    "magenta",
    "maroon",
    "brown",
    "black",
)

#: Splits of `setid.mat`, in the order of `celeba.SPLITS` (0/1/2 = train/valid/test).
FLOWERS_SPLIT_KEYS: tuple[str, ...] = ("trnid", "valid", "tstid")

USER_AGENT = "Mozilla/5.0 (compatible; fader-download; python-urllib)"
TIMEOUT_S = 60.0
CHUNK = 1 << 20
MAX_HOPS = 4  # Drive confirmation pages, or restarts after a refused Range, per download

_IMAGE_MEMBER = re.compile(r"(?:^|/)jpg/image_(\d{5})\.jpg$")
_CAPTION_MEMBER = re.compile(r"(?:^|/)text_c10/class_(\d{5})/image_(\d{5})\.txt$")


class DownloadError(RuntimeError):
    """A data file could not be fetched; the message says what failed and how to do it by hand."""


class ChecksumError(DownloadError):
    """A file's md5 differs from the official one; the message gives both sums."""


# --- Generic download -------------------------------------------------------------------------


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    """The md5 hex digest of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, dest: Path, md5: str | None, progress: bool = True) -> Path:
    """Download `url` to `dest`, resuming a previous attempt, and check its md5.

    Bytes go to `dest` + `.part`; an existing `.part` is resumed with an HTTP `Range` request
    (a server that answers 200 instead of 206 restarts it). Google Drive's "can't scan this file
    for viruses" page is answered by submitting its confirmation form. Only a complete file with
    the right md5 is renamed to `dest`, so `dest` is never partial. An existing `dest` with the
    right md5 (or any `dest` when `md5` is None) is kept as it is.

    Raises:
        DownloadError: network or HTTP failure, or an HTML page instead of the file; the
            `.part` is kept so the next call resumes.
        ChecksumError: the complete download has another md5; the `.part` is deleted.
    """
    dest = Path(dest)
    if dest.is_file():
        if md5 is None:
            logger.info("%s is already there", dest)
            return dest
        actual = md5sum(dest)
        if actual == md5:
            logger.info("%s is already there (md5 ok)", dest)
            return dest
        logger.warning("%s has md5 %s, expected %s: downloading it again", dest, actual, md5)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    try:
        _fetch(url, part, progress=progress, desc=dest.name)
    except DownloadError as error:
        raise DownloadError(
            f"could not download {url} to {dest}: {error}\nTo do it by hand, download {url} "
            f"(e.g. in a browser) and save it as {dest}, then run again."
        ) from error.__cause__
    if md5 is not None:
        actual = md5sum(part)
        if actual != md5:
            part.unlink()
            raise ChecksumError(
                f"the download of {url} has md5 {actual}, expected {md5}; deleted {part}. "
                "The server sent another file (an error page, or a changed file): download it "
                f"by hand and check its md5 before saving it as {dest}."
            )
    os.replace(part, dest)
    logger.info("downloaded %s", dest)
    return dest


def _fetch(url: str, part: Path, progress: bool, desc: str) -> None:
    """Stream `url` into `part`, appending to what it already holds when the server allows."""
    # A cookie jar per download: older Drive pages confirm through a `download_warning` cookie.
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    for _ in range(MAX_HOPS + 1):
        offset = part.stat().st_size if part.is_file() else 0
        headers = {"User-Agent": USER_AGENT}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            response = opener.open(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
        except urllib.error.HTTPError as error:
            if error.code == 416 and offset:  # Range Not Satisfiable: the .part is not a prefix
                logger.warning("%s: server refused to resume at byte %d; restarting", desc, offset)
                part.unlink()
                continue
            raise DownloadError(f"HTTP {error.code} {error.reason}") from error
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            raise DownloadError(f"no connection ({reason}); are you offline?") from error
        with response:
            if response.headers.get_content_type() == "text/html":
                url = _confirm_url(response, url)
                logger.info("%s: answering Google Drive's confirmation page", desc)
                continue
            if offset and response.status == 206:
                content_range = response.headers.get("Content-Range", "")
                if not content_range.startswith(f"bytes {offset}-"):
                    logger.warning(
                        "%s: unexpected Content-Range %r; restarting", desc, content_range
                    )
                    part.unlink()
                    continue
            elif offset:
                logger.info("%s: server ignored the Range header; restarting from byte 0", desc)
                offset = 0
            _stream(response, part, offset, progress, desc)
            return
    raise DownloadError(f"gave up after {MAX_HOPS + 1} requests (confirmation pages or restarts)")


def _stream(
    response: http.client.HTTPResponse, part: Path, offset: int, progress: bool, desc: str
) -> None:
    """Write the response body to `part` (appended at `offset`, or from scratch when 0)."""
    length_header = response.headers.get("Content-Length")
    length = int(length_header) if length_header and length_header.isdigit() else None
    written = 0
    with (
        part.open("ab" if offset else "wb") as f,
        tqdm(
            total=None if length is None else offset + length,
            initial=offset,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=desc,
            disable=not progress,
            leave=False,
        ) as bar,
    ):
        try:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                written += len(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as error:
            raise DownloadError(
                f"the connection broke after {offset + written} bytes ({error}); run again to "
                f"resume from {part}"
            ) from error
    # http.client returns b"" when the peer closes early, so a short body is caught here.
    if length is not None and written < length:
        raise DownloadError(
            f"the connection closed after {offset + written} of {offset + length} bytes; run "
            f"again to resume from {part}"
        )


class _ConfirmPageParser(html.parser.HTMLParser):
    """Collects a Drive confirmation page's download form, download links and error text."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []  # (action, hidden inputs)
        self.links: list[str] = []
        self.errors: list[str] = []
        self._in_form = False
        self._in_error = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._in_form = True
            self.forms.append((attr.get("action", ""), {}))
        elif tag == "input" and self._in_form and attr.get("type", "").lower() == "hidden":
            if attr.get("name"):
                self.forms[-1][1][attr["name"]] = attr.get("value", "")
        elif tag == "a" and "export=download" in attr.get("href", ""):
            self.links.append(attr["href"])
        elif "uc-error-subcaption" in attr.get("class", "").split():
            self._in_error = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False
        self._in_error = False

    def handle_data(self, data: str) -> None:
        if self._in_error and data.strip():
            self.errors.append(data.strip())


def _confirm_url(response: http.client.HTTPResponse, url: str) -> str:
    """The URL behind Google Drive's "download anyway" form, or a DownloadError."""
    page = response.read(1 << 20).decode("utf-8", errors="replace")
    parser = _ConfirmPageParser()
    parser.feed(page)
    base = response.geturl() or url
    for action, fields in parser.forms:
        if "id" in fields:  # drive.usercontent.google.com/download?id, export, confirm, uuid
            return urllib.parse.urljoin(base, action) + "?" + urllib.parse.urlencode(fields)
    if parser.links:  # older pages: <a href="/uc?export=download&confirm=…&id=…">
        return urllib.parse.urljoin(base, parser.links[0])
    if parser.errors:  # e.g. "Too many users have viewed or downloaded this file recently"
        raise DownloadError("Google Drive refused: " + " ".join(parser.errors))
    raise DownloadError("the server sent an HTML page instead of the file")


def _drive_url(base_url: str, file_id: str) -> str:
    return base_url + "?" + urllib.parse.urlencode({"export": "download", "id": file_id})


def _download_cache(raw_dir: Path) -> Path:
    """Hidden sibling of `raw_dir` that holds downloads until `raw_dir` is complete."""
    return raw_dir.with_name(f".{raw_dir.name}.download")


def _with_hint(error: DownloadError, hint: str) -> DownloadError:
    """The same kind of error, with instructions for a manual download appended."""
    return type(error)(f"{error}\n\n{hint}")


# --- Materialising files ----------------------------------------------------------------------


def _link_all(pairs: Iterable[tuple[Path, Path]]) -> tuple[int, int]:
    """Hard-link each source to its destination, copying when links fail (another filesystem).

    Returns (number linked, number copied).
    """
    linked = copied = 0
    can_link = True
    for src, dst in pairs:
        if can_link:
            try:
                os.link(src, dst)
                linked += 1
                continue
            except OSError as error:  # EXDEV across filesystems, EPERM on some mounts
                logger.info("cannot hard-link %s (%s); copying instead", src, error)
                can_link = False
        shutil.copy2(src, dst)
        copied += 1
    return linked, copied


def _check_md5(path: Path, md5: str | None) -> None:
    if md5 is None:
        return
    actual = md5sum(path)
    if actual != md5:
        raise ChecksumError(
            f"{path} has md5 {actual}, expected {md5}: this is not the official file "
            "(a different version, an edited copy, or a broken download)"
        )


# --- CelebA -----------------------------------------------------------------------------------


def fetch_celeba(
    raw_dir: Path,
    celeba_dir: Path | None,
    progress: bool = True,
    base_url: str = GOOGLE_DRIVE_URL,
    files: Mapping[str, RemoteFile] = CELEBA_FILES,
) -> None:
    """Materialise CelebA in `raw_dir`: downloaded from Google Drive, or linked from a local copy.

    Args:
        raw_dir: folder to write (replaced atomically).
        celeba_dir: a local copy (see `celeba_manual`); None downloads the three official files
            (the image zip stays zipped: the next stage reads its members).
        progress: show download progress bars.
        base_url: Google Drive's download endpoint (tests point it at a local server).
        files: names, Drive ids and md5 sums of the files (tests use their own).
    """
    raw_dir = Path(raw_dir)
    if celeba_dir is not None:
        _link_local_celeba(raw_dir, Path(celeba_dir), files)
        return
    cache = _download_cache(raw_dir)
    try:
        for name, remote in files.items():
            download_file(_drive_url(base_url, remote.source), cache / name, remote.md5, progress)
    except DownloadError as error:
        raise _with_hint(error, celeba_manual(Path("<folder>"), files)) from error
    with io.atomic_dir(raw_dir) as tmp:
        _link_all((cache / name, tmp / name) for name in files)
    shutil.rmtree(cache, ignore_errors=True)
    logger.info("CelebA is in %s", raw_dir)


def celeba_manual(folder: Path, files: Mapping[str, RemoteFile] = CELEBA_FILES) -> str:
    """Instructions for a local CelebA copy: which files to put where."""
    zip_name = f"{celeba.IMAGE_DIR}.zip"
    lines = [
        "To use a local copy of CelebA instead, put these files in one folder and pass it as "
        "celeba_dir (the data.celeba_dir parameter):",
        f"  {folder / zip_name}  (or the extracted folder {folder / celeba.IMAGE_DIR}/ of .jpg "
        "files; a partial set of images is fine)",
    ]
    for name in (celeba.ATTR_FILE, celeba.PARTITION_FILE):
        md5 = files[name].md5
        lines.append(f"  {folder / name}" + (f"  (md5 {md5})" if md5 else ""))
    lines.append(f"They are linked from {CELEBA_PAGE} (Google Drive):")
    lines += [f"  {name}: {_drive_url(GOOGLE_DRIVE_URL, r.source)}" for name, r in files.items()]
    return "\n".join(lines)


def _find_celeba_images(celeba_dir: Path) -> Path:
    """The image folder (`img_align_celeba*/` holding .jpg files) or `img_align_celeba.zip`."""
    exact = celeba_dir / celeba.IMAGE_DIR
    if _has_jpgs(exact):
        return exact
    folders = sorted(
        p for p in celeba_dir.glob(celeba.IMAGE_DIR + "*") if p.is_dir() and _has_jpgs(p)
    )
    if len(folders) > 1:
        raise ValueError(
            f"{celeba_dir} holds several image folders ({', '.join(p.name for p in folders)}); "
            "keep one, or name the one to use img_align_celeba"
        )
    if folders:
        return folders[0]
    zip_path = celeba_dir / f"{celeba.IMAGE_DIR}.zip"
    if zip_path.is_file():
        if not zipfile.is_zipfile(zip_path):
            raise ValueError(f"{zip_path} is not a zip archive")
        with zipfile.ZipFile(zip_path) as archive:
            if not any(m.lower().endswith(".jpg") for m in archive.namelist()):
                raise ValueError(f"{zip_path} holds no .jpg files")
        return zip_path
    raise FileNotFoundError(
        f"no CelebA images in {celeba_dir}: expected a folder {exact}/ (or another "
        f"{celeba.IMAGE_DIR}*/ folder) holding .jpg files, or a zip {zip_path}\n\n"
        + celeba_manual(celeba_dir)
    )


def _has_jpgs(folder: Path) -> bool:
    if not folder.is_dir():
        return False
    with os.scandir(folder) as entries:
        return any(e.name.lower().endswith(".jpg") and e.is_file() for e in entries)


def _link_local_celeba(raw_dir: Path, celeba_dir: Path, files: Mapping[str, RemoteFile]) -> None:
    """Check a local CelebA copy and hard-link (or copy) it into `raw_dir`."""
    if not celeba_dir.is_dir():
        raise FileNotFoundError(
            f"celeba_dir {celeba_dir} is not a folder\n\n" + celeba_manual(celeba_dir, files)
        )
    txt_names = (celeba.ATTR_FILE, celeba.PARTITION_FILE)
    missing = [celeba_dir / n for n in txt_names if not (celeba_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(
            "incomplete CelebA copy: "
            + ", ".join(f"expected {p}" for p in missing)
            + "\n\n"
            + celeba_manual(celeba_dir, files)
        )
    images = _find_celeba_images(celeba_dir)
    for name in txt_names:
        _check_md5(celeba_dir / name, files[name].md5)
    with io.atomic_dir(raw_dir) as tmp:
        if images.is_dir():
            (tmp / celeba.IMAGE_DIR).mkdir()
            with os.scandir(images) as entries:
                names = sorted(e.name for e in entries if e.name.lower().endswith(".jpg"))
            pairs = [(images / n, tmp / celeba.IMAGE_DIR / n) for n in names]
        else:
            names = []
            pairs = [(images, tmp / images.name)]
        linked, copied = _link_all([*pairs, *((celeba_dir / n, tmp / n) for n in txt_names)])
    with (celeba_dir / celeba.ATTR_FILE).open() as f:
        listed = f.readline().strip()
    logger.info(
        "CelebA from %s in %s: %s (%s images of the %s listed), %d files linked, %d copied",
        celeba_dir,
        raw_dir,
        images.name,
        len(names) if names else "zipped",
        listed,
        linked,
        copied,
    )


# --- Oxford-102 flowers -----------------------------------------------------------------------


def fetch_flowers(
    raw_dir: Path,
    flowers_dir: Path | None,
    progress: bool = True,
    min_captions: int = 5,
    files: Mapping[str, RemoteFile] = FLOWERS_FILES,
    colours: Sequence[str] = FLOWER_COLOURS,
) -> None:
    """Materialise Oxford-102 flowers with caption colour attributes in CelebA's layout.

    Images become `raw_dir/img_align_celeba/image_00001.jpg`…; `list_attr_celeba.txt` has one
    column per colour word, 1 when the word appears (whole word, any case) in at least
    `min_captions` of the image's captions, else -1; `list_eval_partition.txt` is the official
    split of `setid.mat` (trnid/valid/tstid → 0/1/2).

    Args:
        raw_dir: folder to write (replaced atomically).
        flowers_dir: a local copy (see `flowers_manual`); None downloads the four files.
        progress: show download progress bars.
        min_captions: captions (of 10) that must name a colour for the attribute (paper: 5).
        files: names, URLs and md5 sums of the four files (tests use their own).
        colours: the colour words, i.e. the attribute names.
    """
    raw_dir = Path(raw_dir)
    if min_captions < 1:
        raise ValueError(f"min_captions must be >= 1, got {min_captions}")
    if not colours or len(set(colours)) != len(colours):
        raise ValueError(f"colours must be distinct words, got {list(colours)}")
    cache = None
    if flowers_dir is None:
        cache = _download_cache(raw_dir)
        try:
            sources = {
                name: download_file(remote.source, cache / name, remote.md5, progress)
                for name, remote in files.items()
            }
        except DownloadError as error:
            raise _with_hint(error, flowers_manual(Path("<folder>"), files)) from error
    else:
        sources = _local_flowers(Path(flowers_dir), files)

    split = _read_setid(sources[FLOWERS_SETID])
    n_images = _read_label_count(sources[FLOWERS_LABELS])
    if set(split.index) != set(range(1, n_images + 1)):
        raise ValueError(
            f"{sources[FLOWERS_SETID]} lists {len(split)} images but "
            f"{sources[FLOWERS_LABELS]} labels {n_images}: the two files do not belong together"
        )
    counts = _caption_colour_counts(sources[FLOWERS_CAPTIONS], list(colours), split.index)
    names = [f"image_{i:05d}.jpg" for i in split.index]
    table = pd.DataFrame(
        np.where(counts >= min_captions, 1, -1).astype(np.int8), index=names, columns=list(colours)
    )
    with io.atomic_dir(raw_dir) as tmp:
        _write_flower_images(sources[FLOWERS_IMAGES], tmp / celeba.IMAGE_DIR, set(split.index))
        celeba.write_attributes(tmp / celeba.ATTR_FILE, table)
        celeba.write_partition(
            tmp / celeba.PARTITION_FILE, pd.Series(split.to_numpy(), index=names)
        )
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)
    share = ", ".join(f"{c} {(table[c] == 1).mean():.1%}" for c in table.columns)
    logger.info(
        "Oxford-102 flowers in %s: %d images; attribute shares: %s", raw_dir, len(table), share
    )


def flowers_manual(folder: Path, files: Mapping[str, RemoteFile] = FLOWERS_FILES) -> str:
    """Instructions for a local Oxford-102 + captions copy: which files to put where."""
    alternatives = {
        FLOWERS_IMAGES: f" (or its extracted folder {folder / 'jpg'}/)",
        FLOWERS_CAPTIONS: f" (or its extracted folder {folder / 'text_c10'}/)",
    }
    lines = [
        "To use a local copy of the flowers data instead, put these files in one folder and pass "
        "it as flowers_dir (the data.flowers_dir parameter):"
    ]
    for name, remote in files.items():
        md5 = f", md5 {remote.md5}" if remote.md5 else ""
        where = FLOWERS_CAPTIONS_PAGE if name == FLOWERS_CAPTIONS else remote.source
        lines.append(f"  {folder / name}{alternatives.get(name, '')}  (from {where}{md5})")
    return "\n".join(lines)


def _local_flowers(flowers_dir: Path, files: Mapping[str, RemoteFile]) -> dict[str, Path]:
    """Paths of a local flowers copy (archives, or their extracted folders), md5-checked."""
    if not flowers_dir.is_dir():
        raise FileNotFoundError(
            f"flowers_dir {flowers_dir} is not a folder\n\n" + flowers_manual(flowers_dir, files)
        )
    extracted = {
        FLOWERS_IMAGES: [flowers_dir / "jpg"],
        FLOWERS_CAPTIONS: [flowers_dir / "text_c10", flowers_dir / "cvpr2016_flowers" / "text_c10"],
    }
    sources: dict[str, Path] = {}
    missing: list[str] = []
    for name in files:
        if (flowers_dir / name).is_file():
            sources[name] = flowers_dir / name
            _check_md5(sources[name], files[name].md5)
            continue
        folder = next((p for p in extracted.get(name, []) if p.is_dir()), None)
        if folder is None:
            missing.append(f"expected {flowers_dir / name}")
        else:
            sources[name] = folder
    if missing:
        raise FileNotFoundError(
            "incomplete flowers copy: "
            + ", ".join(missing)
            + "\n\n"
            + flowers_manual(flowers_dir, files)
        )
    return sources


def _read_setid(path: Path) -> pd.Series:
    """Split name per image id (1-based) from `setid.mat`, sorted by id."""
    from scipy.io import loadmat  # scipy is only needed for the flowers

    mat = loadmat(path, squeeze_me=True)
    missing = [k for k in FLOWERS_SPLIT_KEYS if k not in mat]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: not Oxford-102's setid.mat")
    split: dict[int, str] = {}
    for key, name in zip(FLOWERS_SPLIT_KEYS, celeba.SPLITS, strict=True):
        for image_id in np.atleast_1d(mat[key]).astype(int).tolist():
            if image_id in split:
                raise ValueError(f"{path}: image {image_id} is in two splits")
            split[image_id] = name
    return pd.Series(split, name="split").sort_index()


def _read_label_count(path: Path) -> int:
    """Number of images labelled in `imagelabels.mat`."""
    from scipy.io import loadmat

    mat = loadmat(path, squeeze_me=True)
    if "labels" not in mat:
        raise ValueError(f"{path} lacks `labels`: not Oxford-102's imagelabels.mat")
    return int(np.atleast_1d(mat["labels"]).size)


def _caption_files(source: Path) -> Iterator[tuple[int, str]]:
    """(image id, caption text) for every `text_c10/class_*/image_*.txt` in an archive or folder."""
    if source.is_dir():  # the extracted text_c10/ folder
        for path in sorted(source.glob("class_*/image_*.txt")):
            match = _CAPTION_MEMBER.search("text_c10/" + path.relative_to(source).as_posix())
            if match:
                yield int(match.group(2)), path.read_text("utf-8", errors="replace")
        return
    try:
        with tarfile.open(source, "r|*") as archive:  # one streaming pass
            for member in archive:
                match = _CAPTION_MEMBER.search(member.name)
                if match and member.isfile():
                    data = archive.extractfile(member)
                    assert data is not None
                    yield int(match.group(2)), data.read().decode("utf-8", errors="replace")
    except tarfile.TarError as error:
        raise ValueError(
            f"{source} is not a readable tar archive ({error}); expected Reed et al.'s "
            f"{FLOWERS_CAPTIONS} from {FLOWERS_CAPTIONS_PAGE}"
        ) from error


def _caption_colour_counts(source: Path, colours: list[str], ids: pd.Index) -> np.ndarray:
    """(len(ids), len(colours)) counts of captions naming each colour, per image.

    The captions archive has no published checksum, so its structure stands in for one: every
    image needs its `text_c10/class_XXXXX/image_XXXXX.txt`, one caption per line.
    """
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, colours)) + r")\b", re.IGNORECASE)
    column = {c.lower(): j for j, c in enumerate(colours)}
    row = {image_id: i for i, image_id in enumerate(ids)}
    counts = np.zeros((len(ids), len(colours)), np.int64)
    n_captions: dict[int, int] = {}
    for image_id, text in _caption_files(source):
        if image_id in n_captions:
            raise ValueError(f"{source}: image {image_id} has two caption files")
        captions = [line for line in text.splitlines() if line.strip()]
        n_captions[image_id] = len(captions)
        if image_id not in row:
            continue
        for caption in captions:  # a caption counts once per colour, however often it says it
            for word in {m.lower() for m in pattern.findall(caption)}:
                counts[row[image_id], column[word]] += 1
    absent = [i for i in ids if not n_captions.get(i)]
    if absent:
        raise ValueError(
            f"{source} has no captions for {len(absent)} of {len(ids)} images (first: "
            f"text_c10/class_*/image_{absent[0]:05d}.txt); it is not Reed et al.'s "
            f"{FLOWERS_CAPTIONS} ({FLOWERS_CAPTIONS_PAGE})"
        )
    sizes = sorted({n_captions[i] for i in ids})
    if sizes != [10]:
        logger.warning("%s: captions per image range over %s (expected 10)", source, sizes)
    return counts


def _write_flower_images(source: Path, out: Path, ids: set[int]) -> None:
    """Copy `jpg/image_XXXXX.jpg` for every id from `102flowers.tgz` (or a `jpg/` folder)."""
    out.mkdir()
    found: set[int] = set()
    if source.is_dir():
        pairs = []
        for path in sorted(source.glob("image_*.jpg")):
            match = _IMAGE_MEMBER.search("jpg/" + path.name)
            if match and int(match.group(1)) in ids:
                found.add(int(match.group(1)))
                pairs.append((path, out / path.name))
        _link_all(pairs)
    else:
        try:
            with tarfile.open(source, "r|*") as archive:
                for member in archive:
                    match = _IMAGE_MEMBER.search(member.name)
                    if match and member.isfile() and int(match.group(1)) in ids:
                        data = archive.extractfile(member)
                        assert data is not None
                        _copy_stream(data, out / f"image_{match.group(1)}.jpg")
                        found.add(int(match.group(1)))
        except tarfile.TarError as error:
            raise ValueError(f"{source} is not a readable tar archive ({error})") from error
    absent = sorted(ids - found)
    if absent:
        raise ValueError(
            f"{source} lacks {len(absent)} of the {len(ids)} images listed in setid.mat (first: "
            f"jpg/image_{absent[0]:05d}.jpg)"
        )


def _copy_stream(data: BinaryIO, dest: Path) -> None:
    with dest.open("wb") as f:
        shutil.copyfileobj(data, f, CHUNK)
