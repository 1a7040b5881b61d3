"""A selection you can look at: one self-contained ``report.html`` next to ``indices.npy``.

:func:`write_report` reads a folder written by ``topodata select`` and shows what was kept and why:
the run's summary, per class thumbnail galleries (kept samples, samples the noise cut ``beta``
dropped with their given label and the majority label of their neighbours, the most redundant
samples when the folder has ``dedup_groups.npy``, a random sample of the other dropped ones), a 2-D
view of the features with the kept samples highlighted and the score histograms with the coverage
strata and the cut. Every image is an embedded PNG data URI, so the file opens from disk with no
network. Feature-only inputs (``--embeddings``) get tables of indices and scores instead of images.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _validation as V
from ._io import load_npy

__all__ = ["write_report", "noise_cut", "REPORT_FILE"]

REPORT_FILE = "report.html"
DEDUP_FILE = "dedup_groups.npy"
SUSPECTS_FILE = "suspects.npy"  # bool per sample: flagged as likely label errors, cut first
THUMB_MAX_PX = 64  # larger images are shrunk to fit this box
MAX_HIST_CLASSES = 20  # per-class histogram panels shown at most
KNN_K = 10  # neighbours voting for the majority label
PCA_FIT_ROWS = 5000  # rows the 2-D view's PCA is fitted on
MAP_MAX_POINTS = 15000  # points drawn in the 2-D view at most: every kept one, a seeded share of the rest


def noise_cut(scores: Any, labels: Any, kept_indices: Any, params: dict, *, suspects: Any = None) -> np.ndarray:
    """Indices the ``coverage`` strategy's top-``beta`` cut removed before its strata were filled.

    :func:`topodata.select.coverage_cut` over the samples the method scored (finite scores; with
    near-duplicate handling the samples kept outright have none), with each class's budget read
    back as its kept count among them and ``beta_c`` from ``params['beta_per_class']`` when the
    manifest has it, else ``params['beta']``.

    Parameters
    ----------
    scores : array-like of shape (n_samples,)
    labels : array-like of shape (n_samples,)
    kept_indices : array-like of int
        The selection's ``indices.npy``.
    params : dict
        ``manifest['params']``.
    suspects : array-like of bool, shape (n_samples,), optional
        Samples the method flagged as likely label errors (cut first, as ``select`` does).

    Returns
    -------
    ndarray of int64
        Sorted indices of the samples cut as likely noise; empty unless the strategy was
        ``coverage`` with a cut.

    Examples
    --------
    >>> import numpy as np
    >>> s = np.array([0.1, 0.9, 0.5, 0.8, 0.2, 0.7]); y = np.array([0, 0, 0, 1, 1, 1])
    >>> noise_cut(s, y, [0, 4], {"strategy": "coverage", "beta": 0.34}).tolist()
    [1, 3]
    """
    from .select import coverage_cut

    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    pool = np.flatnonzero(np.isfinite(s))
    if params.get("strategy") != "coverage" or not pool.size:
        return np.empty(0, dtype=np.int64)
    kept = np.zeros(y.size, dtype=bool)
    kept[np.asarray(kept_indices, dtype=np.int64)] = True
    budgets = {int(c): int(k) for c, k in enumerate(np.bincount(y[pool], weights=kept[pool]).astype(np.int64))}
    per_class = params.get("beta_per_class") or {}
    beta = {c: float(per_class.get(str(c), per_class.get(c, params.get("beta") or 0.0))) for c in budgets}
    flagged = None if suspects is None else np.asarray(suspects, dtype=bool)[pool]
    return pool[coverage_cut(s[pool], y[pool], budgets, beta, suspects=flagged)]


@dataclass
class _Inputs:
    manifest: dict
    indices: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    images: np.ndarray | None = None  # (n, C, H, W) in [0, 1]
    classes: tuple[str, ...] | None = None
    features: np.ndarray | None = None
    features_from: str = ""
    dedup: np.ndarray | None = None
    suspects: np.ndarray | None = None
    flipped: np.ndarray | None = None  # ground truth of a label-noise variant (Dataset.info)
    notes: list[str] = field(default_factory=list)


def _as_array(value: Any, what: str) -> np.ndarray:
    if isinstance(value, (str, Path)):
        return load_npy(value, what)
    return np.asarray(value)


def _read_selection(folder: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    if not folder.is_dir():
        raise FileNotFoundError(f"selection folder not found: {folder}; pass the --out folder of `topodata select`")
    missing = [f for f in ("manifest.json", "indices.npy", "scores.npy") if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} has no {missing[0]}; pass the --out folder of `topodata select`")
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise V.TopodataInputError(f"cannot read {folder / 'manifest.json'} ({exc})") from None
    for key in ("n_total", "method", "rate", "class_counts_kept"):
        if key not in manifest:
            raise V.TopodataInputError(f"{folder / 'manifest.json'} has no {key!r}; was it written by `topodata select`?")
    n = int(manifest["n_total"])
    indices = _as_array(folder / "indices.npy", "indices").astype(np.int64, copy=False).ravel()
    scores = _as_array(folder / "scores.npy", "scores").astype(np.float64, copy=False).ravel()
    if scores.shape[0] != n or (indices.size and (indices.min() < 0 or indices.max() >= n)):
        raise V.TopodataInputError(
            f"{folder}: scores.npy has {scores.shape[0]} entries and indices span "
            f"[{indices.min(initial=0)}, {indices.max(initial=0)}] but the manifest says n_total={n}"
        )
    return manifest, indices, scores


def _gather(folder: Path, dataset, labels, features, root, progress) -> _Inputs:
    manifest, indices, scores = _read_selection(folder)
    n = scores.shape[0]
    spec = dataset if dataset is not None else manifest.get("dataset")
    images = classes = None
    feats, feats_from = None, ""
    notes: list[str] = []
    if features is not None:
        feats, feats_from = _as_array(features, "features"), "the features given"
        if feats.ndim < 2 or feats.shape[0] != n:
            raise V.TopodataInputError(
                f"features have shape {feats.shape} but the selection has {n} samples; pass the "
                "(n_samples, n_features) array it was made from"
            )
    if labels is not None:
        labels = _as_array(labels, "labels")
    if hasattr(spec, "x_train"):  # a loaded topodata.data.Dataset
        ds, spec = spec, spec.name
    elif isinstance(spec, str) and spec.split(":")[0] in ("embeddings", "labels", "arrays"):
        kind, _, path = spec.partition(":")
        ds = None
        if kind == "embeddings" and feats is None and path and Path(path).is_file():
            feats, feats_from = load_npy(path, "features"), f"the --embeddings file {path}"
        if kind == "labels" and labels is None and path and Path(path).is_file():
            labels = load_npy(path, "labels")
    elif isinstance(spec, str) and spec:
        from .data import load_dataset

        ds = load_dataset(spec, root=root, progress=progress)
    else:
        ds = None
    flipped = None
    if ds is not None:
        if ds.n_train != n:
            raise V.TopodataInputError(
                f"dataset {spec!r} has {ds.n_train} training samples but the selection {n}; pass the dataset "
                "it was made from (--dataset SPEC)"
            )
        classes = ds.classes
        flipped = (getattr(ds, "info", None) or {}).get("flipped")
        if labels is None:
            labels = ds.y_train
        if ds.x_train.ndim == 4 and ds.x_train.shape[1] in (1, 3, 4):
            images = ds.x_train
    if labels is None:
        raise V.TopodataInputError(
            f"the selection's dataset is {spec!r}: its labels are not saved with it; pass them "
            "(topodata report DIR --labels Y.npy, or write_report(..., labels=y))"
        )
    labels, names = V.encode_labels(labels)
    y = V.check_labels(labels, n_samples=n, name="labels")
    if classes is None and (names is not None or manifest.get("classes")):  # the selection's class names
        classes = tuple(str(c) for c in (names if names is not None else manifest["classes"]))
    kept_counts = {str(int(c)): int(k) for c, k in zip(*np.unique(y[indices], return_counts=True))}
    if kept_counts != {str(k): int(v) for k, v in manifest["class_counts_kept"].items()}:
        raise V.TopodataInputError(
            f"the labels give kept counts per class {kept_counts} but the manifest says "
            f"{manifest['class_counts_kept']}; they belong to another dataset"
        )
    if feats is None:
        cache = (manifest.get("embedding") or {}).get("cache")
        if cache and (Path(cache) / "features.npy").is_file():
            feats, feats_from = load_npy(Path(cache) / "features.npy", "features"), f"the cached embedding {cache}"
    if feats is None and ds is not None:
        feats, feats_from = ds.x_train.reshape(n, -1), "the raw inputs (pixels; no embedding was saved)"
    if feats is not None:
        feats = np.asarray(feats).reshape(feats.shape[0], -1) if np.ndim(feats) > 2 else np.asarray(feats)
        if feats.ndim != 2 or feats.shape[0] != n or feats.shape[1] == 0 or not np.isfinite(feats).all():
            notes.append(f"features from {feats_from} have shape {feats.shape}, not ({n}, d) finite; not used")
            feats, feats_from = None, ""
    dedup = None
    if (folder / DEDUP_FILE).is_file():
        dedup = load_npy(folder / DEDUP_FILE, DEDUP_FILE).ravel()
        if dedup.shape[0] != n or dedup.dtype.kind not in "iu":
            notes.append(f"{DEDUP_FILE} has shape {dedup.shape} and dtype {dedup.dtype}, not ({n},) int; not used")
            dedup = None
    suspects = None
    if (folder / SUSPECTS_FILE).is_file():
        suspects = load_npy(folder / SUSPECTS_FILE, SUSPECTS_FILE).ravel()
        if suspects.shape[0] != n or suspects.dtype != bool:
            notes.append(f"{SUSPECTS_FILE} has shape {suspects.shape} and dtype {suspects.dtype}, not ({n},) bool; not used")
            suspects = None
    return _Inputs(manifest=manifest, indices=indices, scores=scores, labels=y, images=images, classes=classes,
                   features=feats, features_from=feats_from, dedup=dedup, suspects=suspects, notes=notes,
                   flipped=None if flipped is None or len(flipped) != n else np.asarray(flipped, dtype=bool))


# ---------------------------------------------------------------------------------------------- pictures

def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _thumb_uris(images: np.ndarray, idx: np.ndarray) -> list[str]:
    """PNG data URIs of ``images[idx]``; images larger than ``THUMB_MAX_PX`` are shrunk."""
    from PIL import Image

    if idx.size == 0:
        return []
    x = np.clip(images[idx], 0.0, 1.0)
    u8 = (x * 255.0 + 0.5).astype(np.uint8)
    u8 = u8[:, 0] if u8.shape[1] in (1, 4) else u8.transpose(0, 2, 3, 1)  # RGBA shows its first channel
    out = []
    for arr in u8:
        im = Image.fromarray(arr, mode="L" if arr.ndim == 2 else "RGB")
        if max(im.size) > THUMB_MAX_PX:
            im.thumbnail((THUMB_MAX_PX, THUMB_MAX_PX))
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        out.append(_png_uri(buf.getvalue()))
    return out


def _pca_2d(x: np.ndarray, seed: int) -> np.ndarray:
    """Two leading principal components, the axes fitted on at most ``PCA_FIT_ROWS`` seeded rows
    (on 60,000 x 784 pixels a full fit took 6 s; the axes of 5,000 rows look the same). numpy's SVD,
    signs fixed as in :func:`topodata.plots.view_2d`."""
    x = V.as_float32(x)
    if x.shape[1] <= 2:
        return np.column_stack([x, np.zeros((x.shape[0], 2 - x.shape[1]), np.float32)])
    rng = np.random.default_rng(seed)
    fit = x if x.shape[0] <= PCA_FIT_ROWS else x[np.sort(rng.choice(x.shape[0], PCA_FIT_ROWS, replace=False))]
    mean = fit.mean(axis=0, dtype=np.float64).astype(np.float32)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    axes = vt[:2]
    axes *= np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])[:, None]
    return (x - mean) @ axes.T


def _neighbour_majority(x: np.ndarray, y: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Majority label among each query's ``k`` nearest other samples (Euclidean), and its vote count.

    Brute force through one matrix product per block of queries: only the shown samples are
    queried (a few hundred), so no index is built.
    """
    if query.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    x = V.as_float32(x)
    k = min(k, x.shape[0] - 1)
    sq = np.einsum("ij,ij->i", x, x)
    nbr = np.empty((query.size, k + 1), dtype=np.int64)
    for lo in range(0, query.size, 256):
        q = query[lo:lo + 256]
        d = sq[None, :] - 2.0 * (x[q] @ x.T)  # + |q|^2, the same for a whole row
        part = np.argpartition(d, k, axis=1)[:, : k + 1]
        order = np.argsort(np.take_along_axis(d, part, axis=1), axis=1, kind="stable")
        nbr[lo:lo + 256] = np.take_along_axis(part, order, axis=1)
    # drop the query itself wherever it appears (duplicates can push it out of column 0)
    not_self = nbr != query[:, None]
    keep = np.cumsum(not_self, axis=1) <= k
    votes = np.where(not_self & keep, y[nbr], -1)
    counts = np.zeros((query.size, int(y.max()) + 2), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(query.size), votes.shape[1]), votes.ravel() + 1), 1)
    counts = counts[:, 1:]
    return counts.argmax(axis=1), counts.max(axis=1)


def _strata_edges(s: np.ndarray, n_strata: int) -> np.ndarray | None:
    lo, hi = float(s.min()), float(s.max())
    return np.linspace(lo, hi, n_strata + 1) if hi > lo else None


def _histograms(inp: _Inputs, cut_mask: np.ndarray, kept_mask: np.ndarray, coverage: bool, n_strata: int) -> bytes:
    """Per-class score histograms: all samples, kept, cut as noise; coverage strata as the bins."""
    from .plots import _figure, _png

    y, s = inp.labels, inp.scores
    classes = np.unique(y)[:MAX_HIST_CLASSES]
    ncol = min(5, classes.size)
    nrow = math.ceil(classes.size / ncol)
    height = 2.0 * nrow + 0.6
    fig = _figure((2.6 * ncol, height))
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    for ax, c in zip(axes, classes):
        m = (y == c) & np.isfinite(s)
        if not m.any():
            ax.set_title(f"class {c}: no scores", fontsize=8)
            continue
        sc = s[m]
        rest = sc[~cut_mask[m]]
        edges = _strata_edges(rest, n_strata) if coverage and rest.size else None
        if edges is None:
            bins = np.linspace(sc.min(), sc.max() if sc.max() > sc.min() else sc.min() + 1, 41)
        else:  # bins = the strata, continued at the same width over the cut
            width = edges[1] - edges[0]
            extra = max(0, math.ceil((sc.max() - edges[-1]) / width - 1e-9))
            bins = np.concatenate([edges, edges[-1] + width * np.arange(1, extra + 1)])
        # counts drawn as one filled step patch each (ax.hist makes a patch per bar: 10x slower)
        for part, colour, label in ((np.ones(sc.size, bool), "#c8c8c8", "dropped"),
                                    (kept_mask[m], "#1f77b4", "kept"), (cut_mask[m], "#d62728", "cut as noise")):
            if part.any():
                ax.stairs(np.histogram(sc[part], bins=bins)[0], bins, fill=True, color=colour, label=label)
        if cut_mask[m].any():
            ax.axvline(sc[cut_mask[m]].min(), color="#d62728", lw=0.8, ls="--")
        ax.set_title(f"class {_class_name(inp, c)}", fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_yticks([])  # counts differ per class; the shape is the message (and ticks are slow to draw)
    for ax in axes[classes.size:]:
        ax.set_visible(False)
    axes[0].legend(fontsize=6, frameon=False)
    fig.subplots_adjust(hspace=0.5, wspace=0.25, top=1 - 0.55 / height)
    what = f"bins = the {n_strata} coverage strata of each class" if coverage else "40 bins per class"
    if np.unique(y).size > classes.size:
        what += f"; the first {classes.size} classes"
    fig.suptitle(f"scores per class (higher = harder); {what}; dashed: the noise cut", fontsize=9)
    return _png(fig)


# ---------------------------------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:14px 0 4px} .muted{color:#666}
table{border-collapse:collapse;margin:6px 0} td,th{border:1px solid #ddd;padding:2px 8px;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left}
.cards{display:flex;gap:12px;flex-wrap:wrap} .card{background:#f6f8fa;border-radius:6px;padding:8px 14px}
.card b{display:block;font-size:20px}
.gallery{display:flex;flex-wrap:wrap;gap:4px;margin:4px 0 10px}
figure{margin:0;text-align:center;font-size:9.5px;color:#555;width:64px}
figure img{width:56px;height:56px;image-rendering:pixelated;border:2px solid #ddd;display:block;margin:auto}
figure.kept img{border-color:#1f77b4} figure.noise img{border-color:#d62728} figure.dup img{border-color:#9467bd}
figcaption{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.plots img{max-width:100%;vertical-align:top} .plots img.map{max-width:560px}
.row{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start}
.parts.side{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start} .parts.side .part{max-width:320px} pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _fmt(v: float) -> str:
    return "NaN" if not np.isfinite(v) else f"{v:.3g}"


def _gallery(kind: str, c: int, idx: np.ndarray, total: int, inp: _Inputs, title: str,
             extra: dict[int, str] | None = None) -> str:
    """One gallery: thumbnails (or a table without images) of ``idx``; ``total`` is the full count."""
    head = f'<h3>{_e(title)} <span class="muted">({idx.size} shown of {total})</span></h3>'
    attrs = f'data-gallery="{kind}" data-class="{c}" data-total="{total}"'
    if idx.size == 0:
        return f'<div class="part">{head}<div class="gallery" {attrs}><span class="muted">none</span></div></div>'
    extra = extra or {}
    if inp.images is None:
        rows = "".join(
            f'<tr data-index="{i}"><td>{i}</td><td>{_fmt(inp.scores[i])}</td><td class="l">{_e(extra.get(i, ""))}</td></tr>'
            for i in idx.tolist()
        )
        return (f'<div class="part">{head}<table class="gallery" {attrs}><tr><th>index</th><th>score</th>'
                f'<th class="l">note</th></tr>{rows}</table></div>')
    uris = _thumb_uris(inp.images, idx)
    figs = "".join(
        f'<figure class="{kind}" data-index="{i}" title="index {i}, score {_fmt(inp.scores[i])}'
        f'{_e(", " + extra[i]) if i in extra else ""}"><img src="{u}" alt="sample {i}">'
        f"<figcaption>{_e(extra.get(i, f'#{i}'))}</figcaption></figure>"
        for i, u in zip(idx.tolist(), uris)
    )
    return f'<div class="part">{head}<div class="gallery" {attrs}>{figs}</div></div>'


def _spread(idx: np.ndarray, scores: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``cap`` of ``idx``: evenly spaced over the score order, or a seeded draw without scores."""
    if idx.size <= cap:
        sub = idx
    elif np.isfinite(scores[idx]).all():
        by_score = idx[np.argsort(scores[idx], kind="stable")]
        sub = by_score[np.linspace(0, idx.size - 1, cap).round().astype(np.int64)]
    else:
        sub = rng.choice(idx, size=cap, replace=False)
    s = scores[sub]
    return sub[np.argsort(np.where(np.isfinite(s), s, np.inf), kind="stable")]


def _class_name(inp: _Inputs, c: int) -> str:
    """``'3'``, or ``'3 (Dress)'`` where the dataset names its classes otherwise than by number."""
    name = inp.classes[c] if inp.classes and 0 <= c < len(inp.classes) else str(c)
    return str(c) if name == str(c) else f"{c} ({name})"


def _table(rows: list[list[Any]], header: list[str], left: int = 1) -> str:
    th = "".join(f'<th class="l">{_e(h)}</th>' if j < left else f"<th>{_e(h)}</th>" for j, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="l">{_e(v)}</td>' if j < left else f"<td>{_e(v)}</td>" for j, v in enumerate(r))
        + "</tr>" for r in rows
    )
    return f"<table>{'<tr>' + th + '</tr>'}{body}</table>"


def write_report(
    selection_dir: str | Path,
    *,
    dataset: Any = None,
    labels: Any = None,
    features: Any = None,
    root: str | Path | None = None,
    max_per_gallery: int = 24,
    max_thumbnails: int = 2400,
    random_state: int = 0,
    progress: bool = False,
) -> Path:
    """Write ``report.html`` into a selection folder and return its path.

    Parameters
    ----------
    selection_dir : str or path
        A folder written by ``topodata select`` (``manifest.json``, ``indices.npy``,
        ``scores.npy``; ``dedup_groups.npy`` adds the redundancy galleries).
    dataset : str or topodata.data.Dataset, optional
        Where images and labels come from; default the manifest's ``dataset`` spec, loaded with
        :func:`topodata.data.load_dataset`. Selections made from ``--embeddings`` have no images:
        their galleries become tables of indices and scores.
    labels : array-like of shape (n_samples,) or path, optional
        Needed when the dataset cannot be loaded from the manifest (``--embeddings`` inputs).
    features : array-like of shape (n_samples, n_features) or path, optional
        For the neighbours' majority label and the 2-D view (PCA). Default: the ``--embeddings``
        file or the cached embedding the manifest names, else the raw inputs.
    root : str or path, optional
        torchvision root, as for ``load_dataset``.
    max_per_gallery : int, default=24
        Thumbnails per gallery at most (the full count is printed beside each).
    max_thumbnails : int, default=2400
        Thumbnails in the whole report at most: with many classes each gallery gets fewer, so the
        file stays small (a few MB for 60,000 samples).
    random_state : int, default=0
        Seeds the random sample of dropped samples and the PCA.
    progress : bool, default=False
        Let dataset loading report on stderr.

    Returns
    -------
    Path
        ``selection_dir / 'report.html'``, written atomically.

    Raises
    ------
    FileNotFoundError
        If the folder or one of its files is missing.
    TopodataInputError
        If the labels cannot be found or do not match the manifest's kept counts.

    Examples
    --------
    >>> import numpy as np, tempfile, topodata
    >>> from topodata.report import write_report
    >>> x = np.random.default_rng(0).normal(size=(60, 3)); y = np.repeat([0, 1], 30)
    >>> res = topodata.select(x, y, rate=0.5, method="moderate", random_state=0)
    >>> d = tempfile.mkdtemp(); _ = topodata.save_selection(res, d)
    >>> write_report(d, labels=y, features=x).name
    'report.html'
    """
    return _write_report(selection_dir, dataset=dataset, labels=labels, features=features, root=root,
                         max_per_gallery=max_per_gallery, max_thumbnails=max_thumbnails,
                         random_state=random_state, progress=progress)[0]


def _write_report(selection_dir, *, dataset, labels, features, root, max_per_gallery, max_thumbnails,
                  random_state, progress) -> tuple[Path, dict[str, float]]:
    """:func:`write_report`, also returning the seconds per stage (``scripts/bench_report.py``)."""
    V.check_scalar(max_per_gallery, "max_per_gallery", int, min_val=1)
    V.check_scalar(max_thumbnails, "max_thumbnails", int, min_val=1)
    t_start = time.perf_counter()
    timings = {}
    folder = Path(selection_dir)
    t0 = time.perf_counter()
    inp = _gather(folder, dataset, labels, features, root, progress)
    timings["load"] = time.perf_counter() - t0
    m, y, s = inp.manifest, inp.labels, inp.scores
    n = y.shape[0]
    rng = np.random.default_rng(random_state)
    params = m.get("params") or {}
    kept = np.zeros(n, dtype=bool)
    kept[inp.indices] = True
    finite = np.isfinite(s)
    has_scores = bool(finite.any())
    coverage = params.get("strategy") == "coverage" and has_scores
    cut = noise_cut(s, y, inp.indices, params, suspects=inp.suspects)
    cut_mask = np.zeros(n, dtype=bool)
    cut_mask[cut] = True
    other = ~kept & ~cut_mask
    classes, counts = np.unique(y, return_counts=True)
    galleries_per_class = 3 + (inp.dedup is not None)
    cap = int(min(max_per_gallery, max(4, max_thumbnails // max(1, classes.size * galleries_per_class))))

    # pictures
    t0 = time.perf_counter()
    map_html = hist_html = ""
    if inp.features is not None:
        from .plots import plot_manifold

        xy = _pca_2d(inp.features, random_state)
        drawn = np.arange(n)
        if n > MAP_MAX_POINTS:  # all kept samples, a seeded sample of the others
            rest = np.flatnonzero(~kept)
            n_rest = max(0, MAP_MAX_POINTS - inp.indices.size)
            drawn = np.sort(np.concatenate([inp.indices, rng.choice(rest, min(n_rest, rest.size), replace=False)]))
        also = "" if drawn.size == n else f"; {drawn.size - inp.indices.size:,} of the {n - inp.indices.size:,} dropped drawn"
        png = plot_manifold(xy[drawn], y[drawn], np.searchsorted(drawn, inp.indices),
                            title=f"2-D PCA of {inp.features.shape[1]}-d features: {inp.indices.size:,} kept "
                                  f"of {n:,} (large dots){also}")
        map_html = f'<img class="map" src="{_png_uri(png)}" alt="2-D view of the features, kept samples highlighted">'
    if has_scores:
        png = _histograms(inp, cut_mask, kept, coverage, int(params.get("n_strata") or 50))
        hist_html = f'<img src="{_png_uri(png)}" alt="score histograms per class">'
    timings["plots"] = time.perf_counter() - t0

    # neighbours' majority label of the cut samples that are shown
    t0 = time.perf_counter()
    shown_cut = {int(c): cut[y[cut] == c][np.argsort(-s[cut[y[cut] == c]], kind="stable")][:cap] for c in classes}
    notes_cut: dict[int, str] = {}
    q = np.concatenate(list(shown_cut.values())) if shown_cut else np.empty(0, np.int64)
    if inp.features is not None and q.size:
        maj, votes = _neighbour_majority(inp.features, y, q, KNN_K)
        k = min(KNN_K, n - 1)
        notes_cut = {int(i): f"{y[i]}→{a} {v}/{k}" for i, a, v in zip(q.tolist(), maj.tolist(), votes.tolist())}
    elif q.size:
        notes_cut = {int(i): f"given {y[i]}" for i in q.tolist()}
    if inp.flipped is not None:  # a label-noise variant knows which labels it flipped
        notes_cut = {i: t + (" ✗" if inp.flipped[i] else "") for i, t in notes_cut.items()}
    timings["neighbours"] = time.perf_counter() - t0

    # per-class sections
    t0 = time.perf_counter()
    sections = []
    for c, n_c in zip(classes.tolist(), counts.tolist()):
        in_c = y == c
        k_idx = np.flatnonzero(in_c & kept)
        c_idx = np.flatnonzero(in_c & cut_mask)
        o_idx = np.flatnonzero(in_c & other)
        parts = [
            _gallery("kept", c, _spread(k_idx, s, cap, rng), k_idx.size, inp,
                     "kept" + (", lowest to highest score" if has_scores else "")),
        ]
        if coverage:
            parts.append(_gallery(
                "noise", c, shown_cut[c], c_idx.size, inp,
                "dropped as likely noise (the β cut, highest score first; given label → neighbours' majority)",
                notes_cut,
            ))
        if inp.dedup is not None:
            g = inp.dedup[in_c]
            ids, inv, sizes = np.unique(g, return_inverse=True, return_counts=True)
            size_of = np.where(ids[inv] >= 0, sizes[inv], 1)
            red = np.flatnonzero(in_c)[size_of > 1]
            order = np.lexsort((red, inp.dedup[red], -size_of[size_of > 1]))
            red_shown = red[order][:cap]
            notes = {int(i): f"group {inp.dedup[i]}" + (" ✓" if kept[i] else "") for i in red_shown.tolist()}
            parts.append(_gallery("dup", c, red_shown, red.size, inp,
                                  "most redundant (largest near-duplicate groups; ✓ kept)", notes))
        pick = rng.choice(o_idx, size=min(cap, o_idx.size), replace=False) if o_idx.size else o_idx
        parts.append(_gallery("dropped", c, np.sort(pick), o_idx.size, inp,
                              "dropped, a random sample" + (" (not the noise cut)" if coverage else "")))
        sections.append(
            f'<section id="class-{c}" data-class="{c}" data-kept="{k_idx.size}">'
            f"<h2>class {_e(_class_name(inp, c))} <span class=\"muted\">kept {k_idx.size} of {n_c}"
            + (f", {c_idx.size} cut as noise" if coverage else "") + "</span></h2>"
            + f'<div class="{"parts" if inp.images is not None else "parts side"}">' + "".join(parts) + "</div></section>"
        )
    timings["galleries"] = time.perf_counter() - t0

    # summary
    rows = [[_class_name(inp, c), n_c, int((kept & (y == c)).sum()), int((cut_mask & (y == c)).sum()),
             int((other & (y == c)).sum())] for c, n_c in zip(classes.tolist(), counts.tolist())]
    rows.append(["all", n, int(kept.sum()), int(cut_mask.sum()), int(other.sum())])
    per_class = _table(rows, ["class", "samples", "kept", "cut as noise", "other dropped"])
    per_class = per_class.replace("<table>", '<table id="kept-per-class">', 1)
    tim = m.get("timings_s") or {}
    timing_table = _table([[k, f"{v:.2f}"] for k, v in tim.items()], ["stage", "seconds"])
    notes = list(inp.notes)
    if not has_scores:
        notes.append(f"method {m['method']!r} gives no per-sample score (scores.npy is NaN): no histogram and "
                     "no noise cut; galleries are seeded draws")
    elif not finite.all():
        notes.append(f"{int((~finite).sum())} samples have no score (NaN: kept outright as distinct near-duplicate "
                     "group members, or not scored by the method); histograms and the cut cover the scored ones")
    elif not coverage:
        notes.append(f"strategy {params.get('strategy')!r}: no noise cut (only coverage drops a top-β fraction)")
    if coverage and "flagged" in str(params.get("beta_rule")) and inp.suspects is None:
        notes.append(f"the cut put the method's flagged samples first, but the folder has no {SUSPECTS_FILE}: "
                     "the noise gallery shows the highest scores, which may differ from the samples cut")
    if inp.flipped is not None:
        notes.append(f"label-noise ground truth: {int(inp.flipped[cut].sum()):,} of the {cut.size:,} samples cut as "
                     f"noise carry a flipped label, {int(inp.flipped[inp.indices].sum()):,} of the "
                     f"{inp.indices.size:,} kept; {int(inp.flipped.sum()):,} flipped in all (✗ in the captions)")
    if inp.images is None:
        notes.append("no images (feature-only input): galleries are tables of indices and scores")
    if inp.features is not None:
        notes.append(f"neighbours and the 2-D view use {inp.features_from}; majority of the {min(KNN_K, n - 1)} "
                     "nearest other samples (Euclidean)")
    else:
        notes.append("no features: no neighbours' majority label and no 2-D view")
    if inp.dedup is None:
        notes.append(f"no {DEDUP_FILE} in the folder: no redundancy galleries")
    cards = [("kept", f"{m.get('n_kept', int(kept.sum())):,} of {n:,}"), ("rate (removed)", m["rate"]),
             ("method", m["method"]), ("seed", m.get("seed")), ("cut as noise", f"{cut.size:,}")]
    card_html = "".join(f'<div class="card"><span class="muted">{_e(a)}</span><b>{_e(b)}</b></div>' for a, b in cards)
    timings["total"] = time.perf_counter() - t_start
    doc = (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>topodata selection: {_e(m.get('dataset'))}, {_e(m['method'])}, rate {_e(m['rate'])}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>What was kept: {_e(m.get('dataset'))}</h1>"
        f"<p class=\"muted\">{_e(folder.resolve())} · method {_e(m['method'])} · rate {_e(m['rate'])} "
        f"(fraction removed) · selected with topodata {_e((m.get('versions') or {}).get('topodata', '?'))}</p>"
        f'<div class="cards">{card_html}</div>'
        + "".join(f'<p class="muted">{_e(t)}</p>' for t in notes)
        + '<div class="row"><div><h2>Kept per class</h2>' + per_class + "</div>"
        + (f'<div class="plots"><h2>Where the kept samples sit</h2>{map_html}</div>' if map_html else "") + "</div>"
        + (f'<h2>Scores</h2><div class="plots">{hist_html}</div>' if hist_html else "")
        + "".join(sections)
        + "<h2>Time per stage (selection)</h2>" + timing_table
        + "<h2>Parameters</h2><pre>" + _e(json.dumps(params, indent=1, sort_keys=True)) + "</pre>"
        + ("<h2>Embedding</h2><pre>" + _e(json.dumps(m["embedding"], indent=1, sort_keys=True)) + "</pre>"
           if m.get("embedding") else "")
        + "<p class=\"muted\">report: " + ", ".join(f"{k} {v:.2f} s" for k, v in timings.items()) + "</p>"
        + "</body></html>\n"
    )
    from ._io import atomic_write_files

    t0 = time.perf_counter()
    path = atomic_write_files(folder, {REPORT_FILE: doc.encode("utf-8")})[0]
    timings["write"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    return path, timings
