"""Hugging Face datasets in (``--dataset hf:PATH``) and out (``to_subset`` -> ``Dataset.select``)."""

from __future__ import annotations

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")

from topodata import to_subset  # noqa: E402
from topodata.cli import main  # noqa: E402
from topodata.data import load_dataset  # noqa: E402


def _digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)
    return images, bunch.target.astype(np.int64)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Digits saved with save_to_disk: a DatasetDict (PIL images, ClassLabel) and a plain Dataset of
    nested lists under other column names."""
    root = tmp_path_factory.mktemp("hf")
    images, y = _digits()
    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=[f"digit {d}" for d in range(10)])})
    full = datasets.Dataset.from_dict({"image": list(images), "label": y.tolist()}, features=features)
    datasets.DatasetDict({"train": full.select(range(1500)), "test": full.select(range(1500, 1797))}).save_to_disk(
        str(root / "dict"))
    datasets.Dataset.from_dict({"pixels8": images[:400].tolist(), "digit": y[:400].tolist()}).save_to_disk(
        str(root / "plain"))
    return root, images, y


def test_hf_loads_a_saved_dataset_dict(saved):
    root, images, y = saved
    ds = load_dataset(f"hf:{root / 'dict'}")
    assert ds.n_train == 1500 and ds.n_test == 297 and ds.input_shape == (1, 8, 8) and ds.n_classes == 10
    np.testing.assert_array_equal(ds.x_train[:, 0], images[:1500].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ds.y_train, y[:1500])
    np.testing.assert_array_equal(ds.y_test, y[1500:])
    assert ds.classes[3] == "digit 3" and ds.source == str((root / "dict").resolve())
    swapped = load_dataset(f"hf:{root / 'dict'}?split=test")
    assert swapped.n_train == 297 and swapped.n_test == 0


def test_hf_named_columns_of_nested_lists(saved):
    root, images, y = saved
    ds = load_dataset(f"hf:{root / 'plain'}?image=pixels8&label=digit")
    assert ds.n_train == 400 and ds.n_test == 0 and ds.classes is None
    np.testing.assert_array_equal(ds.x_train[:, 0], images[:400].astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(ds.y_train, y[:400])


def test_hf_string_label_column(saved, tmp_path):
    """A label column of class names (no ClassLabel) gives ids in sorted-name order, shared by both splits."""
    _, images, y = saved
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    cols = {"image": list(images[:300]), "label": names[y[:300]].tolist()}
    full = datasets.Dataset.from_dict(cols, features=datasets.Features({"image": datasets.Image(),
                                                                         "label": datasets.Value("string")}))
    datasets.DatasetDict({"train": full.select(range(250)), "test": full.select(range(250, 300))}).save_to_disk(
        str(tmp_path / "named"))
    ds = load_dataset(f"hf:{tmp_path / 'named'}")
    assert ds.classes == tuple(sorted(names)) and ds.n_classes == 10
    np.testing.assert_array_equal(np.asarray(ds.classes)[ds.y_train], names[y[:250]])
    np.testing.assert_array_equal(np.asarray(ds.classes)[ds.y_test], names[y[250:300]])


def test_select_then_to_subset_gives_the_same_rows(saved, tmp_path):
    root, images, y = saved
    out = tmp_path / "sel"
    spec = f"hf:{root / 'dict'}"
    assert main(["select", "--dataset", spec, "--rate", "0.9", "--method", "random", "--seed", "1",
                 "--out", str(out), "-q"]) == 0
    idx = np.load(out / "indices.npy")
    assert idx.size == 1500 - 1350
    train = datasets.load_from_disk(str(root / "dict"))["train"]
    sub = to_subset(train, out)
    assert isinstance(sub, datasets.Dataset) and len(sub) == idx.size
    got = sub.with_format("numpy")[:]
    np.testing.assert_array_equal(got["label"], y[idx])
    np.testing.assert_array_equal(got["image"], images[idx])
    np.testing.assert_array_equal(got["image"].astype(np.float32) / np.float32(255),
                                  load_dataset(spec).x_train[idx, 0])
    assert np.array_equal(to_subset(train, idx)["label"][:], sub["label"][:])
    with pytest.raises(ValueError, match="does not fit a dataset of length 400"):
        to_subset(datasets.load_from_disk(str(root / "plain")), out)


def test_bad_hf_specs_one_line_exit_2(saved, tmp_path, capsys):
    root, *_ = saved
    (tmp_path / "empty").mkdir()
    cases = [
        (f"hf:{tmp_path / 'missing'}", "does not exist"),
        (f"hf:{tmp_path / 'empty'}", "not a dataset saved with save_to_disk"),
        (f"hf:{root / 'plain'}", "no image column among the defaults"),
        (f"hf:{root / 'plain'}?image=pixels8", "no label column among the defaults"),
        (f"hf:{root / 'dict'}?image=img", "no image column 'img'"),
        (f"hf:{root / 'dict'}?label=image", "not one class id or class name per row"),
        (f"hf:{root / 'dict'}?split=validation", "no split 'validation'"),
        (f"hf:{root / 'dict'}?colour=rgb", "option 'colour' is unknown"),
        ("hf:", "names no path"),
    ]
    for spec, words in cases:
        out = tmp_path / "never"
        assert main(["select", "--dataset", spec, "--rate", "0.9", "--method", "random", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("topodata select: error:") and words in err, err
        assert not out.exists()
