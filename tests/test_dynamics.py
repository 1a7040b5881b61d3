"""Training-dynamics recorder and the EL2N / forgetting / AUM scores computed from it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from topodata._validation import TopodataInputError
from topodata.scores.dynamics import aum_scores, el2n_scores, forgetting_scores
from topodata.nn.dynamics import DynamicsRecorder, TrainingDynamics, dynamics_from_features

torch.set_num_threads(1)


def _direct(logits: np.ndarray, targets: np.ndarray):
    """Per-row correctness, margin and EL2N written out plainly in numpy (the reference)."""
    z = logits.astype(np.float64)
    rows = np.arange(len(z))
    other = z.copy()
    other[rows, targets] = -np.inf
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    onehot = np.eye(z.shape[1])[targets]
    return z.argmax(1) == targets, z[rows, targets] - other.max(1), np.linalg.norm(p - onehot, axis=1)


def test_recorder_shuffled_batches_match_direct_computation():
    rng = np.random.default_rng(0)
    n, c, n_epochs = 37, 4, 3
    targets = rng.integers(0, c, n)
    logits = rng.normal(scale=2.0, size=(n_epochs, n, c)).astype(np.float32)
    unseen = {2: np.array([5, 11])}  # epoch 2 skips two samples
    rec = DynamicsRecorder(n, c)
    for epoch in range(n_epochs):
        order = rng.permutation(np.setdiff1d(np.arange(n), unseen.get(epoch, [])))
        for step, batch in enumerate(np.array_split(order, 5)):
            rec.on_batch(
                epoch=epoch, step=step, indices=torch.from_numpy(batch),
                logits=torch.from_numpy(logits[epoch, batch]), targets=torch.from_numpy(targets[batch]),
            )
        rec.on_epoch_end(epoch=epoch, model=None)
    d = rec.result()
    assert d.correct.shape == (n_epochs, n) and d.margin.dtype == np.float32
    for epoch in range(n_epochs):
        correct, margin, el2n = _direct(logits[epoch], targets)
        seen = np.ones(n, bool)
        seen[unseen.get(epoch, [])] = False
        np.testing.assert_array_equal(d.seen[epoch], seen)
        np.testing.assert_array_equal(d.correct[epoch], correct & seen)
        np.testing.assert_allclose(d.margin[epoch][seen], margin[seen], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(d.el2n[epoch][seen], el2n[seen], rtol=1e-5, atol=1e-6)
        assert np.isnan(d.el2n[epoch][~seen]).all()
    np.testing.assert_array_equal(d.epochs, [0, 1, 2])


def test_el2n_and_aum_match_hand_computation():
    # one sample, target 0, two classes; logits over three epochs
    logits = [[0.0, 0.0], [math.log(3.0), 0.0], [1.0, 3.0]]
    rec = DynamicsRecorder(1, 2)
    for epoch, z in enumerate(logits):
        rec.on_batch(epoch=epoch, step=epoch, indices=[0], logits=torch.tensor([z]), targets=torch.tensor([0]))
    d = rec.result()
    # softmax (.5,.5) -> ‖(-.5,.5)‖ = √.5 ; softmax (.75,.25) -> ‖(-.25,.25)‖ = √.125
    assert el2n_scores(d, epochs=2)[0] == pytest.approx((math.sqrt(0.5) + math.sqrt(0.125)) / 2, rel=1e-6)
    # margins 0, ln 3, -2 ; score is -AUM
    assert aum_scores(d)[0] == pytest.approx(-(math.log(3.0) - 2.0) / 3, rel=1e-6)
    # epochs beyond the record: every row is used
    p2 = 1 / (1 + math.exp(2.0))
    assert el2n_scores(d, epochs=50)[0] == pytest.approx(
        (math.sqrt(0.5) + math.sqrt(0.125) + math.sqrt(2) * (1 - p2)) / 3, rel=1e-6
    )
    assert d.correct[:, 0].tolist() == [True, True, False]  # a tie resolves to the first class


def test_forgetting_counts_on_a_synthetic_trajectory():
    T, F = True, False
    correct = np.array(
        [  # epochs × samples
            [F, T, F, T, T],
            [T, T, F, F, F],  # sample 3 unseen in this epoch, sample 4 too
            [T, T, F, F, T],
            [F, T, F, F, F],  # sample 3 unseen
            [T, T, F, T, T],
            [F, T, F, F, T],
        ]
    )
    margin = np.where(correct, 1.0, -1.0)
    margin[1, 3] = margin[3, 3] = margin[1, 4] = np.nan
    d = TrainingDynamics(correct=correct, margin=margin, el2n=np.zeros(correct.shape))
    # 0: learned at 1, forgotten at 3 and 5 -> 2; 1: never forgotten -> 0; 2: never learned -> max+1;
    # 3: T, -, F, -, T, F over presentations -> forgotten at 2 and 5 -> 2;
    # 4: T, -, T, F, T, T -> the unseen epoch is no event; forgotten once at 3 -> 1
    assert forgetting_scores(d).tolist() == [2.0, 0.0, 3.0, 2.0, 1.0]


def test_scores_refuse_samples_never_recorded():
    margin = np.array([[1.0, np.nan], [2.0, np.nan]])
    d = TrainingDynamics(correct=np.zeros((2, 2), bool), margin=margin, el2n=margin)
    with pytest.raises(TopodataInputError, match="1 sample\\(s\\) have no margin record"):
        aum_scores(d)


def test_dynamics_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    margin = rng.normal(size=(3, 8)).astype(np.float32)
    margin[1, 2] = np.nan
    d = TrainingDynamics(rng.random((3, 8)) > 0.5, margin, np.abs(margin), epochs=np.array([0, 2, 5]))
    path = d.save(tmp_path / "dyn.npz")
    back = TrainingDynamics.load(path)
    for name in ("correct", "margin", "el2n", "epochs"):
        np.testing.assert_array_equal(getattr(back, name), getattr(d, name))
    assert back.margin.dtype == np.float32 and back.correct.dtype == bool
    np.savez(tmp_path / "bad.npz", correct=d.correct)
    with pytest.raises(TopodataInputError, match=r"arrays \['margin', 'el2n'\] are missing"):
        TrainingDynamics.load(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        TrainingDynamics.load(tmp_path / "nope.npz")


def test_recorder_save_equals_result(tmp_path):
    rec = DynamicsRecorder(3, 2)
    rec.on_batch(epoch=0, step=0, indices=np.array([1, 2]), logits=np.array([[1.0, 0.0], [0.0, 2.0]]),
                 targets=np.array([0, 0]))
    back = TrainingDynamics.load(rec.save(tmp_path / "r.npz"))
    np.testing.assert_array_equal(back.margin, rec.result().margin)


def test_training_dynamics_rejects_mismatched_shapes():
    with pytest.raises(TopodataInputError, match="must share one 2-D shape"):
        TrainingDynamics(np.zeros((2, 3), bool), np.zeros((2, 4)), np.zeros((2, 3)))


def test_recorder_rejects_bad_batches():
    rec = DynamicsRecorder(5, 3)
    with pytest.raises(TopodataInputError, match=r"logits must have shape \(2, 3\)"):
        rec.on_batch(epoch=0, step=0, indices=[0, 1], logits=torch.zeros(2, 4), targets=[0, 1])
    with pytest.raises(TopodataInputError, match="does not fit n_samples=5"):
        rec.on_batch(epoch=0, step=0, indices=[0, 7], logits=torch.zeros(2, 3), targets=[0, 1])
    with pytest.raises(RuntimeError, match="has no records"):
        rec.result()


def test_recorder_as_fit_callback_records_every_sample():
    from topodata.nn import fit

    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    rec = DynamicsRecorder(50, 2)
    fit(torch.nn.Linear(3, 2), x, y, epochs=2, batch_size=16, augment="none", device="cpu",
        progress=False, callbacks=[rec])
    d = rec.result()
    assert d.n_epochs == 2 and d.seen.all()


def test_dynamics_from_features_is_seeded_and_complete(blobs):
    x, y = blobs
    a = dynamics_from_features(x, y, epochs=3, random_state=4)
    b = dynamics_from_features(x, y, epochs=3, random_state=4)
    c = dynamics_from_features(x, y, epochs=3, random_state=5)
    assert a.correct.shape == (3, len(y)) and a.seen.all()
    np.testing.assert_array_equal(a.margin, b.margin)
    assert not np.array_equal(a.margin, c.margin)
    assert a.correct[0].mean() < 0.9  # the head starts at zero: early records are mostly wrong
    learned = dynamics_from_features(x, y, epochs=5, random_state=4)
    assert learned.correct[-1].mean() > 0.95  # separated blobs: a linear head learns them
    with pytest.raises(TopodataInputError, match="epochs must be >= 1"):
        dynamics_from_features(x, y, epochs=0)
