"""Tables and plots from ``results.csv``: accuracy vs rate, gap recovered, noise, transfer.

Every number is recomputed from the CSV, so the report of an interrupted run shows what is done
(a cell with fewer seeds than the pipeline lists is marked ``(k/n)``). Accuracy is the test
accuracy in percent, mean ± sample standard deviation (ddof=1) over seeds.
"""

from __future__ import annotations

import io
import math
from typing import Any, Callable

import numpy as np

from .pipeline import FULL, PROBE, Pipeline, ignores_embedding

__all__ = [
    "gap_recovered",
    "summarize",
    "markdown_report",
    "plot_accuracy_vs_rate",
    "plot_noise",
    "plot_transfer",
    "report_files",
]

Row = dict[str, Any]


def gap_recovered(acc: float, acc_random: float, acc_full: float) -> float:
    """Fraction of the Random → full-data gap that a method recovers.

    ``(acc - acc_random) / (acc_full - acc_random)``: 0 means no better than a random subset of the
    same size, 1 means as good as training on everything, negative means worse than random. NaN
    when any input is missing or random already matches the full data (no gap to recover), where
    the ratio would only amplify seed noise.

    Examples
    --------
    >>> gap_recovered(0.85, 0.80, 0.90)
    0.5
    """
    vals = (acc, acc_random, acc_full)
    if any(v is None or not math.isfinite(v) for v in vals) or acc_full - acc_random <= 0:
        return float("nan")
    return round((acc - acc_random) / (acc_full - acc_random), 12)


def summarize(rows: list[Row], key: Callable[[Row], Any], value: str = "accuracy") -> dict[Any, tuple]:
    """Group ``rows`` by ``key(row)`` (rows whose key is None are skipped): ``{key: (mean, std, n)}``."""
    groups: dict[Any, list[float]] = {}
    for r in rows:
        k = key(r)
        if k is not None and r.get(value) is not None:
            groups.setdefault(k, []).append(float(r[value]))
    out = {}
    for k, vals in groups.items():
        a = np.asarray(vals)
        out[k] = (float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0, int(a.size))
    return out


def _full_embedder(p: Pipeline, trainer: str) -> str:
    return p.embedder.model if trainer == PROBE else "none"


def _main_key(p: Pipeline):
    e0, t0 = p.embedder.model, p.trainer.model

    def key(r: Row):
        if r["trainer"] != t0:
            return None
        if r["method"] == FULL:
            return (FULL, 0.0) if r["embedder"] == _full_embedder(p, t0) else None
        if r["embedder"] == e0 and not r["noise"]:
            return (r["method"], r["rate"])
        return None

    return key


def _fmt(stat: tuple | None, n_seeds: int, *, pct: bool = True) -> str:
    if stat is None:
        return "–"
    m, s, n = stat
    f = 100.0 if pct else 1.0
    d = 2 if pct else 3
    txt = f"{f * m:.{d}f}" + (f" ± {f * s:.{d}f}" if n > 1 else "")
    return txt + (f" ({n}/{n_seeds})" if n != n_seeds else "")


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return lines + [""]


def _protocol_text(p: Pipeline, trainer: str | None = None) -> str:
    t = p.trainer
    name = trainer or t.model
    e = p.embedder
    emb = f"embedder **{e.model}** (proxy trained on {100 * e.proxy_fraction:.3g}% of the training split, seed {e.seed})"
    if name == PROBE:
        how = ("trainer **probe**: logistic regression on the embedder's frozen features — a quick look, "
               "not a network trained on the subset")
    else:
        how = (f"trainer **{name}**: {t.steps} SGD steps (Nesterov momentum, one-cycle schedule, peak lr "
               f"{t.lr:g}), batch {t.batch_size}, standard augmentation — the same step budget for every "
               f"subset size")
    return f"{how}; {emb}; dataset `{p.dataset}`; seeds {list(p.seeds)}."


def markdown_report(rows: list[Row], pipeline: Pipeline) -> str:
    """The ``results.md`` text: main table, gap recovered, and the noise / transfer sections."""
    p = pipeline
    ns = len(p.seeds)
    out = [f"# {p.name}", ""]
    if p.description:
        out += [p.description.strip(), ""]
    out += [_protocol_text(p), ""]
    main = summarize(rows, _main_key(p))
    methods = [m for m in p.methods if any((m, r) in main for r in p.rates)]
    full = main.get((FULL, 0.0))
    rate_hdr = [f"rate {r:g} ({100 * (1 - r):.3g}% kept)" for r in p.rates]

    out += ["## Test accuracy (%)", "",
            f"Mean ± std over seeds; `(k/{ns})` marks cells with fewer seeds done so far.", ""]
    body = [[m] + [_fmt(main.get((m, r)), ns) for r in p.rates] for m in methods]
    if full is not None:
        body.append(["full data (all kept)"] + [_fmt(full, ns)] * len(p.rates))
    out += _table(["method"] + rate_hdr, body)

    if "random" in methods and full is not None:
        out += ["## Fraction of the Random → full-data gap recovered", "",
                "(acc − acc_random) / (acc_full − acc_random) on the means over seeds: 0 = as good as "
                "a random subset of the same size, 1 = as good as the full data.", ""]
        body = []
        for m in methods:
            cells = []
            for r in p.rates:
                a, ar = main.get((m, r)), main.get(("random", r))
                g = gap_recovered(a[0] if a else None, ar[0] if ar else None, full[0])
                cells.append("–" if math.isnan(g) else f"{g:.2f}")
            body.append([m] + cells)
        out += _table(["method"] + rate_hdr, body)

    if p.noise:
        out += _noise_section(rows, p)
    if p.transfer:
        out += _transfer_section(rows, p)
    return "\n".join(out).rstrip() + "\n"


def _noise_stats(rows: list[Row], p: Pipeline, value: str) -> dict:
    e0, t0 = p.embedder.model, p.trainer.model
    return summarize(
        rows,
        lambda r: (r["method"], r["rate"], r["noise"] or 0.0)
        if r["embedder"] == e0 and r["trainer"] == t0 and r["method"] != FULL else None,
        value,
    )


def _noise_section(rows: list[Row], p: Pipeline) -> list[str]:
    ns = len(p.seeds)
    acc, jac = _noise_stats(rows, p, "accuracy"), _noise_stats(rows, p, "jaccard")
    scales = p.noise.scales
    out = ["## Robustness to noise on the embedding", "",
           "Gaussian noise with σ = scale × (mean per-dimension std of the features) is added to the "
           "embedder's features before selection (training dynamics, used by el2n/forgetting/aum/ccs, "
           "stay clean). Jaccard = |noisy ∩ clean| / |noisy ∪ clean| of the kept indices, same seed.", ""]
    for rate in p.rates:
        methods = [m for m in p.noise.methods if any((m, rate, s) in acc for s in (0.0, *scales))]
        if not methods:
            continue
        out += [f"### Rate {rate:g}: Jaccard overlap with the clean selection", ""]
        # a method that ignores the embedding has no noisy cells: its selection cannot change
        same = {m: ignores_embedding(m) for m in methods}
        out += _table(["method"] + [f"scale {s:g}" for s in scales],
                      [[m] + ["1 (ignores features)" if same[m] else _fmt(jac.get((m, rate, s)), ns, pct=False)
                              for s in scales] for m in methods])
        out += [f"### Rate {rate:g}: test accuracy (%) under noise", ""]
        out += _table(["method", "clean"] + [f"scale {s:g}" for s in scales],
                      [[m, _fmt(acc.get((m, rate, 0.0)), ns)]
                       + ["= clean" if same[m] else _fmt(acc.get((m, rate, s)), ns) for s in scales]
                       for m in methods])
    return out


def _transfer_stats(rows: list[Row], p: Pipeline) -> dict:
    return summarize(
        rows, lambda r: None if r["noise"] else (r["method"], r["rate"], r["embedder"], r["trainer"])
    )


def _transfer_matrix(stats: dict, p: Pipeline, method: str, rate: float) -> tuple[list[str], np.ndarray]:
    """Rows (embedders, or one row for a selection that ignores the embedding), (mean, std, n) grid."""
    tf = p.transfer
    e0 = p.embedder.model
    blind = ignores_embedding(method)
    # such a method selects the same subset from any embedder: one row, unless a probe (which reads
    # each embedder's features) makes the rows differ
    labels = ["any embedder"] if blind and PROBE not in tf.trainers else list(tf.embedders)
    grid = np.full((len(labels), len(tf.trainers), 3), np.nan)
    for i, e in enumerate(labels):
        for j, t in enumerate(tf.trainers):
            s = stats.get((method, rate, e0 if blind and t != PROBE else e, t))
            if s:
                grid[i, j] = s
    return labels, grid


def _transfer_section(rows: list[Row], p: Pipeline) -> list[str]:
    ns = len(p.seeds)
    tf = p.transfer
    stats = _transfer_stats(rows, p)
    out = ["## Transfer: selection from embedder A, trained model B", "",
           "Test accuracy (%) of model B (columns) trained on the subset chosen on embedder A's "
           "features (rows). A method that ignores the embedding (random) has one row (or equal rows). "
           "The full-data row of a probe column uses the default embedder's features.", ""]
    full = [stats.get((FULL, 0.0, _full_embedder(p, t), t)) for t in tf.trainers]
    for rate in p.rates:
        for m in tf.methods:
            labels, grid = _transfer_matrix(stats, p, m, rate)
            if np.isnan(grid[..., 0]).all():
                continue
            out += [f"### {m}, rate {rate:g}", ""]
            body = [[f"A = {lab}"] + [_fmt(None if np.isnan(c[0]) else (c[0], c[1], int(c[2])), ns) for c in grid[i]]
                    for i, lab in enumerate(labels)]
            body.append(["full data"] + [_fmt(f, ns) for f in full])
            out += _table(["embedder ↓ / trained →"] + [f"B = {t}" for t in tf.trainers], body)
    return out


# ---------------------------------------------------------------------------------------------
# plots (matplotlib's object API: no pyplot state, safe in threads and tests)


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=110, layout="constrained")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_accuracy_vs_rate(rows: list[Row], pipeline: Pipeline) -> bytes | None:
    """PNG: test accuracy against the pruning rate, one line per method, full data as a band."""
    p = pipeline
    main = summarize(rows, _main_key(p))
    methods = [m for m in p.methods if any((m, r) in main for r in p.rates)]
    if not methods:
        return None
    fig = _figure(6.4, 4.2)
    ax = fig.add_subplot()
    for m in methods:
        rs = [r for r in p.rates if (m, r) in main]
        mean = [100 * main[(m, r)][0] for r in rs]
        std = [100 * main[(m, r)][1] for r in rs]
        style = dict(color="black", linestyle="--") if m == "random" else {}
        ax.errorbar(rs, mean, yerr=std, marker="o", capsize=3, label=m, **style)
    full = main.get((FULL, 0.0))
    if full:
        ax.axhline(100 * full[0], color="grey", linewidth=1, label="full data")
        ax.axhspan(100 * (full[0] - full[1]), 100 * (full[0] + full[1]), color="grey", alpha=0.15)
    ax.set_xlabel("pruning rate (fraction of the training set removed)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{p.name}: {p.dataset}, trainer {p.trainer.model}, mean ± std over seeds", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def plot_noise(rows: list[Row], pipeline: Pipeline) -> bytes | None:
    """PNG: per rate, Jaccard with the clean selection and accuracy against the noise scale."""
    p = pipeline
    if not p.noise:
        return None
    acc, jac = _noise_stats(rows, p, "accuracy"), _noise_stats(rows, p, "jaccard")
    rates = [r for r in p.rates if any(k[1] == r for k in acc)]
    if not rates:
        return None
    fig = _figure(9.0, 3.4 * len(rates))
    axes = fig.subplots(len(rates), 2, squeeze=False)
    scales = (0.0, *p.noise.scales)
    for i, rate in enumerate(rates):
        for m in p.noise.methods:
            if ignores_embedding(m):  # no noisy cells: its selection and accuracy equal the clean ones
                if (m, rate, 0.0) in acc:
                    a = acc[(m, rate, 0.0)]
                    axes[i, 0].plot(scales, [1.0] * len(scales), "k--", label=m)
                    axes[i, 1].errorbar(scales, [100 * a[0]] * len(scales), yerr=[100 * a[1]] * len(scales),
                                        fmt="k--", capsize=3, label=m)
                continue
            xs = [s for s in scales if (m, rate, s) in acc]
            if not xs:
                continue
            # the clean selection overlaps itself perfectly
            js = [1.0 if s == 0 else jac.get((m, rate, s), (np.nan,))[0] for s in xs]
            axes[i, 0].plot(xs, js, marker="o", label=m)
            axes[i, 1].errorbar(xs, [100 * acc[(m, rate, s)][0] for s in xs],
                                yerr=[100 * acc[(m, rate, s)][1] for s in xs], marker="o", capsize=3, label=m)
        axes[i, 0].set_ylabel(f"rate {rate:g}: Jaccard with clean")
        axes[i, 1].set_ylabel("test accuracy (%)")
        for ax in axes[i]:
            ax.set_xlabel("noise scale (σ / mean feature std)")
            ax.grid(alpha=0.3)
    axes[0, 1].legend(fontsize=8)
    fig.suptitle(f"{p.name}: selection under Gaussian noise on the embedding", fontsize=10)
    return _png(fig)


def plot_transfer(rows: list[Row], pipeline: Pipeline) -> bytes | None:
    """PNG: per rate and method, a heat-map of accuracy (embedder A rows × trained model B columns)."""
    p = pipeline
    if not p.transfer:
        return None
    stats = _transfer_stats(rows, p)
    panels = []
    for rate in p.rates:
        for m in p.transfer.methods:
            labels, grid = _transfer_matrix(stats, p, m, rate)
            if not np.isnan(grid[..., 0]).all():
                panels.append((rate, m, labels, 100 * grid[..., 0]))
    if not panels:
        return None
    vals = np.concatenate([g.ravel() for *_, g in panels])
    lo, hi = np.nanmin(vals), np.nanmax(vals)
    ncol = min(4, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig = _figure(3.3 * ncol, 2.9 * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, squeeze=False)).ravel()
    im = None
    for ax, (rate, m, labels, g) in zip(axes, panels):
        im = ax.imshow(g, vmin=lo, vmax=hi, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(p.transfer.trainers)), p.transfer.trainers, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(f"{m}, rate {rate:g}", fontsize=9)
        for (i, j), v in np.ndenumerate(g):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7,
                        color="white" if v < (lo + hi) / 2 else "black")
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    fig.supxlabel("trained model B", fontsize=9)
    fig.supylabel("embedder A", fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=list(axes[: len(panels)]), label="test accuracy (%)", shrink=0.8)
    return _png(fig)


def report_files(rows: list[Row], pipeline: Pipeline) -> dict[str, bytes]:
    """``{file name: bytes}`` of the report: ``results.md`` and whichever plots have data."""
    files = {"results.md": markdown_report(rows, pipeline).encode()}
    for name, fn in (("accuracy_vs_rate.png", plot_accuracy_vs_rate), ("noise.png", plot_noise),
                     ("transfer.png", plot_transfer)):
        png = fn(rows, pipeline)
        if png is not None:
            files[name] = png
    return files
