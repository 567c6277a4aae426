"""The `celeba` source: CelebA from its official Google Drive files, or linked from a local copy.

The paper's data (Section 5): CelebA (202,599 aligned images, 40 attributes, the official split).
The official FaderNetworks code has no download step (its README asks for a manual download),
so the Drive ids and md5 sums here are those of torchvision's `datasets/celeba.py`.

The result is the layout the `preprocess` stage reads (`fader.data.formats`):

    raw_dir/img_align_celeba.zip  (CelebA's own zip, kept zipped)  or  raw_dir/img_align_celeba/
    raw_dir/list_attr_celeba.txt
    raw_dir/list_eval_partition.txt

`raw_dir` is written with `io.atomic_dir`, so a failure leaves nothing half-written. Downloads go
first to a hidden sibling folder `.<raw_dir name>.download/` (resumable, kept between failed
runs; see `fader.data.sources.remote`) that is removed once `raw_dir` is in place.
"""

from __future__ import annotations

import logging
import os
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path

from fader import io
from fader.data import formats
from fader.data.sources.remote import (
    RemoteFile,
    check_md5,
    download_cache,
    drive_url,
    fetch_files,
    link_all,
)

logger = logging.getLogger(__name__)

#: CelebA's official Google Drive files: ids and md5 sums as in torchvision's `CelebA.file_list`.
CELEBA_FILES: dict[str, RemoteFile] = {
    f"{formats.IMAGE_DIR}.zip": RemoteFile(
        drive_url("0B7EVK8r0v71pZjFTYXZWM3FlRnM"), "00d2c5bc6d35e252742224ab0c1e8fcb"
    ),
    formats.ATTR_FILE: RemoteFile(
        drive_url("0B7EVK8r0v71pblRyaVFSWGxPY0U"), "75e246fa4810816ffd6ee81facbd244c"
    ),
    formats.PARTITION_FILE: RemoteFile(
        drive_url("0B7EVK8r0v71pY0NSMzRuSXJEVkk"), "d32c9cbf5e040fd4025c592c306e6668"
    ),
}

#: The CelebA project page, for manual downloads.
CELEBA_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"


def fetch_celeba(
    raw_dir: Path,
    celeba_dir: Path | None,
    progress: bool = True,
    files: Mapping[str, RemoteFile] = CELEBA_FILES,
) -> None:
    """Materialise CelebA in `raw_dir`: downloaded from Google Drive, or linked from a local copy.

    Args:
        raw_dir: folder to write (replaced atomically).
        celeba_dir: a local copy (see `celeba_manual`); None downloads the three official files
            (the image zip stays zipped: the next stage reads its members).
        progress: show download progress bars.
        files: names, URLs and md5 sums of the files (tests use their own).
    """
    raw_dir = Path(raw_dir)
    if celeba_dir is not None:
        _link_local_celeba(raw_dir, Path(celeba_dir), files)
        return
    cache = download_cache(raw_dir)
    fetched = fetch_files(files, cache, progress, celeba_manual(Path("<folder>"), files))
    with io.atomic_dir(raw_dir) as tmp:
        link_all((path, tmp / name) for name, path in fetched.items())
    shutil.rmtree(cache, ignore_errors=True)
    logger.info("CelebA is in %s", raw_dir)


def celeba_manual(folder: Path, files: Mapping[str, RemoteFile] = CELEBA_FILES) -> str:
    """Instructions for a local CelebA copy: which files to put where."""
    zip_name = f"{formats.IMAGE_DIR}.zip"
    lines = [
        "To use a local copy of CelebA instead, put these files in one folder and pass it as "
        "celeba_dir (the data.celeba_dir parameter):",
        f"  {folder / zip_name}  (or the extracted folder {folder / formats.IMAGE_DIR}/ of "
        ".jpg files; a partial set of images is fine)",
    ]
    for name in (formats.ATTR_FILE, formats.PARTITION_FILE):
        md5 = files[name].md5
        lines.append(f"  {folder / name}" + (f"  (md5 {md5})" if md5 else ""))
    lines.append(f"They are linked from {CELEBA_PAGE} (Google Drive):")
    lines += [f"  {name}: {remote.url}" for name, remote in files.items()]
    return "\n".join(lines)


def _find_celeba_images(celeba_dir: Path) -> Path:
    """The image folder (`img_align_celeba*/` holding .jpg files) or `img_align_celeba.zip`."""
    exact = celeba_dir / formats.IMAGE_DIR
    if _has_jpgs(exact):
        return exact
    folders = sorted(
        p for p in celeba_dir.glob(formats.IMAGE_DIR + "*") if p.is_dir() and _has_jpgs(p)
    )
    if len(folders) > 1:
        raise ValueError(
            f"{celeba_dir} holds several image folders ({', '.join(p.name for p in folders)}); "
            "keep one, or name the one to use img_align_celeba"
        )
    if folders:
        return folders[0]
    zip_path = celeba_dir / f"{formats.IMAGE_DIR}.zip"
    if zip_path.is_file():
        if not zipfile.is_zipfile(zip_path):
            raise ValueError(f"{zip_path} is not a zip archive")
        with zipfile.ZipFile(zip_path) as archive:
            if not any(m.lower().endswith(".jpg") for m in archive.namelist()):
                raise ValueError(f"{zip_path} holds no .jpg files")
        return zip_path
    raise FileNotFoundError(
        f"no CelebA images in {celeba_dir}: expected a folder {exact}/ (or another "
        f"{formats.IMAGE_DIR}*/ folder) holding .jpg files, or a zip {zip_path}\n\n"
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
    txt_names = (formats.ATTR_FILE, formats.PARTITION_FILE)
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
        check_md5(celeba_dir / name, files[name].md5)
    with io.atomic_dir(raw_dir) as tmp:
        if images.is_dir():
            (tmp / formats.IMAGE_DIR).mkdir()
            with os.scandir(images) as entries:
                names = sorted(e.name for e in entries if e.name.lower().endswith(".jpg"))
            pairs = [(images / n, tmp / formats.IMAGE_DIR / n) for n in names]
        else:
            names = []
            pairs = [(images, tmp / images.name)]
        linked, copied = link_all([*pairs, *((celeba_dir / n, tmp / n) for n in txt_names)])
    with (celeba_dir / formats.ATTR_FILE).open() as f:
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
