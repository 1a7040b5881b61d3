"""`topodata select` end to end: the output contract, determinism across processes, error paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from topodata.cli import build_parser, main
from topodata.select import class_budgets, n_kept

from conftest import save_arrays


@pytest.fixture
def arrays(tmp_path):
    return save_arrays(tmp_path, 100, 8)


def _run_cli(*args):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "topodata", *args], capture_output=True, text=True, env=env)


def test_parser_defaults():
    args = build_parser().parse_args(["select", "--dataset", "digits", "--rate", "0.9", "--out", "x"])
    assert args.method is None and args.seed == 0 and args.beta == "auto"  # None: topoprune, unless --scores
    assert args.class_balance is None and args.n_strata == 50 and args.sampler == "key"
    assert args.mp__topoprune__label_weight == 1.0  # --label-weight, generated from TopoPruneConfig


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["select", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--dataset", "--embeddings", "--labels", "--scores", "--rate", "--method", "--seed", "--out",
                "--class-balance", "--strategy", "--beta", "--n-strata", "--plot", "floor"):
        assert opt in text


def test_select_from_embeddings_writes_contract(tmp_path, arrays, capsys):
    fx, fy, x, y = arrays
    out = tmp_path / "out"
    assert main(["select", "--embeddings", str(fx), "--labels", str(fy), "--rate", "0.9",
                 "--method", "random", "--seed", "0", "--out", str(out)]) == 0
    assert "kept 40 of 400" in capsys.readouterr().out
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))  # .topodata: the writer's state
    assert files == ["indices.npy", "indices.txt", "manifest.json", "scores.npy"]
    idx = np.load(out / "indices.npy")
    assert idx.dtype == np.int64 and idx.size == 40 and np.all(np.diff(idx) > 0)
    assert np.bincount(y[idx]).tolist() == [10, 10, 10, 10]
    m = json.loads((out / "manifest.json").read_text())
    assert m["n_kept"] == 40 and m["method"] == "random" and m["rate"] == 0.9


def test_same_seed_byte_identical_across_processes(tmp_path, arrays):
    fx, fy, _, _ = arrays
    outs = []
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        out = tmp_path / name
        r = _run_cli("select", "--embeddings", str(fx), "--labels", str(fy), "--rate", "0.9",
                     "--method", "random", "--seed", seed, "--out", str(out), "-q")
        assert r.returncode == 0, r.stderr
        outs.append((out / "indices.npy").read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]


def _bad(tmp_path, capsys, argv, match):
    out = tmp_path / "bad"
    out.mkdir(exist_ok=True)
    before = sorted(out.iterdir())
    code = main([*argv, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1 and "error" in lines[0], err
    assert match in lines[0], lines[0]
    assert sorted(out.iterdir()) == before  # nothing written


def test_bad_rate(tmp_path, arrays, capsys):
    fx, fy, _, _ = arrays
    for rate in ("0", "1", "1.5", "-0.1"):
        _bad(tmp_path, capsys, ["select", "--embeddings", str(fx), "--labels", str(fy), "--rate", rate,
                                "--method", "random"], "strictly between 0 and 1")


def test_bad_nan_features(tmp_path, arrays, capsys):
    _, fy, x, _ = arrays
    x = x.copy()
    x[5, 2] = np.inf
    f = tmp_path / "nan.npy"
    np.save(f, x)
    _bad(tmp_path, capsys, ["select", "--embeddings", str(f), "--labels", str(fy), "--rate", "0.9",
                            "--method", "kcenter"], "NaN or inf")


def test_bad_label_length(tmp_path, arrays, capsys):
    fx, _, _, y = arrays
    f = tmp_path / "short.npy"
    np.save(f, y[:-3])
    _bad(tmp_path, capsys, ["select", "--embeddings", str(fx), "--labels", str(f), "--rate", "0.9",
                            "--method", "random"], "labels has length 397 but features have 400")


def test_bad_unreadable_and_missing_files(tmp_path, arrays, capsys):
    fx, fy, _, _ = arrays
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"this is not an npy file")
    _bad(tmp_path, capsys, ["select", "--embeddings", str(junk), "--labels", str(fy), "--rate", "0.9",
                            "--method", "random"], f"features file {junk} is not a .npy file")
    _bad(tmp_path, capsys, ["select", "--embeddings", str(tmp_path / "none.npy"), "--labels", str(fy),
                            "--rate", "0.9", "--method", "random"], "not found")
    archive = tmp_path / "x.npz"
    np.savez(archive, x=np.load(fx))
    _bad(tmp_path, capsys, ["select", "--embeddings", str(archive), "--labels", str(fy), "--rate", "0.9",
                            "--method", "random"], f"features file {archive} is a .npz archive")
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}] * 400, dtype=object), allow_pickle=True)
    _bad(tmp_path, capsys, ["select", "--embeddings", str(fx), "--labels", str(objects), "--rate", "0.9",
                            "--method", "random"], f"cannot read labels file {objects}: Object arrays")
    cut = tmp_path / "cut.npy"
    cut.write_bytes(fx.read_bytes()[:300])  # a copy interrupted after the header
    _bad(tmp_path, capsys, ["select", "--embeddings", str(cut), "--labels", str(fy), "--rate", "0.9",
                            "--method", "random"], f"cannot read features file {cut}")


def test_bad_source_combinations(tmp_path, arrays, capsys):
    fx, fy, _, _ = arrays
    _bad(tmp_path, capsys, ["select", "--rate", "0.9"], "exactly one of --dataset")
    _bad(tmp_path, capsys, ["select", "--embeddings", str(fx), "--rate", "0.9"], "needs --labels")
    _bad(tmp_path, capsys, ["select", "--dataset", "digits", "--embeddings", str(fx), "--labels", str(fy),
                            "--rate", "0.9"], "exactly one of")


def test_select_from_own_scores(tmp_path, arrays, capsys):
    """A method's scores.npy re-selects at another rate without the method; labels from a file."""
    fx, fy, _, y = arrays
    first = tmp_path / "first"
    assert main(["select", "--embeddings", str(fx), "--labels", str(fy), "--rate", "0.9", "--method", "moderate",
                 "--out", str(first), "-q"]) == 0
    scores = np.load(first / "scores.npy")
    again = tmp_path / "again"
    assert main(["select", "--scores", str(first / "scores.npy"), "--labels", str(fy), "--rate", "0.5",
                 "--strategy", "hard", "--out", str(again)]) == 0
    assert "method precomputed" in capsys.readouterr().out
    idx = np.load(again / "indices.npy")
    # hard keeps each class's top half of the given scores (continuous scores: no ties)
    for c in range(4):
        members = np.flatnonzero(y == c)
        top = members[np.argsort(-scores[members])[:50]]
        assert np.array_equal(np.sort(top), idx[y[idx] == c])
    m = json.loads((again / "manifest.json").read_text())
    assert m["method"] == "precomputed" and m["n_kept"] == 200 and m["dataset"] == f"labels:{fy}"
    assert np.array_equal(np.load(again / "scores.npy"), scores)


def test_bad_own_scores(tmp_path, arrays, capsys):
    fx, fy, _, _ = arrays
    s = tmp_path / "s.npy"
    np.save(s, np.arange(400.0))
    short = tmp_path / "short.npy"
    np.save(short, np.arange(399.0))
    _bad(tmp_path, capsys, ["select", "--scores", str(s), "--labels", str(fy), "--rate", "0.9",
                            "--method", "moderate"], "--scores replaces the method")
    _bad(tmp_path, capsys, ["select", "--scores", str(s), "--rate", "0.9"], "--scores needs the labels")
    _bad(tmp_path, capsys, ["select", "--scores", str(short), "--labels", str(fy), "--rate", "0.9"],
         "scores has 399 entries but labels 400")


def test_bad_unknown_dataset(tmp_path, capsys):
    _bad(tmp_path, capsys, ["select", "--dataset", "no-such-set", "--rate", "0.9", "--method", "random"],
         "no-such-set")


def test_rare_class_is_scored_and_kept(tmp_path):
    """A class of 5 samples (k_local=16) is scored with the whole class as each neighbourhood and
    keeps exactly its budget; it used to be refused."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(205, 4))
    y = np.concatenate([np.zeros(200, int), np.ones(5, int)])
    fx, fy = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(fx, x)
    np.save(fy, y)
    # proportional budgets leave class 1 a budget below its size, so TopoPrune must score it (boundary budgets
    # would keep all 5 of its samples, which sit among class 0, and need no neighbourhood)
    out = tmp_path / "o"
    assert main(["select", "--embeddings", str(fx), "--labels", str(fy), "--rate", "0.6", "--manifold", "none",
                 "--class-balance", "proportional", "--out", str(out)]) == 0
    want = class_budgets(y, n_kept(205, 0.6), balance="proportional")
    np.testing.assert_array_equal(np.bincount(y[np.load(out / "indices.npy")]), [want[0], want[1]])
    assert 0 < want[1] < 5


def test_unknown_method_is_argparse_error(tmp_path, arrays, capsys):
    fx, fy, _, _ = arrays
    with pytest.raises(SystemExit) as exc:
        main(["select", "--embeddings", str(fx), "--labels", str(fy), "--rate", "0.9", "--method", "x",
              "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bad_method_option_fails_before_the_embed_stage(tmp_path, capsys, monkeypatch):
    """A typo in a method option exits 2 at once: no proxy is trained, no cache entry appears."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("TOPODATA_CACHE", str(cache))
    argv = ["select", "--dataset", "digits", "--rate", "0.9", "--manifold", "umpa", "--out", str(tmp_path / "o")]
    try:
        code = main(argv)
    except SystemExit as exc:  # once the config declares its choices, argparse refuses the value itself
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--manifold" in err and "'umpa'" in err, err
    assert not (tmp_path / "o").exists()
    _bad(tmp_path, capsys, ["select", "--dataset", "digits", "--rate", "0.9", "--k-local", "1"], "--k-local")
    _bad(tmp_path, capsys, ["select", "--dataset", "digits", "--rate", "0.9", "--method", "d2",
                            "--d2-n-neighbors", "0"], "--d2-n-neighbors")
    assert not (cache / "embeddings").exists()


def test_options_of_another_method_warn_in_one_line(tmp_path, arrays, capsys):
    fx, fy, _, _ = arrays
    out = tmp_path / "out"
    assert main(["select", "--embeddings", str(fx), "--labels", str(fy), "--rate", "0.9", "--method", "random",
                 "--k-local", "8", "--model", "mlp", "--out", str(out), "-q"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "topodata select: warning: --k-local is an option of --method topoprune; --method random ignores it",
        "topodata select: warning: model ignored: no embedding stage runs (the features or scores are given)",
    ]
    # the same selection as without the ignored options
    again = tmp_path / "again"
    assert main(["select", "--embeddings", str(fx), "--labels", str(fy), "--rate", "0.9", "--method", "random",
                 "--out", str(again), "-q"]) == 0
    assert (out / "indices.npy").read_bytes() == (again / "indices.npy").read_bytes()
    assert capsys.readouterr().err == ""


def test_dedup_option_reaches_select(tmp_path, arrays, capsys):
    fx, fy, x, y = arrays
    x = np.concatenate([x, x[:40] + 1e-6])  # 40 near-copies, one per original
    y = np.concatenate([y, y[:40]])
    fx2, fy2 = tmp_path / "x2.npy", tmp_path / "y2.npy"
    np.save(fx2, x)
    np.save(fy2, y)
    out = tmp_path / "out"
    assert main(["select", "--embeddings", str(fx2), "--labels", str(fy2), "--rate", "0.5", "--method", "moderate",
                 "--dedup", "auto", "--out", str(out), "-q"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["params"]["dedup"] is not None
    idx = np.load(out / "indices.npy")
    kept_pairs = np.isin(np.arange(40), idx) & np.isin(np.arange(400, 440), idx)
    assert not kept_pairs.any()  # a copy is kept only once every group has given one member
    _bad(tmp_path, capsys, ["select", "--embeddings", str(fx2), "--labels", str(fy2), "--rate", "0.5",
                            "--dedup", "sometimes"], "--dedup must be auto, off or a positive distance")


def test_plot_writes_the_pictures_with_the_selection(tmp_path, arrays, capsys):
    fx, fy, _, _ = arrays
    out = tmp_path / "out"
    assert main(["select", "--embeddings", str(fx), "--labels", str(fy), "--rate", "0.9", "--manifold", "none",
                 "--plot", "--out", str(out), "-q"]) == 0
    for name in ("manifold.png", "diagrams.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert "plot" in json.loads((out / "manifest.json").read_text())["timings_s"]
    # with near-duplicates the method sees the dedup pool only: its manifold is drawn on those rows
    x, y = np.load(fx), np.load(fy)
    np.save(fx, np.concatenate([x, x[:30]]))
    np.save(fy, np.concatenate([y, y[:30]]))
    out2 = tmp_path / "out2"
    assert main(["select", "--embeddings", str(fx), "--labels", str(fy), "--rate", "0.9", "--manifold", "none",
                 "--dedup", "auto", "--plot", "--out", str(out2), "-q"]) == 0, capsys.readouterr().err
    assert (out2 / "manifold.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out2 / "manifest.json").read_text())["params"]["dedup"]["n_redundant"] == 30
