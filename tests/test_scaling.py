"""Scaling (issue 14): sample-fit + placement of the manifold, the per-class flow, the engines.

The Ray tests start a local Ray with 2 CPUs once for the module and shut it down.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.datasets import load_digits

from topodata import select
from topodata._engine import ENGINES, check_engine, current_engine, map_tasks, use_engine
from topodata._validation import TopodataInputError
from topodata.manifold import global_manifold, place_on_manifold
from topodata.neighbors import IVF_SCAN, KnnIndex, _ivf_nprobe, knn
from topodata.scores._classflow import class_flow
from topodata.scores.topoprune import local_neighbourhoods, topological_displacement


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return x, y


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    from topodata._ray import LOCAL_SYSTEM_CONFIG

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _system_config=LOCAL_SYSTEM_CONFIG)
    yield ray
    ray.shutdown()


# ----------------------------------------------------------------------------- kNN index
def test_knn_index_matches_brute_force_and_survives_pickling():
    rng = np.random.default_rng(0)
    ref, q = rng.normal(size=(500, 6)), rng.normal(size=(40, 6))
    idx, d = KnnIndex("exact").fit(ref).query(q, 5)
    full = np.linalg.norm(q[:, None, :] - ref[None], axis=2)
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1)[:, :5])
    np.testing.assert_allclose(d, np.sort(full, axis=1)[:, :5], rtol=1e-5)
    index = KnnIndex("ivf", random_state=0).fit(ref)
    a = index.query(q, 5)
    b = pickle.loads(pickle.dumps(index)).query(q, 5)  # how it travels to a Ray worker
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(TopodataInputError, match="queries have 3 features"):
        index.query(q[:, :3], 5)


def test_ivf_probes_capped_above_65k_rows_only():
    # unchanged where IVF ran before (1/8 of the lists), then about IVF_SCAN points per query
    assert _ivf_nprobe(60_000, 979) == 979 // 8
    assert _ivf_nprobe(1_000_000, 4000) == int(np.ceil(IVF_SCAN / 250))
    assert _ivf_nprobe(100, 2) == 2


# ----------------------------------------------------------------------------- placement
def test_place_on_manifold_exact_weights():
    # four reference points at distance 1 from the query: equal UMAP memberships, plain mean
    ref = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    emb = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0], [6.0, 1.0]])
    z = place_on_manifold(ref, emb, np.zeros((1, 2)), n_neighbors=4, normalize=False)
    assert z.dtype == np.float32 and z.shape == (1, 2)
    np.testing.assert_allclose(z, [[3.0, 1.0]], rtol=1e-6)
    # a query on top of the first reference point: membership 1 there, less for the farther ones
    z1 = place_on_manifold(ref, emb, np.array([[1.0, 0.0]]), n_neighbors=4, normalize=False)
    assert 0.0 < z1[0, 0] < 3.0 and z1[0, 1] == 1.0
    with pytest.raises(TopodataInputError, match="features have 3 columns"):
        place_on_manifold(ref, emb, np.zeros((1, 3)))


def test_manifold_sample_fit_keeps_contract_and_determinism(digits):
    x, _ = digits
    opts = dict(n_epochs=30, random_state=5)
    z = global_manifold(x, fit_size=700, **opts)
    assert z.shape == (x.shape[0], 8) and z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_array_equal(z, global_manifold(x, fit_size=700, **opts))
    # a fit size of at least n is the plain fit, bit for bit
    np.testing.assert_array_equal(global_manifold(x, fit_size=x.shape[0], **opts), global_manifold(x, **opts))
    # placed rows sit among their own class (digits' classes separate well on the manifold)
    y = digits[1]
    nb, _ = knn(z, 11)
    assert (y[nb[:, 1:]] == y[:, None]).mean() > 0.9
    with pytest.raises(TopodataInputError, match="fit_size"):
        global_manifold(x, fit_size=3)


# ----------------------------------------------------------------------------- per-class flow
@pytest.mark.parametrize("piece_rows", [1, 400, 4096])  # one class per piece, 2 classes, all 10 in one
def test_class_flow_equals_one_pass_over_all_samples(digits, one_thread, monkeypatch, piece_rows):
    import topodata.scores._classflow as CF

    assert CF.class_pieces([CF.GROUP_BELOW, 10, 10]) == [[0], [1, 2]]  # a class of GROUP_BELOW rows is alone
    monkeypatch.setattr(CF, "PIECE_ROWS", piece_rows)
    assert len(CF.class_pieces(np.bincount(digits[1]).tolist())) == {1: 10, 400: 5, 4096: 1}[piece_rows]
    x, y = digits
    z = global_manifold(x, n_epochs=30, random_state=0)
    w = np.random.default_rng(0).uniform(0.5, 2.0, size=y.size)
    neigh = local_neighbourhoods(z, y, 16, random_state=3)
    whole = topological_displacement(z, neigh, weights=w)
    nb, deaths, disp, timings = class_flow(z, y, k_local=16, steps=3, step_size=0.5, power=2.0, weights=w,
                                           knn_method="auto", device="cpu", knn_seed=3)
    np.testing.assert_array_equal(nb, neigh)
    np.testing.assert_array_equal(disp, whole)  # same terms summed in the same order
    assert deaths.shape == (y.size, 16) and set(timings) == {"local_topology", "displacement"}
    # classes of 1-6 samples (k_local=16) take the whole class, padded; still one pass's result
    small = local_neighbourhoods(z[:30], y[:30], 16, random_state=0)
    nb, _, disp, _ = class_flow(z[:30], y[:30], k_local=16, steps=3, step_size=0.5, power=2.0, weights=w[:30],
                                knn_method="auto", device="cpu", knn_seed=0)
    np.testing.assert_array_equal(nb, small)
    np.testing.assert_array_equal(disp, topological_displacement(z[:30], small, weights=w[:30]))
    assert (disp > 0).sum() >= 25


# ----------------------------------------------------------------------------- engines
def test_engine_options_are_checked():
    assert ENGINES == ("inprocess", "ray")
    with pytest.raises(TopodataInputError, match="engine"):
        check_engine("spark")
    with pytest.raises(TopodataInputError, match="needs engine='ray'"):
        check_engine("inprocess", "auto")
    x = np.zeros((20, 2)); y = np.repeat([0, 1], 10)
    with pytest.raises(TopodataInputError, match="engine"):
        select(x, y, rate=0.5, method="random", engine="dask")
    assert current_engine().name == "inprocess"
    assert map_tasks(divmod, [(7, 2), (9, 4)]) == [(3, 1), (2, 1)]


def test_ray_engine_equals_inprocess_on_digits(digits, ray_local):
    x, y = digits[0][:1000], digits[1][:1000]
    params = {"umap_epochs": 10, "umap_fit_size": 600}  # a sample fit, placement of the other 400
    a = select(x, y, rate=0.8, random_state=0, method_params=params)
    b = select(x, y, rate=0.8, random_state=0, method_params=params, engine="ray")
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert b.manifest["engine"]["engine"] == "ray" and b.manifest["engine"]["ray_cpus"] == 2.0
    assert ray_local.is_initialized()  # a Ray the caller started is left running


def test_ray_placement_batches_equal_inprocess(digits, ray_local):
    x, _ = digits
    ref, emb = x[:600], np.random.default_rng(0).normal(size=(600, 3))
    with use_engine("ray"):
        a = place_on_manifold(ref, emb, x[600:], batch_size=256)  # 5 tasks
    np.testing.assert_array_equal(a, place_on_manifold(ref, emb, x[600:], batch_size=256))


def test_ray_ivf_graph_search_in_blocks_equals_one_call(digits, monkeypatch, built_indices, ray_local):
    # an IVF graph under Ray: built once, searched in 3 blocks as tasks; the same graph as one call
    import topodata.neighbors as N

    x = digits[0]
    want = knn(x, 15, method="ivf", random_state=0)
    monkeypatch.setattr(N, "SEARCH_BLOCK", 600)
    searched = []
    block = N._search_block
    monkeypatch.setattr(N, "_search_block", lambda *a: searched.append(a[3] - a[2]) or block(*a))
    with use_engine("inprocess"):  # one call in-process whatever the block size
        np.testing.assert_array_equal(knn(x, 15, method="ivf", random_state=0)[0], want[0])
    assert searched == [] and built_indices[-2:] == ["ivf", "ivf"]
    with use_engine("ray"):
        got = knn(x, 15, method="ivf", random_state=0)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


# ----------------------------------------------------------------------------- command line
def test_ray_data_extraction_equals_inprocess(digits, ray_local):
    # the embed stage's features through Ray Data (map_batches, actors holding the model), in row order
    from topodata._threads import canonical_threads
    from topodata.embed.extract import extract
    from topodata.nn import build_model, extract_features

    x = (digits[0].reshape(-1, 1, 8, 8) / 16.0).astype(np.float32)[:1000]
    net = build_model("smallcnn", (1, 8, 8), 10, random_state=0)
    with canonical_threads():
        want = extract_features(net, x, batch_size=128, device="cpu", progress=False)
    with use_engine("ray"):
        got = extract(net, x, device="cpu", batch_size=128)
    assert got.shape == want.shape == (1000, net.feature_dim) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_cli_engine_options(tmp_path, capsys):
    from topodata.cli import build_parser, main

    args = build_parser().parse_args(["select", "--dataset", "digits", "--rate", "0.9", "--out", "x",
                                      "--engine", "ray", "--ray-address", "auto", "--umap-fit-size", "5000"])
    assert (args.engine, args.ray_address, args.mp__topoprune__umap_fit_size) == ("ray", "auto", 5000)
    assert build_parser().parse_args(["select", "--dataset", "digits", "--rate", "0.9", "--out", "x"]).engine == "inprocess"
    # an address without the Ray engine: one line, exit 2, nothing written, before the dataset is loaded
    code = main(["select", "--dataset", "digits", "--rate", "0.9", "--ray-address", "auto", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "needs engine='ray'" in err[0]
    assert not (tmp_path / "o").exists()


def test_pipeline_embeds_through_ray_data_under_the_ray_engine(tmp_path, monkeypatch, ray_local):
    # select_dataset with engine='ray': the proxy's features come from Ray Data (counted), equal to the
    # in-process ones, and so does the selection; each call embeds afresh (its own cache folder)
    import topodata.embed.extract as E
    from topodata.pipeline import select_dataset

    calls = []
    ray_features = E._ray_data_features
    monkeypatch.setattr(E, "_ray_data_features", lambda *a, **k: calls.append(len(a[1])) or ray_features(*a, **k))
    opts = dict(rate=0.9, method="moderate", model="mlp", epochs=2, random_state=0, progress=False)
    monkeypatch.setenv("TOPODATA_CACHE", str(tmp_path / "a"))
    inproc = select_dataset("digits", **opts)
    assert calls == []
    monkeypatch.setenv("TOPODATA_CACHE", str(tmp_path / "b"))
    on_ray = select_dataset("digits", engine="ray", **opts)
    assert len(calls) == 2  # the training split and the test split
    assert on_ray.manifest["engine"]["engine"] == "ray"
    np.testing.assert_array_equal(on_ray.indices, inproc.indices)
