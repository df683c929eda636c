"""`neuroscan pack` (training.pack): a small dataset folder that reads like the original."""

import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tumor_model.io.geometry import prepare
from tumor_model.io.imageio import load_image
from tumor_model.release import pipeline
from tumor_model.training import data, features, pack, split

from conftest import cli, tiny_settings


@pytest.fixture(scope="module")
def packed(tiny_dataset, tmp_path_factory):
    root, _ = tiny_dataset
    out = tmp_path_factory.mktemp("pack") / "pack"
    done = cli("pack", "--data-dir", str(root), "--out", str(out), "--size", "32")
    assert done.returncode == 0, done.stderr
    return out, json.loads(done.stdout)


def test_pack_holds_every_readable_image_and_says_what_it_left(packed, tiny_dataset):
    out, info = packed
    root, facts = tiny_dataset
    original = data.scan(data.find_all([root]))
    assert info["images"] == len(original.images) == len(list(out.glob("*/*.jpg")))
    recorded = json.loads((out / data.PACK_INFO).read_text())
    assert [u["path"] for u in recorded["unreadable"]] == [facts["corrupt"]]
    assert {p.parent.name for p in out.glob("*/*.jpg")} == {"healthy", "tumor"}
    assert 0 < info["mib"] < 1


def test_a_pack_scans_as_its_originals(packed, tiny_dataset):
    out, _ = packed
    root, _ = tiny_dataset
    before, after = data.scan(data.find_all([root])), data.scan(data.find_all([out]))
    cols = ["label", "sha256", "format", "mode", "width", "height"]
    assert before.images[cols].equals(after.images[cols])
    np.testing.assert_array_equal(before.thumbs, after.thumbs)
    groups = [
        split.duplicate_groups(list(s.images.sha256), s.thumbs, 0.02) for s in (before, after)
    ]
    np.testing.assert_array_equal(*groups)
    assert data.fingerprint(before.images) == data.fingerprint(after.images)


def test_packed_pixels_are_what_the_model_saw(packed):
    out, _ = packed
    rows = pd.read_csv(out / data.PACK_TABLE)  # its "original" column names each original file
    packed_rows = rows.assign(root=str(out))
    seen = features.load_pixels(packed_rows, 32, "crop-pad")  # as training reads the pack
    first = np.stack([prepare(load_image(src), 32, "crop-pad") for src in rows.original])
    error = np.abs(seen.astype(float) - first).mean(axis=(1, 2, 3))
    # grey levels: JPEG quality 80 costs up to about 4.5 on these noisy 32 px scans; a second
    # crop-pad of the packed pixels moved single scans by 13-20
    assert error.max() < 6.0, error.max()
    with pytest.raises(ValueError, match=r"holds crop-pad pixels at 32 px; this recipe needs pad"):
        features.load_pixels(packed_rows.head(2), 32, "pad")


def test_a_webp_pack_reads_back_within_the_same_error_and_keeps_grey_one_channel(
    packed, tiny_dataset, tmp_path
):
    root, _ = tiny_dataset
    out = tmp_path / "webp"
    args = ("--data-dir", str(root), "--out", str(out), "--size", "32", "--codec", "webp")
    done = cli("pack", *args)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["codec"] == "webp"
    rows = pd.read_csv(out / data.PACK_TABLE)
    assert rows.path.str.endswith(".webp").all() and len(rows) == packed[1]["images"]
    seen = features.load_pixels(rows.assign(root=str(out)), 32, "crop-pad")
    first = np.stack([prepare(load_image(src), 32, "crop-pad") for src in rows.original])
    error = np.abs(seen.astype(float) - first).mean(axis=(1, 2, 3))
    assert error.max() < 6.0, error.max()  # the JPEG pack's bound above
    grey = np.repeat(first[:1, ..., :1], 3, axis=-1)[0]  # one scan made grey
    stored = Image.open(io.BytesIO(pack.encode(grey, 80, "jpeg")))
    assert stored.mode == "L"  # one channel on disk
    back = np.asarray(Image.open(io.BytesIO(pack.encode(grey, 80, "webp"))).convert("RGB"), int)
    assert np.abs(back - back[..., :1]).max() <= 1  # WebP has no grey mode; its grey stays grey
    assert np.abs(back - grey).mean() < 6.0
    colour = first[0].copy()
    colour[..., 0] = 255 - colour[..., 0]
    assert Image.open(io.BytesIO(pack.encode(colour, 80, "webp"))).mode == "RGB"
    with pytest.raises(ValueError, match=r"codec must be one of \('jpeg', 'webp'\), got 'png'"):
        pack.encode(colour, 80, "png")


@pytest.mark.slow
def test_training_from_a_pack_keeps_the_data_fingerprint(packed, tiny_artifacts, tmp_path):
    out, _ = packed
    settings = tiny_settings(out, tmp_path / "art", head_epochs=2)
    folder = pipeline.train_and_write(settings, shortcut=False, samples=False)
    card, shipped = (
        json.loads((f / "model_card.json").read_text()) for f in (folder, tiny_artifacts)
    )
    assert card["data_fingerprint"] == shipped["data_fingerprint"]


def test_pack_refuses_an_existing_folder_and_bad_values(tiny_dataset, tmp_path):
    root, _ = tiny_dataset
    (tmp_path / "there").mkdir()
    done = cli("pack", "--data-dir", str(root), "--out", str(tmp_path / "there"))
    assert done.returncode == 2 and "exists: give a new folder" in done.stderr
    done = cli("pack", "--data-dir", str(root), "--out", str(tmp_path / "q"), "--quality", "0")
    assert done.returncode == 2 and "JPEG quality must be in 1-95, got 0" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["there"]  # nothing written


@pytest.mark.slow
def test_refit_guard_rewrites_the_guard_in_place(tiny_artifacts, tmp_path):
    import shutil

    from tumor_model.serving.predict import Predictor

    art = tmp_path / "art"
    shutil.copytree(tiny_artifacts, art)
    (art / "ood.npz").write_bytes(b"stale")
    done = cli("refit-guard", "--artifacts", str(art))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    card = json.loads((art / "model_card.json").read_text())
    assert card["ood"]["threshold"] == printed["threshold"] > 0
    assert Predictor(art).guard is not None
