"""Remote data files: fetched into a resumable cache, md5-checked, then linked into place.

Shared by the CelebA and flowers sources. The HTTP work is gdown's (`gdown.download`):

- Google Drive links (drive.google.com): gdown answers Drive's "can't scan this file for
  viruses" page (its download form or older confirm link) and reports Drive's error pages
  ("Too many users have viewed or downloaded this file recently") as `FileURLRetrievalError`;
- any URL: with `resume=True` the bytes go to a `<name>XXXXXXXX.part` file beside the output,
  kept when a transfer breaks and continued with an HTTP `Range` request on the next call
  (checked against `Content-Range`, with `If-Range`, so a changed file is never spliced);
  `retries` reconnects and resumes within one call; a body shorter than its `Content-Length`
  is an error, not a file; the output appears only once complete (the `.part` is moved);
- `hasher` is fed every byte (those of a resumed `.part` first), so the md5 needs no re-read.

What stays here, because gdown does not do it: the md5 check against the official sums (and
removing a file that fails it), restarting from scratch when a server refuses to resume (gdown
keeps the `.part` and fails the same way on every later call), and error messages that say what
to download by hand and where to put it.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import gdown
import requests

logger = logging.getLogger(__name__)

#: Seconds gdown waits for the next bytes from the server.
TIMEOUT_S = 60.0
#: Reconnections (each resuming where the transfer broke) gdown makes per file within one call.
RETRIES = 3

# gdown's message when a server answers a Range request with anything but the asked-for bytes.
_RANGE_REFUSED = "did not honor the requested byte range"


class RemoteFile(NamedTuple):
    """Where one file lives and the md5 of its official version (None: no published checksum).

    `url` is a plain URL or a Google Drive link (`drive_url`); gdown tells them apart by host.
    """

    url: str
    md5: str | None


class DownloadError(RuntimeError):
    """A data file could not be fetched; the message says what failed and how to do it by hand."""


class ChecksumError(DownloadError):
    """A file's md5 differs from the official one; the message gives both sums."""


def drive_url(file_id: str) -> str:
    """The Google Drive download link of a file id (the one gdown itself builds from an id)."""
    return f"https://drive.google.com/uc?id={file_id}"


def md5sum(path: Path) -> str:
    """The md5 hex digest of a file."""
    with Path(path).open("rb") as f:
        return hashlib.file_digest(f, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def check_md5(path: Path, md5: str | None) -> None:
    """Raise `ChecksumError` unless a local file has the official md5 (None: nothing to check)."""
    if md5 is None:
        return
    actual = md5sum(path)
    if actual != md5:
        raise ChecksumError(
            f"{path} has md5 {actual}, expected {md5}: this is not the official file "
            "(a different version, an edited copy, or a broken download)"
        )


def download_cache(raw_dir: Path) -> Path:
    """Hidden sibling of `raw_dir` that holds downloads until `raw_dir` is complete."""
    return raw_dir.with_name(f".{raw_dir.name}.download")


def with_hint(error: DownloadError, hint: str) -> DownloadError:
    """The same kind of error, with instructions for a manual download appended."""
    return type(error)(f"{error}\n\n{hint}")


def fetch_file(
    remote: RemoteFile,
    dest: Path,
    progress: bool = True,
    retries: int = RETRIES,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Download `remote` to `dest` (resuming an earlier attempt) and check its md5.

    An existing `dest` with the right md5 (or any `dest` when `remote.md5` is None) is kept as
    it is; one with another md5 is fetched again. `dest` only ever holds a complete download
    (gdown moves its `.part` there at the end), and one that fails the md5 check is deleted.

    Raises:
        DownloadError: network or HTTP failure, a Drive error page, or a body cut short; the
            `.part` is kept, so the next call resumes.
        ChecksumError: the complete download has another md5.
    """
    dest = Path(dest)
    if dest.is_file():
        if remote.md5 is None:
            logger.info("%s is already there", dest)
            return dest
        actual = md5sum(dest)
        if actual == remote.md5:
            logger.info("%s is already there (md5 ok)", dest)
            return dest
        logger.warning("%s has md5 %s, expected %s: downloading it again", dest, actual, remote.md5)
        dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        try:
            digest = _download(remote, dest, progress, retries, timeout)
        except gdown.exceptions.DownloadError as error:
            if _RANGE_REFUSED not in str(error):
                raise
            logger.warning("%s: the server refused to resume; downloading it again", dest.name)
            for part in _partial_files(dest):
                part.unlink()
            digest = _download(remote, dest, progress, retries, timeout)
    except (gdown.exceptions.DownloadError, requests.RequestException) as error:
        raise DownloadError(
            f"could not download {remote.url} to {dest}: {_reason(error)}\nRun again to retry "
            f"(a download cut short resumes); to do it by hand, download {remote.url} (e.g. in a "
            f"browser) and save it as {dest}, then run again."
        ) from error
    if remote.md5 is not None and digest != remote.md5:
        dest.unlink()
        raise ChecksumError(
            f"the download of {remote.url} has md5 {digest}, expected {remote.md5}; deleted it. "
            "The server sent another file (an error page, or a changed file): download it "
            f"by hand and check its md5 before saving it as {dest}."
        )
    logger.info("downloaded %s", dest)
    return dest


def fetch_files(
    files: Mapping[str, RemoteFile], folder: Path, progress: bool, manual: str
) -> dict[str, Path]:
    """`fetch_file` for each name into `folder`; a failure's message ends with `manual`."""
    try:
        return {name: fetch_file(remote, folder / name, progress) for name, remote in files.items()}
    except DownloadError as error:
        raise with_hint(error, manual) from error


def _download(
    remote: RemoteFile, dest: Path, progress: bool, retries: int, timeout: float
) -> str | None:
    """One gdown call; the md5 of what it wrote (None when there is no md5 to check)."""
    hasher = hashlib.md5(usedforsecurity=False) if remote.md5 is not None else None
    gdown.download(
        url=remote.url,
        output=str(dest),
        quiet=not progress,
        resume=True,
        use_cookies=False,  # neither read nor write ~/.cache/gdown/cookies.txt
        hasher=hasher,
        timeout=timeout,
        retries=retries,
    )
    return None if hasher is None else hasher.hexdigest()


def _partial_files(dest: Path) -> list[Path]:
    """gdown's `.part` files of `dest`: `<name>` + 8 random characters + `.part`.

    gdown has no call that discards them, so its naming (`_prepare_partial_file`) is mirrored.
    """
    pattern = glob.escape(dest.name) + "?" * 8 + ".part"
    return sorted(dest.parent.glob(pattern))


def _reason(error: BaseException) -> str:
    """What went wrong, in words, from gdown's or requests' exception."""
    offline = (requests.ConnectionError, requests.Timeout)
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code} {error.response.reason}"
    if isinstance(error, offline):
        return f"no connection ({error}); are you offline?"
    if isinstance(error, gdown.exceptions.FileURLRetrievalError):
        return f"Google Drive refused the download: {error}"
    if isinstance(error.__cause__, offline):  # retries used up, or a transfer cut off
        return f"{error} (no connection: are you offline?)"
    return str(error)


def link_all(pairs: Iterable[tuple[Path, Path]]) -> tuple[int, int]:
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
