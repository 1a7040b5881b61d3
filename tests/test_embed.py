"""The embed stage on digits: features, probe accuracy, proxy fractions, the cache and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from topodata._validation import TopodataInputError
from topodata.cli import main
from topodata.data import load_dataset
from topodata.embed import EmbedResult, default_epochs, embed, embed_cached, proxy_subset

torch.set_num_threads(1)
FAST = dict(model="mlp", epochs=3, progress=False, device="cpu")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def digits_embedding(digits):
    return embed(digits, model="smallcnn", epochs=20, progress=False, device="cpu")


def test_embed_digits_features_and_probe(digits, digits_embedding):
    from sklearn.linear_model import LogisticRegression

    res = digits_embedding
    assert res.features.shape == (1433, 128) and res.features.dtype == np.float32
    assert res.features_test.shape == (364, 128) and res.features_test.dtype == np.float32
    np.testing.assert_array_equal(res.labels, digits.y_train)
    np.testing.assert_array_equal(res.labels_test, digits.y_test)
    assert res.labels.dtype == np.int64 and np.isfinite(res.features).all()
    m = res.manifest
    assert m["model"] == "smallcnn" and m["epochs"] == 20 and m["seed"] == 0 and m["device"] == "cpu"
    assert m["n_proxy"] == 1433 and m["proxy_fraction"] == 1.0 and m["dataset_source"] == "sklearn"
    assert set(m["timings_s"]) == {"load", "train", "extract", "total"}
    assert m["proxy_test_accuracy"] > 0.85
    json.dumps(m)  # the manifest is plain JSON
    probe = LogisticRegression(max_iter=2000).fit(res.features, res.labels)
    assert probe.score(res.features_test, res.labels_test) > 0.85


def test_embed_records_dynamics(digits_embedding):
    dyn = digits_embedding.dynamics
    assert dyn is not None and dyn.n_samples == 1433 and dyn.n_epochs == 20
    assert digits_embedding.manifest["dynamics_recorded"] is True


def test_proxy_fraction_trains_on_a_stratified_subset_but_embeds_all(digits):
    res = embed(digits, proxy_fraction=0.2, random_state=3, **FAST)
    counts = np.bincount(digits.y_train)
    expected = np.maximum(1, np.floor(0.2 * counts + 0.5)).astype(int)
    assert res.manifest["n_proxy"] == expected.sum()
    assert res.features.shape == (1433, 128)
    if res.dynamics is not None:  # only proxy samples were ever seen in training
        seen = res.dynamics.seen.any(axis=0)
        assert seen.sum() == expected.sum()
        np.testing.assert_array_equal(np.bincount(digits.y_train[seen], minlength=10), expected)


def test_proxy_subset_is_seeded_and_stratified():
    y = np.repeat(np.arange(3), [10, 5, 1])
    a = proxy_subset(y, 0.3, np.random.default_rng(0))
    b = proxy_subset(y, 0.3, np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.int64 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(np.bincount(y[a]), [3, 2, 1])  # round half up, at least one per class


def test_default_epochs_scale_with_dataset_size():
    assert default_epochs("smallcnn", 60000, 256) == 4
    assert default_epochs("smallcnn", 6000, 256) > 4
    assert default_epochs("smallcnn", 1433, 256) == 60  # capped


def test_same_seed_same_features_in_a_fresh_process(digits, tmp_path):
    res = embed(digits, random_state=5, **FAST)
    code = (
        "import sys, numpy as np, torch; torch.set_num_threads(1)\n"
        "from topodata.embed import embed\n"
        "r = embed('digits', model='mlp', epochs=3, progress=False, device='cpu', random_state=5)\n"
        "np.save(sys.argv[1], r.features)\n"
    )
    out = tmp_path / "f.npy"
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, timeout=120)
    np.testing.assert_array_equal(np.load(out), res.features)
    other = embed(digits, random_state=6, **FAST)
    assert not np.array_equal(other.features, res.features)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(proxy_fraction=0.0), "proxy_fraction must be > 0"),
        (dict(proxy_fraction=1.5), "proxy_fraction must be <= 1"),
        (dict(model="vgg"), "model must be one of"),
        (dict(epochs=0), "epochs must be >= 1"),
    ],
)
def test_embed_rejects_bad_options(digits, kwargs, match):
    with pytest.raises(TopodataInputError, match=match):
        embed(digits, **{**FAST, **kwargs})


def test_embed_cached_second_call_loads(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TOPODATA_CACHE", str(tmp_path))
    first = embed_cached("digits", model="mlp", epochs=2, random_state=1, device="cpu")
    entry = first.cache_path
    assert entry is not None and entry.parent == tmp_path / "embeddings"
    assert (entry / "manifest.json").exists() and (entry / "model.pt").exists()
    capsys.readouterr()
    second = embed_cached("digits", model="mlp", epochs=2, random_state=1, device="cpu")
    assert "loaded cached embedding" in capsys.readouterr().err
    assert second.cache_path == entry and second.from_cache and not first.from_cache
    np.testing.assert_array_equal(second.features, first.features)
    np.testing.assert_array_equal(second.labels_test, first.labels_test)
    assert second.manifest["proxy_test_accuracy"] == first.manifest["proxy_test_accuracy"]
    with torch.no_grad():  # the stored model is the trained proxy
        x = torch.from_numpy(load_dataset("digits").x_test[:5])
        torch.testing.assert_close(second.model.features(x), torch.from_numpy(first.features_test[:5]))
    if first.dynamics is not None:
        np.testing.assert_array_equal(second.dynamics.margin, first.dynamics.margin)
    third = embed_cached("digits", model="mlp", epochs=2, random_state=2, device="cpu", progress=False)
    assert third.cache_path != entry


def test_embed_cached_recomputes_a_stale_entry(tmp_path):
    """An entry whose model.pt no longer fits the architecture is recomputed, not a crash."""
    first = embed_cached("digits", model="mlp", epochs=1, random_state=0, cache_dir=tmp_path, progress=False,
                         device="cpu")
    torch.save({"head.weight": torch.zeros(3, 3)}, first.cache_path / "model.pt")
    again = embed_cached("digits", model="mlp", epochs=1, random_state=0, cache_dir=tmp_path, progress=False,
                         device="cpu")
    assert not again.from_cache and again.cache_path == first.cache_path
    np.testing.assert_array_equal(again.features, first.features)
    assert EmbedResult.load(first.cache_path).model is not None


def test_embed_cached_needs_an_int_seed(tmp_path):
    with pytest.raises(TopodataInputError, match="needs an int random_state"):
        embed_cached("digits", random_state=None, cache_dir=tmp_path)


def test_embed_result_round_trip(digits_embedding, tmp_path):
    digits_embedding.save(tmp_path / "out")
    back = EmbedResult.load(tmp_path / "out", load_model=False)
    np.testing.assert_array_equal(back.features, digits_embedding.features)
    assert back.manifest == json.loads(json.dumps(digits_embedding.manifest))


def test_cli_embed_writes_files(tmp_path, monkeypatch):
    monkeypatch.setenv("TOPODATA_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "feats"
    rc = main(["embed", "--dataset", "digits", "--model", "mlp", "--epochs", "2", "--out", str(out),
               "--proxy-fraction", "0.5", "--seed", "4", "--device", "cpu", "--batch-size", "128", "--quiet"])
    assert rc == 0
    names = {p.name for p in out.iterdir()}
    assert {"features.npy", "labels.npy", "features_test.npy", "labels_test.npy", "manifest.json"} <= names
    assert not any(n.endswith(".tmp") for n in names)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["proxy_fraction"] == 0.5 and manifest["seed"] == 4 and manifest["batch_size"] == 128
    assert np.load(out / "features.npy").shape == (1433, 128)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "nope"], "unknown dataset spec 'nope'"),
        (["--dataset", "digits", "--proxy-fraction", "1.5"], "proxy_fraction must be <= 1"),
        (["--dataset", "digits", "--epochs", "0"], "epochs must be >= 1"),
        (["--dataset", "npz:/no/such/file.npz"], "does not exist"),
    ],
)
def test_cli_embed_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "feats"
    rc = main(["embed", *argv, "--out", str(out), "--quiet", "--no-cache"])
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_embed_help_lists_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    text = capsys.readouterr().out
    for opt in ("--dataset", "--model", "--out", "--proxy-fraction", "--epochs", "--seed", "--device",
                "--batch-size", "--optimizer", "--lr", "--root", "--no-dynamics", "--no-cache", "--quiet"):
        assert opt in text
