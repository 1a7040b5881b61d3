"""topodata.pipeline: one call from a dataset spec, arrays or files to a selection; checks before compute."""

from __future__ import annotations

import json

import numpy as np
import pytest

import topodata
from topodata._validation import TopodataInputError
from topodata.pipeline import (
    add_feature_noise,
    check_method_params,
    load_embedding,
    noise_rng,
    run_manifest,
    select_dataset,
)
from topodata.select import select

pytestmark = pytest.mark.usefixtures("one_thread")

EMBED = {"model": "mlp", "epochs": 2}  # a cheap proxy: a few seconds on digits


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private embedding cache, so a test can see whether anything was computed."""
    root = tmp_path / "cache"
    monkeypatch.setenv("TOPODATA_CACHE", str(root))
    return root


def _entries(cache) -> list:
    emb = cache / "embeddings"
    return sorted(emb.iterdir()) if emb.exists() else []


def test_arrays_equal_select_and_kwargs_are_forwarded(blobs):
    x, y = blobs
    got = select_dataset(features=x, labels=y, rate=0.7, method="moderate", random_state=3,
                         class_balance="balanced")
    ref = select(x, y, rate=0.7, method="moderate", random_state=3, class_balance="balanced")
    assert got.indices.tobytes() == ref.indices.tobytes()
    assert np.array_equal(got.scores, ref.scores, equal_nan=True)
    assert got.manifest["dataset"] == "arrays" and got.manifest["params"]["class_balance"] == "balanced"
    assert "embedding" not in got.manifest
    s = np.random.default_rng(1).random(len(y))
    got = select_dataset(labels=y, scores=s, rate=0.7, random_state=3, beta=0.2, n_strata=5, sampler="draw")
    ref = select(None, y, scores=s, rate=0.7, random_state=3, beta=0.2, n_strata=5, sampler="draw")
    assert got.indices.tobytes() == ref.indices.tobytes()
    assert (got.manifest["params"]["beta"], got.manifest["params"]["n_strata"]) == (0.2, 5)
    assert list(got.manifest["timings_s"])[0] == "load"
    assert np.array_equal(got.extras["labels"], y)
    # a keyword select() does not know reaches select() and fails there, unchanged
    with pytest.raises(TypeError, match="no_such_option"):
        select_dataset(features=x, labels=y, rate=0.7, method="random", no_such_option=1)
    assert topodata.select_dataset is select_dataset  # exported lazily


def test_files_are_read_and_named_in_the_manifest(tmp_path, blobs):
    x, y = blobs
    fx, fy = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(fx, x)
    np.save(fy, y)
    res = select_dataset(features=fx, labels=fy, rate=0.5, method="random", random_state=1)
    assert res.manifest["dataset"] == f"embeddings:{fx}"
    assert res.indices.tobytes() == select(x, y, rate=0.5, method="random", random_state=1).indices.tobytes()
    fs = tmp_path / "s.npy"
    np.save(fs, np.arange(len(y), dtype=float))
    again = select_dataset(labels=fy, scores=fs, rate=0.9)  # re-select from given scores
    assert again.manifest["method"] == "precomputed" and again.manifest["dataset"] == f"labels:{fy}"
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not an npy file")
    with pytest.raises(TopodataInputError, match="features file .*junk.npy is not a .npy file"):
        select_dataset(features=junk, labels=fy, rate=0.5, method="random")
    with pytest.raises(TopodataInputError, match="labels file not found"):
        select_dataset(features=fx, labels=tmp_path / "none.npy", rate=0.5, method="random")


def test_method_without_features_loads_labels_only(cache):
    with pytest.warns(UserWarning, match=r"model, epochs ignored: no embedding stage runs \(method 'random'"):
        res = select_dataset("digits", rate=0.9, method="random", random_state=0, model="mlp", epochs=2)
    assert _entries(cache) == []  # no proxy was trained
    labels = topodata.load_dataset("digits", progress=False).y_train
    assert res.indices.tobytes() == select(None, labels, rate=0.9, method="random").indices.tobytes()
    assert res.manifest["dataset"] == "digits" and "embedding" not in res.manifest


def test_spec_embeds_once_and_matches_select_on_the_cached_features(cache):
    first = select_dataset("digits", rate=0.8, method="moderate", random_state=2, progress=False, **EMBED)
    assert len(_entries(cache)) == 1
    second = select_dataset("digits", rate=0.8, method="moderate", random_state=2, progress=False, **EMBED)
    assert first.indices.tobytes() == second.indices.tobytes()
    emb = load_embedding("digits", model="mlp", progress=False, embed_params={"epochs": 2})
    assert emb.from_cache and len(_entries(cache)) == 1  # the same entry, not a second proxy
    ref = select(emb.features, emb.labels, rate=0.8, method="moderate", random_state=2, dynamics=emb.dynamics,
                 dataset="digits")
    assert first.indices.tobytes() == ref.indices.tobytes()
    info = first.manifest["embedding"]
    assert info["model"] == "mlp" and info["proxy_fraction"] == 1.0 and info["embed_seed"] == 0
    assert info["cache"] == str(emb.cache_path) and 0 < info["proxy_test_accuracy"] <= 1
    assert list(first.manifest["timings_s"])[0] == "embed"
    # an embedding handed in is used as it is: same selection, no load
    given = select_dataset("digits", embedding=emb, rate=0.8, method="moderate", random_state=2, model="mlp")
    assert given.indices.tobytes() == first.indices.tobytes() and "embed" not in given.manifest["timings_s"]

    # feature noise: seeded by (random_state, scale), equal to adding it by hand
    noisy = select_dataset("digits", embedding=emb, rate=0.8, method="moderate", random_state=2, model="mlp",
                           feature_noise=0.5)
    x = add_feature_noise(emb.features, 0.5, random_state=noise_rng(2, 0.5))
    by_hand = select(x, emb.labels, rate=0.8, method="moderate", random_state=2)
    assert noisy.indices.tobytes() == by_hand.indices.tobytes()
    assert noisy.indices.tobytes() != first.indices.tobytes()
    assert noisy.manifest["feature_noise"] == 0.5 and "feature_noise" not in first.manifest
    with pytest.raises(TypeError, match="feature_noise needs an int random_state"):
        select_dataset("digits", embedding=emb, rate=0.8, method="moderate", feature_noise=0.5,
                       random_state=np.random.default_rng(0))


def test_every_check_runs_before_any_load(cache, tmp_path):
    missing = f"npz:{tmp_path / 'absent.npz'}"  # loading it would fail: the checks must come first
    cases = [
        (dict(method="topoprune", method_params={"manifold": "umpa"}), "manifold"),
        (dict(method="topoprune", method_params={"k_local": 1}), "k_local"),
        (dict(method="topoprune", method_params={"k": 8}), "has no option 'k'; its options: .*k_local"),
        (dict(method="moderate", method_params={"k": 8}), "method 'moderate' has no option 'k'; its options: none"),
        (dict(method="moderate", rate=1.0), "strictly between 0 and 1"),
        (dict(method="moderate", epochs=3, embed_params={"epochs": 2}), "epochs is given twice"),
        (dict(method="moderate", labels=np.zeros(3)), "labels come from the dataset spec"),
        (dict(scores=np.zeros(3), method="moderate"), "scores replace the method"),
    ]
    for kwargs, match in cases:
        kwargs = {"rate": 0.5, **kwargs}
        with pytest.raises(TopodataInputError, match=match):
            select_dataset(missing, **kwargs)
    assert _entries(cache) == []
    with pytest.raises(TopodataInputError, match="exactly one of a dataset spec or features"):
        select_dataset(rate=0.5)
    with pytest.raises(TopodataInputError, match="absent.npz"):  # and then the load itself
        select_dataset(missing, rate=0.5, method="random")


def test_check_method_params():
    assert check_method_params("topoprune", {"k_local": 8, "manifold": "none"}) == {"k_local": 8, "manifold": "none"}
    assert check_method_params("random", None) == {}
    with pytest.raises(TopodataInputError, match=r"^p.toml: method 'random' has no option 'k'"):
        check_method_params("random", {"k": 1}, name="p.toml")
    with pytest.raises(TopodataInputError, match="method must be one of"):
        check_method_params("nope", {})


def test_run_manifest_carries_versions():
    m = run_manifest({"dataset": "digits"}, timings_s={"load": 1})
    assert m["dataset"] == "digits" and m["timings_s"] == {"load": 1.0}
    assert {"numpy", "torch", "topodata"} <= set(m["versions"])
    json.dumps(m)  # JSON as it is


def test_feature_noise_on_given_arrays(blobs):
    x, y = blobs
    got = select_dataset(features=x, labels=y, rate=0.5, method="moderate", random_state=1, feature_noise=0.3)
    ref = select(add_feature_noise(x, 0.3, random_state=noise_rng(1, 0.3)), y, rate=0.5, method="moderate",
                 random_state=1)
    assert got.indices.tobytes() == ref.indices.tobytes() and got.manifest["feature_noise"] == 0.3
    with pytest.warns(UserWarning, match="feature_noise ignored: no features are scored"):
        res = select_dataset(labels=y, scores=np.arange(len(y), dtype=float), rate=0.5, feature_noise=0.3)
    assert "feature_noise" not in res.manifest
