"""Near-duplicate images found in the pixels: known groups, the aligned distance, select() and the pipeline."""

import numpy as np
import pytest

from topodata import select
from topodata._validation import TopodataInputError
from topodata.dedup import image_duplicate_groups
from topodata.select import dedup_setting


def _shifted_copies(n_images=40, copies=5, size=16, noise=0.01, seed=0):
    """Random smooth images on a dark border, each ``copies`` times shifted by up to 1 px, plus noise."""
    rng = np.random.default_rng(seed)
    base = rng.random((n_images, 1, size - 6, size - 6)).repeat(2, axis=2).repeat(2, axis=3)[:, :, : size - 6, : size - 6]
    base = np.pad(base, ((0, 0), (0, 0), (3, 3), (3, 3)))
    group = np.repeat(np.arange(n_images), copies)
    shifts = rng.integers(-1, 2, size=(group.size, 2))
    x = np.stack([np.roll(base[g], tuple(s), axis=(1, 2)) for g, s in zip(group, shifts)])
    x = np.clip(x + rng.normal(scale=noise, size=x.shape), 0.0, 1.0)
    perm = rng.permutation(group.size)
    return x[perm].astype(np.float32), group[perm]


def _same_partition(found, truth):
    pairs = {(int(a), int(b)) for a, b in zip(truth, found)}
    return len(pairs) == len(np.unique(truth)) == len(np.unique(found))


def test_shifted_noisy_copies_form_their_groups_exactly():
    x, group = _shifted_copies()
    found, thr = image_duplicate_groups(x)
    assert thr > 0 and _same_partition(found, group)
    assert np.bincount(found).tolist() == [5] * 40
    # in the pixels without alignment the same copies are no closer than other images: a 1-px shift
    # moves every edge, so a plain distance threshold would not find them
    flat = x.reshape(len(x), -1)
    d = np.linalg.norm(flat[:, None] - flat[None], axis=2)
    same = group[:, None] == group[None]
    np.fill_diagonal(same, False)
    assert np.median(d[same]) > 0.5 * np.median(d[~same & ~np.eye(len(x), dtype=bool)])


def test_aligned_distance_threshold_is_the_rms_pixel_difference():
    rng = np.random.default_rng(3)
    a = np.pad(rng.random((1, 1, 8, 8)), ((0, 0), (0, 0), (4, 4), (4, 4)))
    b = np.roll(a, (2, -1), axis=(2, 3)) + 0.05  # a 2-px, 1-px shift and a uniform offset of 0.05
    other = np.pad(rng.random((2, 1, 8, 8)), ((0, 0), (0, 0), (4, 4), (4, 4)))
    x = np.concatenate([a, b, other]).astype(np.float32)
    # interior (2 px off each edge) difference of the aligned pair: exactly 0.05 per pixel
    assert image_duplicate_groups(x, threshold=0.0501, k=3)[0].tolist() == [0, 0, 1, 2]
    assert image_duplicate_groups(x, threshold=0.0499, k=3)[0].tolist() == [0, 1, 2, 3]
    # a shift beyond max_shift is not aligned
    assert image_duplicate_groups(x, threshold=0.0501, k=3, max_shift=1)[0].tolist() == [0, 1, 2, 3]


def test_distinct_images_stay_alone_and_groups_are_deterministic():
    x = np.random.default_rng(1).random((200, 1, 12, 12)).astype(np.float32)
    found, _ = image_duplicate_groups(x)
    assert np.unique(found).size == 200
    xc, _ = _shifted_copies(seed=4)
    a = image_duplicate_groups(xc, random_state=0)[0]
    np.testing.assert_array_equal(a, image_duplicate_groups(xc, random_state=0, batch_size=7)[0])


@pytest.mark.parametrize("bad,match", [
    (np.zeros((10, 16)), "images must have shape"),
    (np.full((4, 1, 8, 8), np.nan), "NaN or infinite"),
])
def test_image_dedup_refuses_bad_input(bad, match):
    with pytest.raises(TopodataInputError, match=match):
        image_duplicate_groups(bad)


@pytest.mark.parametrize("rate", [0.9, 0.8])
def test_select_with_given_groups_keeps_one_per_group_first(rate):
    x, group = _shifted_copies()
    y = group % 4
    feats = x.reshape(len(x), -1)
    res = select(feats, y, rate=rate, method="moderate", dedup=group, random_state=0)
    assert np.unique(group[res.indices]).size == min(res.indices.size, 40)
    info = res.manifest["params"]["dedup"]
    assert info["threshold_rule"] == "groups given" and info["n_groups"] == 40
    # group ids need not be dense, and the scores alone (no features) are enough
    res2 = select(None, y, rate=rate, scores=np.arange(len(y), dtype=float), dedup=group * 7 + 3, random_state=0)
    assert np.unique(group[res2.indices]).size == min(res2.indices.size, 40)


def test_given_groups_are_checked():
    y = np.repeat([0, 1], 10)
    with pytest.raises(TopodataInputError, match="group ids but labels"):
        select(None, y, rate=0.5, method="random", dedup=np.arange(19))
    with pytest.raises(TopodataInputError, match="one integer group id per sample"):
        select(None, y, rate=0.5, method="random", dedup=np.linspace(0, 1, 20))


def test_dedup_setting_follows_the_method_default():
    assert dedup_setting(None, "topoprune") == "auto"
    assert dedup_setting(None, "random") is None and dedup_setting(None, None) is None
    assert dedup_setting("0.3", "random") == 0.3 and dedup_setting(False, "topoprune") is None
    assert dedup_setting([0, 0, 1], "random").tolist() == [0, 0, 1]


def test_pipeline_finds_image_copies_in_pixels_and_checks_the_space(tmp_path):
    from topodata.pipeline import select_dataset

    x, group = _shifted_copies(n_images=30, copies=4)
    y = group % 3
    path = tmp_path / "copies.npz"
    np.savez(path, x=x, y=y, x_test=x[:6], y_test=y[:6])
    spec = f"npz:{path}"
    # a method that reads no features: the pixels still give the groups
    res = select_dataset(spec, rate=0.75, method="random", dedup="auto", progress=False)
    info = res.manifest["params"]["dedup"]
    assert info["space"] == "images" and info["n_groups"] == 30
    assert np.unique(group[res.indices]).size == 30 == res.indices.size
    with pytest.raises(TopodataInputError, match="dedup_space"):
        select_dataset(spec, rate=0.75, method="random", dedup_space="pixels", progress=False)
    flat = tmp_path / "flat.npz"
    np.savez(flat, x=x.reshape(len(x), -1), y=y)
    with pytest.raises(TopodataInputError, match="needs a dataset of images"):
        select_dataset(f"npz:{flat}", rate=0.75, method="random", dedup="auto", dedup_space="images", progress=False)
