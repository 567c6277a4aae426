import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fader.data import formats
from fader.data.sources import synthetic

N = 40  # 32 train, 4 valid, 4 test


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root`, by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic") / "raw"
    synthetic.generate(out, n_images=N, seed=3, workers=1, progress=False)
    return out


def face(seed: int = 0, **attributes: bool) -> synthetic.Face:
    """One identity; `attributes` (CelebA names) are on, all others off (No_Beard on)."""
    return synthetic.sample_face(attributes, np.random.default_rng(seed))


def difference(a: Image.Image, b: Image.Image) -> np.ndarray:
    """Per-pixel absolute difference summed over RGB: (H, W)."""
    return np.abs(np.asarray(a, np.int32) - np.asarray(b, np.int32)).sum(axis=2)


def test_writes_celeba_layout(generated: Path) -> None:
    names = [f"{i:06d}.jpg" for i in range(1, N + 1)]
    assert sorted(p.name for p in (generated / formats.IMAGE_DIR).iterdir()) == names
    for name in names[:5]:
        with Image.open(generated / formats.IMAGE_DIR / name) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert image.size == formats.CELEBA_SIZE == (178, 218)
    table = formats.read_attributes(generated / formats.ATTR_FILE)
    assert list(table.index) == names
    assert list(table.columns) == list(formats.CELEBA_ATTRIBUTES)
    assert set(np.unique(table.to_numpy())) <= {-1, 1}
    # attributes that are not drawn stay off
    undrawn = [a for a in formats.CELEBA_ATTRIBUTES if a not in synthetic.DRAWN_ATTRIBUTES]
    assert (table[undrawn] == -1).all().all()
    split = formats.read_partition(generated / formats.PARTITION_FILE)
    assert list(split.index) == names
    assert list(split) == ["train"] * 32 + ["valid"] * 4 + ["test"] * 4
    assert sorted(p.name for p in generated.iterdir()) == sorted(
        [formats.IMAGE_DIR, formats.ATTR_FILE, formats.PARTITION_FILE]
    )


def test_same_seed_same_bytes_whatever_the_workers(
    generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 40 images are a single task of 64; in tasks of 7 both workers render several chunks
    monkeypatch.setattr(synthetic, "_CHUNK", 7)
    synthetic.generate(tmp_path / "again", n_images=N, seed=3, workers=2, progress=False)
    assert files(tmp_path / "again") == files(generated)


def test_other_seed_other_data(generated: Path, tmp_path: Path) -> None:
    synthetic.generate(tmp_path / "other", n_images=N, seed=4, workers=1, progress=False)
    old, new = files(generated), files(tmp_path / "other")
    assert old.keys() == new.keys()
    assert old[formats.ATTR_FILE] != new[formats.ATTR_FILE]
    image_names = [k for k in old if k.endswith(".jpg")]
    assert all(old[k] != new[k] for k in image_names)


def test_first_images_do_not_depend_on_the_count(generated: Path, tmp_path: Path) -> None:
    synthetic.generate(tmp_path / "small", n_images=10, seed=3, workers=1, progress=False)
    small = files(tmp_path / "small")
    images = [k for k in small if k.endswith(".jpg")]
    assert len(images) == 10 and all(small[k] == files(generated)[k] for k in images)


def test_attribute_frequencies_and_constraints() -> None:
    table = synthetic.sample_attributes(20_000, seed=0) > 0
    rates = table.mean()
    expected = {
        "Male": 0.42,
        "Smiling": 0.48,
        "Mouth_Slightly_Open": 0.48,
        "Eyeglasses": 0.15,
        "Blond_Hair": 0.15,
        "Wearing_Lipstick": 0.435,
    }
    for name, rate in expected.items():
        assert abs(rates[name] - rate) < 0.02, name
    male = table["Male"]
    assert table.loc[male, "Blond_Hair"].mean() < table.loc[~male, "Blond_Hair"].mean() / 3
    smiling = table["Smiling"]
    assert table.loc[smiling, "Mouth_Slightly_Open"].mean() > 0.6
    assert table.loc[~smiling, "Mouth_Slightly_Open"].mean() < 0.35
    # hair colours are exclusive; facial hair and lipstick follow sex
    hair = table[["Blond_Hair", "Black_Hair", "Brown_Hair", "Gray_Hair"]].sum(axis=1)
    assert hair.max() == 1
    assert not table.loc[~male, ["Mustache", "Goatee", "5_o_Clock_Shadow"]].any().any()
    assert table.loc[~male, "No_Beard"].all() and not table.loc[male, "Wearing_Lipstick"].any()


@pytest.mark.parametrize(
    ("attribute", "field", "region"),
    [
        ("Eyeglasses", "eyeglasses", "eyes"),
        ("Smiling", "smiling", "eyes to mouth"),  # narrowed eyes, raised cheeks, the mouth
        ("Mouth_Slightly_Open", "mouth_open", "mouth"),
        ("Wearing_Lipstick", "lipstick", "mouth"),
        ("Mustache", "mustache", "mouth"),
    ],
)
def test_attributes_change_only_their_region(attribute: str, field: str, region: str) -> None:
    male = attribute == "Mustache"
    for seed in range(5):
        without = face(seed, Male=male)
        with_it = dataclasses.replace(without, **{field: True})
        # the identity does not depend on the attributes it is sampled with
        assert face(seed, Male=male, **{attribute: True}) == with_it
        diff = difference(synthetic.render(without), synthetic.render(with_it))
        assert (diff > 30).sum() > 100, f"{attribute} barely changes face {seed}"
        layout = synthetic.layout(without)
        top = round(layout.mouth_y if region == "mouth" else layout.eye_y) - 25
        bottom = round(layout.eye_y if region == "eyes" else layout.mouth_y) + 25
        col = round(layout.cx)
        inside = diff[top:bottom, col - 70 : col + 70].sum()
        assert inside / diff.sum() > 0.99, f"{attribute} changes pixels outside the {region}"


def test_other_attributes_change_the_picture() -> None:
    base = face(1)
    for change in (
        {"male": True},
        {"hair_colour": "blond"},
        {"hat": True},
        {"bangs": True},
        {"pale_skin": True},
        {"beard": "full"},
        {"beard": "goatee"},
        {"beard": "stubble"},
    ):
        changed = dataclasses.replace(base, **change)
        diff = difference(synthetic.render(base), synthetic.render(changed))
        assert (diff > 30).sum() > 300, change


def test_identity_varies_between_faces() -> None:
    a, b = (synthetic.render(face(seed)) for seed in (0, 1))
    assert (difference(a, b) > 60).mean() > 0.2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_images": 9}, "n_images"), ({"workers": 0}, "workers"), ({"seed": -1}, "seed")],
)
def test_bad_inputs_raise_and_leave_nothing(tmp_path: Path, kwargs: dict, message: str) -> None:
    values = {"n_images": 10, "seed": 0, "workers": 1, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        synthetic.generate(tmp_path / "out", **values)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_run_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(formats, "write_partition", broken)
    with pytest.raises(OSError, match="disk full"):
        synthetic.generate(tmp_path / "out", n_images=10, seed=0, workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []
