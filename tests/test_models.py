"""Models, the training loop (fit / evaluate / extract_features) and batched augmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from topodata._validation import TopodataInputError
from topodata.nn import MODELS, build_model
from topodata.nn import evaluate, extract_features, fit, resolve_device
from topodata.nn.augment import crop_padding, random_crop, random_flip, resolve_augment

torch.set_num_threads(1)


@pytest.fixture
def tiny_images():
    """48 seeded 1x8x8 images, 3 classes told apart by which third of the image is bright."""
    rng = np.random.default_rng(0)
    y = np.arange(48) % 3
    x = rng.random((48, 1, 8, 8), dtype=np.float32) * 0.2
    for c in range(3):
        x[y == c, :, :, 2 * c : 2 * c + 3] += 0.8
    return x, y


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_forward_and_features_shapes(name, shape):
    net = build_model(name, shape, 7)
    x = torch.rand(3, *shape)
    net.train()
    assert net(x).shape == (3, 7)
    net.eval()
    feats = net.features(x)
    assert feats.shape == (3, net.feature_dim)
    torch.testing.assert_close(net.head(feats), net(x))


def test_feature_dims_and_lenet_layout():
    assert build_model("smallcnn", (1, 28, 28), 10).feature_dim == 128
    assert build_model("resnet18", (1, 28, 28), 10).feature_dim == 512
    lenet = build_model("lenet300100", (1, 28, 28), 10)
    sizes = [tuple(m.weight.shape) for m in lenet.modules() if isinstance(m, torch.nn.Linear)]
    assert sizes == [(300, 784), (100, 300), (10, 100)]


def test_resnet18_is_cifar_style_with_standard_widths():
    net = build_model("resnet18", (1, 28, 28), 10)
    assert net.body.conv1.kernel_size == (3, 3) and net.body.conv1.stride == (1, 1)
    assert net.body.conv1.in_channels == 1 and isinstance(net.body.maxpool, torch.nn.Identity)
    widths = [layer[0].conv1.out_channels for layer in (net.body.layer1, net.body.layer2, net.body.layer3, net.body.layer4)]
    assert widths == [64, 128, 256, 512]


def test_feature_vector_inputs():
    net = build_model("mlp", (5,), 2)
    assert net(torch.rand(4, 5)).shape == (4, 2)
    with pytest.raises(TopodataInputError, match="needs image inputs.*model='mlp'"):
        build_model("smallcnn", (5,), 2)


def test_build_model_errors():
    with pytest.raises(TopodataInputError, match="model must be one of"):
        build_model("vgg", (1, 8, 8), 10)
    with pytest.raises(TopodataInputError, match="n_classes must be >= 1"):
        build_model("mlp", (1, 8, 8), 0)


def test_build_model_is_seeded():
    a, b = build_model("smallcnn", (1, 8, 8), 3, random_state=1), build_model("smallcnn", (1, 8, 8), 3, random_state=1)
    c = build_model("smallcnn", (1, 8, 8), 3, random_state=2)
    for (k, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.head.weight, c.head.weight)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["mlp", "smallcnn"])
def test_fit_is_deterministic(tiny_images, name):
    x, y = tiny_images
    runs = []
    for seed in (0, 0, 1):
        net = build_model(name, (1, 8, 8), 3, random_state=0)
        fit(net, x, y, epochs=2, batch_size=16, random_state=seed, progress=False, device="cpu", augment="crop-flip")
        runs.append(_weights(net))
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k
    assert any(not torch.equal(runs[0][k], runs[2][k]) for k in runs[0] if runs[0][k].is_floating_point())


def test_fit_learns_and_evaluate_reports(tiny_images):
    x, y = tiny_images
    net = build_model("smallcnn", (1, 8, 8), 3)
    hist = fit(net, x, y, epochs=8, batch_size=16, progress=False, device="cpu")
    assert hist["steps"] == 24 and hist["epochs"] == 8 and len(hist["loss"]) == 8
    assert hist["loss"][-1] < hist["loss"][0]
    res = evaluate(net, x, y, device="cpu")
    assert res["accuracy"] == 1.0 and res["loss"] < 0.5
    assert not net.training


class Recorder:
    """A callback following the protocol: keeps what it is handed."""

    def __init__(self):
        self.batches, self.epochs = [], []

    def on_batch(self, *, epoch, step, indices, logits, targets):
        self.batches.append((epoch, step, indices.cpu().numpy(), targets.cpu().numpy(), logits.shape,
                             logits.requires_grad))

    def on_epoch_end(self, *, epoch, model):
        self.epochs.append((epoch, isinstance(model, torch.nn.Module)))


def test_callbacks_get_positions_in_x_and_indices_restrict_training(tiny_images):
    x, y = tiny_images
    keep = np.array([1, 4, 5, 9, 17, 20, 33, 40, 41, 47])
    rec = Recorder()
    hist = fit(build_model("mlp", (1, 8, 8), 3), x, y, epochs=3, batch_size=4, indices=keep, callbacks=[rec],
               progress=False, device="cpu")
    assert hist["n_train"] == 10 and hist["steps"] == 9  # ceil(10 / 4) batches per epoch
    assert [s for _, s, *_ in rec.batches] == list(range(9))
    assert rec.epochs == [(0, True), (1, True), (2, True)]
    for epoch in range(3):
        seen = np.concatenate([b[2] for b in rec.batches if b[0] == epoch])
        np.testing.assert_array_equal(np.sort(seen), keep)  # each kept position once per epoch, nothing else
    for _, _, idx, targets, shape, grad in rec.batches:
        np.testing.assert_array_equal(targets, y[idx])
        assert shape == (idx.size, 3) and not grad
    sizes = [b[2].size for b in rec.batches[:3]]
    assert sorted(sizes) == [3, 3, 4]  # near-equal batches, no sample dropped


def test_fixed_step_budget_is_independent_of_subset_size(tiny_images):
    x, y = tiny_images
    for keep in (np.arange(48), np.arange(0, 48, 4)):
        hist = fit(build_model("mlp", (1, 8, 8), 3), x, y, steps=7, batch_size=8, indices=keep, progress=False,
                   device="cpu")
        assert hist["steps"] == 7
    assert hist["epochs"] == 4  # 12 samples -> 2 batches per epoch -> 4 epochs for 7 steps


def test_indices_mask_equals_positions(tiny_images):
    x, y = tiny_images
    mask = np.zeros(48, bool)
    mask[::3] = True
    a, b = build_model("mlp", (1, 8, 8), 3), build_model("mlp", (1, 8, 8), 3)
    fit(a, x, y, epochs=1, batch_size=8, indices=mask, progress=False, device="cpu")
    fit(b, x, y, epochs=1, batch_size=8, indices=np.flatnonzero(mask), progress=False, device="cpu")
    assert torch.equal(a.head.weight, b.head.weight)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(epochs=1, steps=3), "epochs or steps, not both"),
        (dict(epochs=0), "epochs must be >= 1"),
        (dict(optimizer="lbfgs"), "optimizer must be one of"),
        (dict(schedule="step"), "schedule must be one of"),
        (dict(indices=[0, 0, 1]), "duplicates"),
        (dict(indices=[0, 48]), r"indices must lie in \[0, 48\)"),
        (dict(indices=[3]), "at least 2 samples"),
        (dict(device="tpu"), "device must be"),
        (dict(augment="mixup"), "augment must be one of"),
        (dict(lr=-1.0), "lr must be > 0"),
    ],
)
def test_fit_rejects_bad_options(tiny_images, kwargs, match):
    x, y = tiny_images
    with pytest.raises(TopodataInputError, match=match):
        fit(build_model("mlp", (1, 8, 8), 3), x, y, progress=False, **kwargs)


def test_fit_rejects_bad_data(tiny_images):
    x, y = tiny_images
    net = build_model("mlp", (1, 8, 8), 3)
    with pytest.raises(TopodataInputError, match="length 47 but features have 48"):
        fit(net, x, y[:-1], epochs=1, progress=False)
    bad = x.copy()
    bad[5, 0, 0, 0] = np.nan
    with pytest.raises(TopodataInputError, match="NaN or inf"):
        fit(net, bad, y, epochs=1, progress=False)
    with pytest.raises(TopodataInputError, match="class id 5 but the model has 3 outputs"):
        fit(net, x, np.where(y == 2, 5, y), epochs=1, progress=False, device="cpu")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        fit("mlp", x, y, epochs=1, progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_requested_without_cuda():
    with pytest.raises(TopodataInputError, match="CUDA is not available; use device='auto' or 'cpu'"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


def test_extract_features_shape_dtype(tiny_images):
    x, _ = tiny_images
    net = build_model("smallcnn", (1, 8, 8), 3)
    feats = extract_features(net, x, batch_size=10, progress=False, device="cpu")
    assert feats.shape == (48, 128) and feats.dtype == np.float32 and feats.flags.c_contiguous
    with torch.no_grad():
        np.testing.assert_allclose(feats, net.eval().features(torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="no features"):
        extract_features(torch.nn.Linear(64, 3), x.reshape(48, -1), progress=False)


def test_random_crop_is_a_shift_with_zero_fill():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6) + 1
    g = torch.Generator().manual_seed(0)
    out = random_crop(x, 2, g)
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):  # each output is one of the 25 windows of its own padded input
        windows = [padded[i, :, dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    again = random_crop(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_random_flip_mirrors_some_samples():
    x = torch.rand(64, 1, 4, 4)
    out = random_flip(x, torch.Generator().manual_seed(0))
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(3)).flatten(1).all(1)
    assert bool((same | flipped).all()) and 10 < int(flipped.sum()) < 54


def test_augment_resolution():
    assert resolve_augment("auto", (10, 1, 28, 28)) == "crop"
    assert resolve_augment("auto", (10, 5)) == "none"
    assert crop_padding(32, 32) == 4 and crop_padding(28, 28) == 3 and crop_padding(8, 8) == 1
    with pytest.raises(TopodataInputError, match="needs image inputs"):
        resolve_augment("crop", (10, 5))


def test_one_cycle_shape_and_tiny_budgets(tiny_images):
    from topodata.nn.loop import one_cycle

    f = one_cycle(100)
    lrs = [f(s) for s in range(100)]
    assert lrs[0] == pytest.approx(1 / 25) and max(lrs) == pytest.approx(1.0) and lrs.index(1.0) == 25
    assert lrs[-1] == pytest.approx(1 / 25 / 1e4) and all(a >= b for a, b in zip(lrs[25:], lrs[26:]))
    x, y = tiny_images
    for steps in (1, 2, 3):  # torch's OneCycleLR divides by zero here
        assert fit(build_model("mlp", (1, 8, 8), 3), x, y, steps=steps, progress=False, device="cpu")["steps"] == steps
