"""The data's formats on disk: the raw folder every source writes (CelebA's layout), and the
names of the files in the prepared folder that `preprocess` makes of it.

The raw folder is laid out as CelebA's own download is (Section 5 of the paper: 202,599 aligned
178x218 images, 40 binary attributes, the standard train/valid/test split): `img_align_celeba/`
(or its zip), `list_attr_celeba.txt` and `list_eval_partition.txt`. Every source (the synthetic
faces, CelebA, Oxford-102 flowers) writes it and `preprocess` reads it, so all go through one
code path; only CelebA's attributes are the 40 below, other sources write their own names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fader import io

#: The 40 attribute names, in the column order of `list_attr_celeba.txt`.
CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)

#: Names of the three parts of `list_eval_partition.txt` (0, 1, 2).
SPLITS: tuple[str, ...] = ("train", "valid", "test")

#: CelebA's aligned image size (width, height).
CELEBA_SIZE: tuple[int, int] = (178, 218)

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_DIR = "img_align_celeba"

# The prepared folder (`fader.data.preprocess` writes it, `fader.data.prepared` reads it).
IMAGES_FILE = "images.npy"
TABLE_FILE = "attributes.csv"
META_FILE = "meta.json"


class CelebAFormatError(ValueError):
    """A CelebA annotation file does not have the documented layout."""


def check_attributes(
    names: Sequence[str], valid: Sequence[str] | None = CELEBA_ATTRIBUTES
) -> list[str]:
    """Return `names` as a list, or raise naming the unknown ones and listing the valid ones.

    There must be at least one and none twice. `valid=None` accepts any name: params.yaml's
    are checked against the raw folder's own attributes only once a source has written it.
    """
    names = list(names)
    if not names:
        hint = "list some, e.g. [Smiling]" if valid is None else "choose from: " + ", ".join(valid)
        raise ValueError(f"no attributes selected; {hint}")
    if valid is not None and (unknown := [n for n in names if n not in valid]):
        raise ValueError(
            f"unknown attribute(s) {', '.join(map(repr, unknown))}; valid names are: "
            + ", ".join(valid)
        )
    if len(set(names)) != len(names):
        raise ValueError(f"attributes listed more than once: {names}")
    return names


def read_attributes(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Parse `list_attr_celeba.txt` into a DataFrame of int8 values in {-1, 1}.

    Layout: line 1 is the image count, line 2 the attribute names, then one row per image,
    `filename v1 ... vN`, whitespace separated (CRLF line endings in the official file).
    The index is the file name, the columns are the attribute names.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"attribute file not found: {path}")
    with path.open("r", encoding="ascii", errors="replace") as f:
        count_line = f.readline().strip().lstrip("\ufeff\ufffd")  # a BOM, decoded or not
        names = f.readline().split()
        first_row = f.readline().split()
    if not count_line.isdigit():
        raise CelebAFormatError(f"{path}: line 1 must be the image count, got {count_line!r}")
    if not names:
        raise CelebAFormatError(f"{path}: line 2 must list the attribute names")
    if first_row and len(first_row) != len(names) + 1:
        raise CelebAFormatError(
            f"{path}: line 2 names {len(names)} attributes but line 3 has {len(first_row) - 1} "
            f"values after its file name: a name is missing from the header, or a value from "
            "the row"
        )
    try:
        table = pd.read_csv(
            path,
            sep=r"\s+",
            skiprows=2,
            header=None,
            names=["filename", *names],
            index_col=0,
            dtype={"filename": str, **{n: np.int8 for n in names}},
        )
    except ValueError as error:  # missing or non-integer values
        raise CelebAFormatError(
            f"{path}: every row must be a file name and {len(names)} values of 1 or -1 "
            f"(fewer than {len(names)} values, or not integers: {error})"
        ) from None
    if len(table) != int(count_line):
        raise CelebAFormatError(
            f"{path}: line 1 announces {int(count_line)} images but {len(table)} rows follow"
        )
    if table.isna().any().any():
        raise CelebAFormatError(f"{path}: some rows have fewer than {len(names)} values")
    values = table.to_numpy()
    if not np.isin(values, (-1, 1)).all():
        raise CelebAFormatError(f"{path}: attribute values must be 1 or -1")
    if table.index.has_duplicates:
        raise CelebAFormatError(f"{path}: {_duplicates(table.index)}")
    table.index.name = "filename"
    return table


def read_partition(path: str | os.PathLike[str]) -> pd.Series:
    """Parse `list_eval_partition.txt` (`filename 0|1|2`) into a Series of split names."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"partition file not found: {path}")
    try:
        table = pd.read_csv(
            path,
            sep=r"\s+",
            header=None,
            names=["filename", "part"],
            index_col=0,
            dtype={"filename": str, "part": "Int64"},
        )
    except ValueError as error:  # a non-numeric part, or a row with too many fields
        raise CelebAFormatError(f"{path}: every row must be `filename 0|1|2` ({error})") from None
    if table["part"].isna().any() or not table["part"].isin((0, 1, 2)).all():
        bad = table.index[table["part"].isna() | ~table["part"].isin((0, 1, 2))]
        raise CelebAFormatError(
            f"{path}: every row must be `filename 0|1|2`; not so for {', '.join(bad[:5])}"
        )
    if table.index.has_duplicates:
        raise CelebAFormatError(f"{path}: {_duplicates(table.index)}")
    split = table["part"].map(dict(enumerate(SPLITS))).astype(str)
    split.name = "split"
    return split


def _duplicates(index: pd.Index) -> str:
    names = index[index.duplicated()].unique()
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{len(names)} file name(s) listed more than once: {shown}"


def write_attributes(path: str | os.PathLike[str], table: pd.DataFrame) -> None:
    """Write a {-1, 1} table in the layout of `list_attr_celeba.txt` (atomically)."""
    lines = [str(len(table)), " ".join(table.columns)]
    values = table.to_numpy()
    for name, row in zip(table.index, values):
        lines.append(name + " " + " ".join(f"{v:2d}" for v in row))
    io.write_text(path, "\n".join(lines) + "\n")


def write_partition(path: str | os.PathLike[str], split: pd.Series) -> None:
    """Write split names ('train'/'valid'/'test') as `list_eval_partition.txt` (atomically)."""
    codes = {name: i for i, name in enumerate(SPLITS)}
    io.write_text(path, "".join(f"{f} {codes[s]}\n" for f, s in split.items()))
