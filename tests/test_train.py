"""Training on a kept subset (`topodata.train.subset`) and `topodata train`: real runs on digits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from topodata._validation import TopodataInputError
from topodata.cli import build_parser, main
from topodata.data import load_dataset
from topodata.embed import build_model
from topodata.train.subset import load_indices, probe_on_subset, train_on_subset

FAST = dict(model="mlp", steps=25, batch_size=64, device="cpu", progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


class SeenIndices:
    """Training callback: which training positions the optimiser was shown."""

    def __init__(self):
        self.seen: set[int] = set()
        self.batches = 0

    def on_batch(self, *, epoch, step, indices, logits, targets):
        self.seen.update(indices.tolist())
        self.batches += 1


def test_trains_only_on_the_given_indices(digits):
    idx = np.arange(0, digits.n_train, 7)
    cb = SeenIndices()
    m = train_on_subset(digits, idx, callbacks=(cb,), **FAST)
    assert cb.seen == set(idx.tolist())  # every kept sample, nothing else
    assert cb.batches == m["steps"] == 25
    assert m["n_train"] == idx.size and m["n_test"] == digits.n_test
    assert 0.0 <= m["accuracy"] <= 1.0 and m["loss"] > 0 and m["seconds"] > 0


def test_one_class_subset_predicts_only_that_class(digits):
    idx = np.flatnonzero(digits.y_train == 3)
    m, net = train_on_subset(digits, idx, return_model=True, **FAST)
    with torch.no_grad():
        pred = net(torch.from_numpy(digits.x_test)).argmax(1).numpy()
    assert set(pred.tolist()) == {3}
    assert m["accuracy"] == pytest.approx(np.mean(digits.y_test == 3))


def test_full_split_when_no_indices(digits):
    cb = SeenIndices()
    m = train_on_subset(digits, None, callbacks=(cb,), **{**FAST, "steps": 30})
    assert m["n_train"] == digits.n_train
    assert cb.seen == set(range(digits.n_train))  # 30 steps of 64 = 1920 > 1433: every sample seen


def test_deterministic_per_seed(digits):
    idx = np.arange(0, digits.n_train, 3)
    a, net_a = train_on_subset(digits, idx, random_state=5, return_model=True, **FAST)
    b, net_b = train_on_subset(digits, idx, random_state=5, return_model=True, **FAST)
    c, net_c = train_on_subset(digits, idx, random_state=6, return_model=True, **FAST)
    assert (a["accuracy"], a["loss"]) == (b["accuracy"], b["loss"])
    for (k, va), vb in zip(net_a.state_dict().items(), net_b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert not torch.equal(net_a.state_dict()["head.weight"], net_c.state_dict()["head.weight"])


def test_module_is_trained_in_place(digits):
    net = build_model("mlp", digits.input_shape, digits.n_classes, random_state=0)
    before = net.head.weight.detach().clone()
    m = train_on_subset(digits, np.arange(100), **{**FAST, "model": net})
    assert m["model"] == "MLP" and not torch.equal(before, net.head.weight)


@pytest.mark.parametrize(
    "indices, match",
    [
        (np.array([0, 5, 10**6]), r"range \[0, 1000000\] does not fit a training split of 1433"),
        (np.array([-1, 3]), r"range \[-1, 3\]"),
        (np.zeros((2, 3), dtype=np.int64), r"must be 1-D; got shape \(2, 3\)"),
        (np.array([0.0, 1.0]), r"integer positions .* got dtype float64"),
        (np.array([1, 1, 2]), r"repeats 1 position"),
        (np.array([], dtype=np.int64), r"is empty"),
        (np.ones(7, dtype=bool), r"boolean mask must be 1-D of length n_train=1433"),
    ],
)
def test_bad_indices(digits, indices, match):
    with pytest.raises(TopodataInputError, match=match):
        train_on_subset(digits, indices, **FAST)


def test_bad_options(digits, tmp_path):
    with pytest.raises(TopodataInputError, match=r"model must be one of .*got 'vgg'"):
        train_on_subset(digits, [0, 1], **{**FAST, "model": "vgg"})
    with pytest.raises(TopodataInputError, match=r"steps must be >= 1; got 0"):
        train_on_subset(digits, [0, 1], **{**FAST, "steps": 0})
    with pytest.raises(TopodataInputError, match=r"fit_params must not set \['steps'\]"):
        train_on_subset(digits, [0, 1], fit_params={"steps": 3}, **FAST)
    with pytest.raises(FileNotFoundError, match=r"indices: .*nowhere.*not found"):
        train_on_subset(digits, tmp_path / "nowhere", **FAST)


def test_load_indices_from_folder_npy_txt_and_mask(tmp_path):
    from topodata.select import save_selection, select

    x = np.random.default_rng(0).normal(size=(40, 3))
    res = select(x, np.repeat([0, 1], 20), rate=0.5, method="random", random_state=0)
    save_selection(res, tmp_path / "sel")
    np.testing.assert_array_equal(load_indices(tmp_path / "sel", n_total=40), res.indices)
    np.testing.assert_array_equal(load_indices(tmp_path / "sel" / "indices.txt"), res.indices)
    np.testing.assert_array_equal(load_indices(str(tmp_path / "sel" / "indices.npy")), res.indices)
    np.testing.assert_array_equal(load_indices(res.mask, n_total=40), res.indices)
    np.testing.assert_array_equal(load_indices([5, 2, 9]), [2, 5, 9])  # sorted, one index space
    with pytest.raises(FileNotFoundError, match="not found"):
        load_indices(tmp_path)  # a folder without indices.npy


def test_probe_on_subset(digits):
    x = digits.x_train.reshape(digits.n_train, -1)
    xt = digits.x_test.reshape(digits.n_test, -1)
    idx = np.arange(0, digits.n_train, 4)
    m = probe_on_subset(x, digits.y_train, xt, digits.y_test, idx, random_state=0)
    assert m["model"] == "probe" and m["n_train"] == idx.size
    assert m["accuracy"] > 0.85  # pixels are nearly linearly separable on digits
    again = probe_on_subset(x, digits.y_train, xt, digits.y_test, idx, random_state=0)
    assert (again["accuracy"], again["loss"]) == (m["accuracy"], m["loss"])
    full = probe_on_subset(x, digits.y_train, xt, digits.y_test)
    assert full["n_train"] == digits.n_train
    with pytest.raises(TopodataInputError, match="features_test has 3 columns but features have 64"):
        probe_on_subset(x, digits.y_train, xt[:, :3], digits.y_test)


# --- the command ---------------------------------------------------------------------------------


def test_parser_defaults():
    args = build_parser().parse_args(["train", "--dataset", "digits", "--out", "r"])
    assert args.indices is None and args.model == "smallcnn" and args.seed == 0
    assert args.batch_size == 128 and args.lr == 0.05 and args.device == "auto" and args.steps >= 1


def test_cli_train_writes_metrics_and_model(tmp_path, digits):
    from topodata.select import save_selection, select

    res = select(np.zeros((digits.n_train, 1)), digits.y_train, rate=0.8, method="random", random_state=1)
    save_selection(res, tmp_path / "sel")
    out = tmp_path / "run"
    rc = main(["train", "--dataset", "digits", "--indices", str(tmp_path / "sel"), "--model", "mlp", "--seed", "2",
               "--steps", "20", "--batch-size", "64", "--device", "cpu", "--no-progress", "--out", str(out)])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] == res.indices.size and metrics["steps"] == 20 and metrics["seed"] == 2
    assert metrics["indices"].endswith("sel") and "torch" in metrics["versions"]
    assert metrics["versions"]["cpu"].split()[-1] == torch.backends.cpu.get_cpu_capability()
    net = build_model("mlp", digits.input_shape, digits.n_classes)
    net.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["metrics.json", "model.pt"]


def test_cli_train_full_split(tmp_path, digits):
    rc = main(["train", "--dataset", "digits", "--model", "mlp", "--steps", "10", "--device", "cpu",
               "--no-progress", "--out", str(tmp_path / "full")])
    assert rc == 0
    assert json.loads((tmp_path / "full" / "metrics.json").read_text())["n_train"] == digits.n_train


def test_cli_train_bad_input_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.array([0, 99999]))
    out = tmp_path / "run"
    rc = main(["train", "--dataset", "digits", "--indices", str(bad), "--model", "mlp", "--steps", "5",
               "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert err.count("\n") == 1 and "does not fit a training split of 1433" in err
    rc = main(["train", "--dataset", "digits", "--indices", str(tmp_path / "missing.npy"), "--out", str(out)])
    assert rc == 2 and "not found" in capsys.readouterr().err and not out.exists()
    rc = main(["train", "--dataset", "digits", "--model", "vgg", "--steps", "5", "--out", str(out)])
    assert rc == 2 and "model must be one of" in capsys.readouterr().err and not out.exists()
