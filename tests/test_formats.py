import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fader.data import formats


def test_attributes_round_trip(tmp_path: Path) -> None:
    table = pd.DataFrame(
        [[1, -1], [-1, -1], [1, 1]], index=["a.jpg", "b.jpg", "c.jpg"], columns=["Male", "Young"]
    )
    formats.write_attributes(tmp_path / "attr.txt", table)
    back = formats.read_attributes(tmp_path / "attr.txt")
    assert list(back.columns) == ["Male", "Young"]
    assert back.to_numpy().tolist() == table.to_numpy().tolist()
    assert back.dtypes.eq(np.int8).all()


@pytest.mark.parametrize(
    "text, message",
    [
        ("x\nMale\na.jpg 1\n", "line 1"),
        ("2\nMale\na.jpg 1\n", "announces 2"),
        ("1\nMale\na.jpg 0\n", "1 or -1"),
        ("1\nMale Young\na.jpg 1\n", "line 2 names 2 attributes but line 3 has 1 values"),
        ("1\nMale\na.jpg 1 -1\n", "line 2 names 1 attributes but line 3 has 2 values"),
        ("2\nMale Young\na.jpg 1 1\nb.jpg 1\n", "fewer than 2"),  # a later short row
        ("2\nMale\na.jpg 1\nb.jpg x\n", "not integers"),
        ("3\nMale\na.jpg 1\nb.jpg 1\na.jpg -1\n", "1 file name.s. listed more than once: a.jpg"),
    ],
)
def test_bad_attribute_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "attr.txt").write_text(text)
    with pytest.raises(formats.CelebAFormatError, match=message):
        formats.read_attributes(tmp_path / "attr.txt")


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.txt"):
        formats.read_attributes(tmp_path / "nothere.txt")
    with pytest.raises(FileNotFoundError, match="nothere.txt"):
        formats.read_partition(tmp_path / "nothere.txt")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.jpg 0\nb.jpg 3\n", "every row must be `filename 0|1|2`; not so for b.jpg"),
        ("a.jpg 0\nb.jpg two\n", "every row must be `filename 0|1|2` ("),
        ("a.jpg 0\nb.jpg 1\na.jpg 2\n", "1 file name(s) listed more than once: a.jpg"),
    ],
)
def test_bad_partition_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "p.txt").write_text(text)
    # re.escape: "0|1|2" as a pattern would match any 0, 1 or 2, e.g. in the temporary path
    with pytest.raises(formats.CelebAFormatError, match=re.escape(message)) as error:
        formats.read_partition(tmp_path / "p.txt")
    assert str(error.value).startswith(str(tmp_path / "p.txt"))


def test_a_byte_order_mark_and_crlf_are_read(tmp_path: Path) -> None:
    (tmp_path / "attr.txt").write_bytes(b"\xef\xbb\xbf1\r\nMale\r\na.jpg  1\r\n")
    assert formats.read_attributes(tmp_path / "attr.txt").loc["a.jpg", "Male"] == 1


def test_unknown_attribute_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="'Smilling'.*Smiling"):
        formats.check_attributes(["Smilling"])
    with pytest.raises(ValueError, match="more than once"):
        formats.check_attributes(["Male", "Male"])
    assert formats.check_attributes(("Male", "Young")) == ["Male", "Young"]


def test_any_names_pass_without_a_list_of_valid_ones_but_not_none_or_twice() -> None:
    # params.yaml's names, before the raw folder says which exist (PreprocessConfig)
    assert formats.check_attributes(("red", "Smiling"), valid=None) == ["red", "Smiling"]
    with pytest.raises(ValueError, match=r"no attributes selected; list some, e.g. \[Smiling\]"):
        formats.check_attributes([], valid=None)
    with pytest.raises(ValueError, match="no attributes selected; choose from: A, B"):
        formats.check_attributes([], valid=["A", "B"])
    with pytest.raises(ValueError, match=r"listed more than once: \['red', 'red'\]"):
        formats.check_attributes(["red", "red"], valid=None)


@pytest.mark.celeba
def test_parser_reads_the_real_files(shared_celeba: Path) -> None:
    table = formats.read_attributes(shared_celeba / formats.ATTR_FILE)
    assert table.shape == (202_599, 40)
    assert tuple(table.columns) == formats.CELEBA_ATTRIBUTES
    assert table.index[0] == "000001.jpg"
    split = formats.read_partition(shared_celeba / formats.PARTITION_FILE)
    assert split.value_counts().to_dict() == {"train": 162_770, "valid": 19_867, "test": 19_962}
    assert (split.index == table.index).all()
    # the official partition is in file order: all train, then valid, then test
    assert (split.iloc[:162_770] == "train").all() and (split.iloc[-19_962:] == "test").all()
