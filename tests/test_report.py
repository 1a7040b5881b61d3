"""`topodata report`: one self-contained HTML file that shows exactly what a selection kept and cut."""

from __future__ import annotations

import base64
import importlib
import io
import json
import math
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from topodata.cli import build_parser, main
from topodata.data import load_dataset
from topodata.report import noise_cut, write_report

DATA_URI = "data:image/png;base64,"
select_module = importlib.import_module("topodata.select")  # the module; `topodata.select` is the function


class _Page(HTMLParser):
    """Every tag's attributes, and the data-index items of each gallery (kind, class)."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.galleries: dict[tuple[str, int], list[int]] = {}
        self.totals: dict[tuple[str, int], int] = {}
        self.sections: dict[int, int] = {}
        self._gallery = None
        self._table_id = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.kept_table: list[list[str]] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "data-gallery" in a:
            self._gallery = (a["data-gallery"], int(a["data-class"]))
            self.galleries[self._gallery] = []
            self.totals[self._gallery] = int(a["data-total"])
        elif "data-index" in a and self._gallery is not None:
            self.galleries[self._gallery].append(int(a["data-index"]))
        if tag == "section":
            self.sections[int(a["data-class"])] = int(a["data-kept"])
            self._gallery = None
        if tag == "table":
            self._table_id = a.get("id")
        if self._table_id == "kept-per-class":
            if tag == "tr":
                self._row = []
            elif tag in ("td", "th"):
                self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if self._table_id == "kept-per-class":
            if tag in ("td", "th") and self._cell is not None:
                self._row.append("".join(self._cell).strip())
                self._cell = None
            elif tag == "tr" and self._row is not None:
                self.kept_table.append(self._row)
                self._row = None
            elif tag == "table":
                self._table_id = None


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


@pytest.fixture(scope="module")
def coverage_run(tmp_path_factory):
    """A digits selection from precomputed scores at rate 0.9, beta 0.1 (the coverage cut applies),
    and the samples the cut really removed: per class, the members ``select`` did not hand on to
    the strata (recorded by wrapping ``_coverage_pick``)."""
    tmp = tmp_path_factory.mktemp("report")
    ds = load_dataset("digits")
    x = ds.x_train.reshape(ds.n_train, -1)
    scores = np.linalg.norm(x - x.mean(axis=0), axis=1)
    scores[::7] = scores[1::7][: scores[::7].size]  # ties: the stable order must match select's
    np.save(tmp / "s.npy", scores)
    handed_on: list[np.ndarray] = []
    real = select_module._coverage_pick

    def spy(idx, *args, **kw):
        handed_on.append(np.asarray(idx).copy())
        return real(idx, *args, **kw)

    out = tmp / "sel"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(select_module, "_coverage_pick", spy)
        assert main(["select", "--scores", str(tmp / "s.npy"), "--dataset", "digits", "--rate", "0.9",
                     "--beta", "0.1", "--out", str(out), "-q"]) == 0
    rest = np.concatenate(handed_on)
    truth = np.setdiff1d(np.arange(ds.n_train), rest)
    before = {p.name for p in out.iterdir()}
    assert main(["report", str(out), "-q"]) == 0
    return out, ds, scores, truth, before


def test_parser_defaults():
    args = build_parser().parse_args(["report", "runs/x"])
    assert args.dir == Path("runs/x") and args.dataset is None and args.labels is None
    assert args.max_per_gallery == 24 and args.seed == 0


def test_report_is_one_self_contained_file(coverage_run):
    out, *_, before = coverage_run
    report = out / "report.html"
    assert report.is_file()
    assert {p.name for p in out.iterdir()} - before == {"report.html"}  # one file, nothing else
    page = _parse(report)
    srcs = [a["src"] for t, a in page.tags if "src" in a]
    assert len(srcs) > 100  # thumbnails plus the two plots
    for src in srcs:
        assert src.startswith(DATA_URI)
        from PIL import Image

        Image.open(io.BytesIO(base64.b64decode(src[len(DATA_URI):]))).verify()  # a real PNG
    external = [a for t, a in page.tags for k, v in a.items() if k in ("href", "src", "data") and not v.startswith("data:")]
    assert external == [] and not any(t in ("script", "link", "iframe") for t, _ in page.tags)
    assert report.stat().st_size < 2_000_000


def test_kept_per_class_matches_manifest(coverage_run):
    out, ds, *_ = coverage_run
    manifest = json.loads((out / "manifest.json").read_text())
    page = _parse(out / "report.html")
    header, *rows = page.kept_table
    assert header[:3] == ["class", "samples", "kept"]
    table = {r[0]: int(r[2]) for r in rows if r[0] != "all"}
    assert table == {k: v for k, v in manifest["class_counts_kept"].items()}
    assert int(rows[-1][2]) == manifest["n_kept"] == 144
    assert {str(c): k for c, k in page.sections.items()} == manifest["class_counts_kept"]
    kept = np.load(out / "indices.npy")
    for c in range(10):  # the kept gallery shows kept samples of its class only
        shown = page.galleries[("kept", c)]
        assert shown and set(shown) <= set(kept.tolist()) and (ds.y_train[shown] == c).all()


def test_noise_gallery_is_exactly_the_beta_cut(coverage_run):
    out, ds, scores, truth, _ = coverage_run
    page = _parse(out / "report.html")
    shown = np.sort(np.concatenate([np.asarray(page.galleries[("noise", c)], dtype=np.int64) for c in range(10)]))
    np.testing.assert_array_equal(shown, truth)
    # per class floor(0.1 n_c) of the highest scores, none of them kept
    counts = np.bincount(ds.y_train)
    assert {c: page.totals[("noise", c)] for c in range(10)} == {c: math.floor(0.1 * n) for c, n in enumerate(counts)}
    assert not np.isin(truth, np.load(out / "indices.npy")).any()
    for c in range(10):  # given label, then the neighbours' majority
        assert (ds.y_train[page.galleries[("noise", c)]] == c).all()
    text = (out / "report.html").read_text()
    i = int(truth[0])
    assert f'data-index="{i}"' in text and f"{ds.y_train[i]}→" in text


def test_noise_cut_follows_select_from_scores_per_class_beta_and_suspects():
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), [50, 40, 30, 20])
    s = np.round(rng.random(y.size), 2)  # many ties
    suspects = rng.random(y.size) < 0.15
    budgets = {0: 10, 1: 8, 2: 0, 3: 15}
    beta = {0: 0.1, 1: 0.33, 2: 0.5, 3: 0.4}  # class 2: no budget, no cut; class 3: capped at n_c - budget
    for flagged in (None, suspects):
        handed_on = []
        real = select_module._coverage_pick

        def spy(idx, *args, **kw):
            handed_on.append(np.asarray(idx).copy())
            return real(idx, *args, **kw)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(select_module, "_coverage_pick", spy)
            kept = select_module.select_from_scores(s, y, budgets, beta=beta, rng=np.random.default_rng(0),
                                                    suspects=flagged)
        truth = np.setdiff1d(np.flatnonzero(y != 2), np.concatenate(handed_on))
        params = {"strategy": "coverage", "beta": 0.0, "beta_per_class": {str(c): b for c, b in beta.items()}}
        got = noise_cut(s, y, kept, params, suspects=flagged)
        np.testing.assert_array_equal(got, truth)
        assert np.bincount(y[got], minlength=4).tolist() == [5, 13, 0, 5]
    # a method that does not cut, and a method without scores
    assert noise_cut(s, y, kept, {"strategy": "hard", "beta": None}).size == 0
    assert noise_cut(np.full(y.size, np.nan), y, kept, {"strategy": "coverage", "beta": 0.2}).size == 0


def test_dedup_groups_gallery_shows_largest_groups_first(coverage_run, tmp_path):
    out, ds, *_ = coverage_run
    import shutil

    folder = tmp_path / "sel"
    folder.mkdir()
    for name in ("indices.npy", "scores.npy", "manifest.json"):
        shutil.copyfile(out / name, folder / name)
    groups = np.arange(ds.n_train, dtype=np.int64)
    three = np.flatnonzero(ds.y_train == 3)
    groups[three[:5]] = groups[three[0]]  # one group of 5
    groups[three[10:12]] = groups[three[10]]  # one of 2
    np.save(folder / "dedup_groups.npy", groups)
    page = _parse(write_report(folder))
    np.testing.assert_array_equal(page.galleries[("dup", 3)], np.concatenate([three[:5], three[10:12]]))
    assert page.totals[("dup", 3)] == 7 and page.galleries[("dup", 0)] == []


def test_random_method_without_scores(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["select", "--dataset", "digits", "--rate", "0.8", "--method", "random", "--out", str(out), "-q"]) == 0
    assert main(["report", str(out), "--max-per-gallery", "5"]) == 0
    assert "report.html" in capsys.readouterr().err
    page = _parse(out / "report.html")
    manifest = json.loads((out / "manifest.json").read_text())
    assert {str(c): k for c, k in page.sections.items()} == manifest["class_counts_kept"]
    assert not any(kind == "noise" for kind, _ in page.galleries)
    assert all(len(v) <= 5 for v in page.galleries.values())
    assert "no per-sample score" in (out / "report.html").read_text()


def test_embeddings_input_gives_tables(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) + np.repeat(np.eye(6)[:3] * 4, 100, axis=0)
    y = np.repeat(np.arange(3), 100)
    np.save(tmp_path / "f.npy", x)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "s.npy", np.linalg.norm(x, axis=1))
    out = tmp_path / "e"
    assert main(["select", "--embeddings", str(tmp_path / "f.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--rate", "0.9", "--method", "random", "--out", str(out), "-q"]) == 0
    assert main(["report", str(out), "--labels", str(tmp_path / "y.npy"), "-q"]) == 0
    page = _parse(out / "report.html")
    assert [t for t, a in page.tags if t == "figure"] == []  # no images: tables of indices
    kept = set(np.load(out / "indices.npy").tolist())
    assert set(page.galleries[("kept", 1)]) <= kept and len(page.galleries[("kept", 1)]) == 10
    assert sum(1 for t, a in page.tags if t == "img") == 1  # the 2-D view of the --embeddings file
    # scores of your own on the same labels: the noise cut shows as a table too
    out2 = tmp_path / "e2"
    assert main(["select", "--scores", str(tmp_path / "s.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--rate", "0.9", "--beta", "0.2", "--out", str(out2), "-q"]) == 0
    assert main(["report", str(out2), "-q"]) == 0  # labels found through the manifest's labels:PATH
    page = _parse(out2 / "report.html")
    top = np.argsort(-np.linalg.norm(x[y == 0], axis=1), kind="stable")[:20]
    assert sorted(page.galleries[("noise", 0)]) == sorted(top.tolist())


def test_class_names_as_labels(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) + np.repeat(np.eye(6)[:3] * 4, 100, axis=0)
    names = np.repeat(["tulip", "oak", "fern"], 100)  # ids in sorted order: fern 0, oak 1, tulip 2
    np.save(tmp_path / "f.npy", x)
    np.save(tmp_path / "y.npy", names)
    out = tmp_path / "n"
    assert main(["select", "--embeddings", str(tmp_path / "f.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--rate", "0.9", "--method", "random", "--out", str(out)]) == 0
    assert "kept per class: fern: 10, oak: 10, tulip: 10" in capsys.readouterr().out
    assert json.loads((out / "manifest.json").read_text())["classes"] == ["fern", "oak", "tulip"]
    assert main(["report", str(out), "--labels", str(tmp_path / "y.npy"), "-q"]) == 0
    page = _parse(out / "report.html")
    kept = np.load(out / "indices.npy")
    assert sorted(page.galleries[("kept", 2)]) == sorted(kept[names[kept] == "tulip"].tolist())
    assert "2 (tulip)" in (out / "report.html").read_text()


def test_bad_input_one_line_exit_2(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "f.npy", rng.normal(size=(40, 3)))
    np.save(tmp_path / "y.npy", np.repeat([0, 1], 20))
    out = tmp_path / "e"
    assert main(["select", "--embeddings", str(tmp_path / "f.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--rate", "0.5", "--method", "random", "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    cases = [
        ([str(tmp_path / "missing")], "not found"),
        ([str(out)], "--labels"),  # an --embeddings selection keeps no labels
        ([str(out), "--labels", str(tmp_path / "f.npy")], "labels"),  # 2-D: not labels
        ([str(out), "--labels", str(tmp_path / "nope.npy")], "not found"),
    ]
    np.save(tmp_path / "y_other.npy", np.r_[np.zeros(30, np.int64), np.ones(10, np.int64)])  # other kept counts
    cases.append(([str(out), "--labels", str(tmp_path / "y_other.npy")], "another dataset"))
    np.save(tmp_path / "f_short.npy", rng.normal(size=(39, 3)))
    cases.append(([str(out), "--labels", str(tmp_path / "y.npy"), "--embeddings", str(tmp_path / "f_short.npy")],
                  "features have shape (39, 3)"))
    cases.append(([str(out), "--dataset", "digits"], "has 1433 training samples but the selection 40"))
    for argv, words in cases:
        assert main(["report", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("topodata report: error:") and words in err
        assert not (out / "report.html").exists()


def test_neighbour_majority_matches_sklearn_brute_force():
    from sklearn.neighbors import NearestNeighbors

    from topodata.report import _neighbour_majority

    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 7)).astype(np.float32)
    x[10] = x[11]  # a duplicate: the query must still drop itself, not its copy
    y = rng.integers(0, 4, size=500)
    q = np.array([0, 10, 11, 250, 499])
    maj, votes = _neighbour_majority(x, y, q, 9)
    nbr = NearestNeighbors(n_neighbors=10).fit(x).kneighbors(x[q], return_distance=False)
    for row, i, m, v in zip(nbr, q, maj, votes):
        others = [j for j in row if j != i][:9]
        counts = np.bincount(y[others], minlength=4)
        assert m == counts.argmax() and v == counts.max()
    assert 11 in [j for j in nbr[1] if j != 10]


def test_label_noise_variant_marks_flipped_samples(tmp_path):
    spec = "digits+label_noise=0.1"
    ds = load_dataset(spec)
    flipped = ds.info["flipped"]
    s = flipped + np.linspace(0, 0.5, ds.n_train)  # flipped samples score highest
    out = tmp_path / "n"
    import topodata

    topodata.save_selection(topodata.select(None, ds.y_train, rate=0.9, scores=s, beta=0.1, dataset=spec), out)
    page = _parse(write_report(out, max_per_gallery=200))
    cut = np.concatenate([page.galleries[("noise", c)] for c in range(10)]).astype(np.int64)
    kept = np.load(out / "indices.npy")
    text = (out / "report.html").read_text()
    assert text.count(" ✗</figcaption>") == int(flipped[cut].sum()) > 100
    assert (f"{int(flipped[cut].sum())} of the {cut.size} samples cut as noise carry a flipped label, "
            f"{int(flipped[kept].sum())} of the 144 kept") in text


def test_kept_gallery_spans_the_kept_scores(coverage_run, tmp_path):
    out, ds, scores, *_ = coverage_run
    import shutil

    for name in ("indices.npy", "scores.npy", "manifest.json"):  # a copy: the fixture's report stays as it is
        shutil.copyfile(out / name, tmp_path / name)
    page = _parse(write_report(tmp_path, max_per_gallery=5))
    kept = np.load(tmp_path / "indices.npy")
    for c in range(10):
        mine = kept[ds.y_train[kept] == c]
        shown = page.galleries[("kept", c)]
        assert len(shown) == 5 and scores[shown[0]] == scores[mine].min() and scores[shown[-1]] == scores[mine].max()
        assert np.all(np.diff(scores[shown]) >= 0)


def test_select_report_option(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "f.npy", rng.normal(size=(200, 4)))
    np.save(tmp_path / "y.npy", np.repeat([0, 1], 100))
    out = tmp_path / "sel"
    assert main(["select", "--embeddings", str(tmp_path / "f.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--rate", "0.9", "--method", "random", "--report", "--out", str(out)]) == 0
    assert "report.html" in capsys.readouterr().out  # the summary lists it with the other files
    page = _parse(out / "report.html")
    assert page.sections == {0: 10, 1: 10}  # labels came from the run: no --labels needed


@pytest.mark.slow
def test_noise_cut_of_topoprune_default_run_with_flagged_samples_and_dedup_pool():
    """TopoPrune's default cut (per-class beta raised to the flagged share, flagged samples first, over the
    near-duplicate pool) is recomputed exactly once the flagged samples are known (``suspects.npy``)."""
    rng = np.random.default_rng(0)
    sizes = [150, 120, 100]
    x = np.concatenate([rng.normal(loc=2 * c, size=(s, 5)) for c, s in enumerate(sizes)])
    y = np.repeat(np.arange(3), sizes)
    flip = rng.choice(y.size, 40, replace=False)
    y[flip] = (y[flip] + 1) % 3
    x[5], x[7] = x[6], x[6] + 1e-6  # a near-duplicate group: dedup keeps one, the pool loses the others
    seen, rests = {}, []
    real_sfs, real_pick = select_module.select_from_scores, select_module._coverage_pick

    def sfs(scores, labels, budgets, **kw):
        seen.update(suspects=kw.get("suspects"), n_pool=scores.shape[0])
        return real_sfs(scores, labels, budgets, **kw)

    def pick(idx, *args, **kw):
        rests.append(np.asarray(idx).copy())
        return real_pick(idx, *args, **kw)

    import topodata

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(select_module, "select_from_scores", sfs)
        mp.setattr(select_module, "_coverage_pick", pick)
        res = topodata.select(x, y, rate=0.9, method="topoprune", random_state=0)
    params = res.manifest["params"]
    assert "flagged" in params["beta_rule"] and params["dedup"]["n_redundant"] >= 1
    pool = np.flatnonzero(np.isfinite(res.scores))
    assert pool.size == seen["n_pool"] < y.size and seen["suspects"].any()
    suspects = np.zeros(y.size, dtype=bool)
    suspects[pool] = seen["suspects"]
    truth = np.setdiff1d(pool, pool[np.concatenate(rests)])
    np.testing.assert_array_equal(noise_cut(res.scores, y, res.indices, params, suspects=suspects), truth)
