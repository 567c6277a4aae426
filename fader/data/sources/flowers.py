"""The `flowers` source: Oxford-102 flowers with caption colour attributes, in CelebA's layout.

The paper's data (Section 5): Oxford-102 flowers with colour attributes built from Reed et al.'s
ten captions per image ("an image has a colour attribute if that colour word appears in at least
5 of its 10 captions"). The md5 sums are those of torchvision's `datasets/flowers102.py`.

The result is the layout the `preprocess` stage reads (`fader.data.formats`):
`raw_dir/img_align_celeba/image_00001.jpg`…, `list_attr_celeba.txt` (one column per colour word)
and `list_eval_partition.txt` (the official split of `setid.mat`). `raw_dir` is written with
`io.atomic_dir`; downloads go first to the resumable cache `.<raw_dir name>.download/` (see
`fader.data.sources.remote`), removed once `raw_dir` is in place.
"""

from __future__ import annotations

import logging
import re
import shutil
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

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

OXFORD_FLOWERS_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"

FLOWERS_IMAGES = "102flowers.tgz"
FLOWERS_LABELS = "imagelabels.mat"
FLOWERS_SETID = "setid.mat"
FLOWERS_CAPTIONS = "cvpr2016_flowers.tar.gz"

#: Reed et al.'s captions on Google Drive (the file linked from github.com/reedscot/cvpr2016) and
#: the resource key Drive added to its link in 2021.
FLOWERS_CAPTIONS_ID = "0B0ywwgffWnLLcms2WWJQRFNSWXM"
FLOWERS_CAPTIONS_KEY = "0-Av8zFbeDDvNcF1sSjDR32w"

#: Oxford-102 (md5 sums from torchvision `Flowers102._file_dict`) and Reed et al. 2016's captions
#: ("Learning Deep Representations of Fine-Grained Visual Descriptions"). No checksum of the
#: captions is published anywhere we could find, so their structure is checked instead
#: (`text_c10/class_XXXXX/image_XXXXX.txt` for every image). gdown fetches Drive files by id
#: alone (it rebuilds every Drive link as `uc?id=…`), so the resource key cannot be sent; should
#: Drive refuse the file without it, the error message points to `FLOWERS_CAPTIONS_PAGE`.
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
    FLOWERS_CAPTIONS: RemoteFile(drive_url(FLOWERS_CAPTIONS_ID), None),
}

#: The page a person opens to fetch the captions by hand.
FLOWERS_CAPTIONS_PAGE = (
    f"https://drive.google.com/file/d/{FLOWERS_CAPTIONS_ID}/view?resourcekey={FLOWERS_CAPTIONS_KEY}"
)

#: Colour words looked for in the captions; each becomes one attribute column (paper, Section 5).
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

#: Splits of `setid.mat`, in the order of `formats.SPLITS` (0/1/2 = train/valid/test).
FLOWERS_SPLIT_KEYS: tuple[str, ...] = ("trnid", "valid", "tstid")

CHUNK = 1 << 20  # bytes per copy when extracting images

_IMAGE_MEMBER = re.compile(r"(?:^|/)jpg/image_(\d{5})\.jpg$")
_CAPTION_MEMBER = re.compile(r"(?:^|/)text_c10/class_(\d{5})/image_(\d{5})\.txt$")


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
        cache = download_cache(raw_dir)
        sources = fetch_files(files, cache, progress, flowers_manual(Path("<folder>"), files))
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
        _write_flower_images(sources[FLOWERS_IMAGES], tmp / formats.IMAGE_DIR, set(split.index))
        formats.write_attributes(tmp / formats.ATTR_FILE, table)
        formats.write_partition(
            tmp / formats.PARTITION_FILE, pd.Series(split.to_numpy(), index=names)
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
    for name, file in files.items():
        md5 = f", md5 {file.md5}" if file.md5 else ""
        where = FLOWERS_CAPTIONS_PAGE if name == FLOWERS_CAPTIONS else file.url
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
            check_md5(sources[name], files[name].md5)
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
    for key, name in zip(FLOWERS_SPLIT_KEYS, formats.SPLITS, strict=True):
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
        link_all(pairs)
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
