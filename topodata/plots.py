"""Pictures of a selection: the manifold with the kept samples, and local persistence diagrams.

Both functions return PNG bytes (matplotlib's Agg backend, no display needed) so that the caller
can write them atomically next to ``indices.npy`` (``topodata select --plot``).
"""

from __future__ import annotations

import io
from typing import Any, Sequence

import numpy as np

from . import _validation as V

__all__ = ["plot_manifold", "plot_diagrams", "view_2d"]


def _figure(figsize: tuple[float, float]):
    """A figure bound to an Agg canvas: no pyplot, so no global backend switch or open windows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def view_2d(z: np.ndarray) -> np.ndarray:
    """A 2-D view of ``z``: itself if 2-D, else its two leading principal components (cheap, linear,
    so the picture does not invent structure the way a second non-linear embedding could)."""
    z = np.asarray(z, dtype=np.float64)
    if z.shape[1] == 1:
        return np.column_stack([z[:, 0], np.zeros(len(z))])
    if z.shape[1] == 2:
        return z
    zc = z - z.mean(axis=0)
    # right singular vectors of the centred data = principal axes; sign fixed for reproducibility
    _, _, vt = np.linalg.svd(zc, full_matrices=False)
    axes = vt[:2]
    axes *= np.sign(axes[np.arange(2), np.abs(axes).argmax(axis=1)])[:, None]
    return zc @ axes.T


def plot_manifold(manifold: Any, labels: Any, kept_indices: Any, *, title: str | None = None) -> bytes:
    """Scatter of the manifold coloured by class, kept samples drawn large with a dark edge.

    Parameters
    ----------
    manifold : array-like of shape (n_samples, d)
        Manifold coordinates (``SelectionResult.extras["manifold"]``); d > 2 is shown through its
        first two principal components.
    labels : array-like of shape (n_samples,)
    kept_indices : array-like of int
        Indices of the kept samples.
    title : str, optional

    Returns
    -------
    bytes
        A PNG image.
    """
    z = V.check_features(manifold, name="manifold")
    y = V.check_labels(labels, n_samples=z.shape[0])
    kept = np.asarray(kept_indices, dtype=np.int64).ravel()
    if kept.size and (kept.min() < 0 or kept.max() >= z.shape[0]):
        raise V.TopodataInputError(
            f"kept_indices range [{kept.min()}, {kept.max()}] does not fit {z.shape[0]} samples"
        )
    xy = view_2d(z)
    mask = np.zeros(z.shape[0], dtype=bool)
    mask[kept] = True
    fig = _figure((7.0, 6.0))
    ax = fig.add_subplot()
    classes = np.unique(y)
    from matplotlib import colormaps

    cmap = colormaps["tab10" if classes.size <= 10 else "tab20"]
    colours = cmap(np.searchsorted(classes, y) % cmap.N)
    ax.scatter(xy[~mask, 0], xy[~mask, 1], c=colours[~mask], s=3, alpha=0.25, linewidths=0)
    ax.scatter(xy[mask, 0], xy[mask, 1], c=colours[mask], s=16, edgecolors="black", linewidths=0.4)
    for c in classes[:20]:  # legend handles only; one per class
        ax.scatter([], [], color=cmap(int(np.searchsorted(classes, c)) % cmap.N), s=16, label=str(c))
    ax.legend(title="class", fontsize=7, markerscale=1.0, loc="best", frameon=False)
    view = "" if z.shape[1] <= 2 else f" (first 2 principal components of {z.shape[1]}-d)"
    ax.set_title(title or f"manifold{view}: {mask.sum()} kept of {z.shape[0]} (large dots)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return _png(fig)


def plot_diagrams(diagrams: Sequence[dict[str, Any]], *, title: str | None = None) -> bytes:
    """Persistence diagrams of a few local neighbourhoods side by side (H0 and H1).

    Parameters
    ----------
    diagrams : sequence of dict
        As ``SelectionResult.extras["neighbourhoods"]``: each with ``h0`` (deaths, births are 0),
        ``h1`` ((m, 2) birth/death pairs), and optionally ``center`` and ``score`` for the title.

    Returns
    -------
    bytes
        A PNG image.
    """
    if not isinstance(diagrams, Sequence) or len(diagrams) == 0:
        raise V.TopodataInputError("diagrams must be a non-empty list of dicts with 'h0' and 'h1'")
    for i, d in enumerate(diagrams):
        if not isinstance(d, dict) or "h0" not in d:
            raise V.TopodataInputError(f"diagrams[{i}] must be a dict with an 'h0' array of deaths")
    n = len(diagrams)
    fig = _figure((3.0 * n, 3.2))
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, d in zip(axes, diagrams):
        h0 = np.asarray(d["h0"], dtype=np.float64).ravel()
        h1 = np.asarray(d.get("h1", np.zeros((0, 2))), dtype=np.float64).reshape(-1, 2)
        top = max(h0.max(initial=0.0), h1.max(initial=0.0)) * 1.08 or 1.0
        ax.plot([0, top], [0, top], color="grey", lw=0.8)
        ax.scatter(np.zeros_like(h0), h0, s=12, label="H0")
        if h1.size:
            ax.scatter(h1[:, 0], h1[:, 1], s=14, marker="^", label="H1")
        ax.set_xlim(-0.03 * top, top)
        ax.set_ylim(-0.03 * top, top)
        ax.set_xlabel("birth", fontsize=8)
        ax.set_ylabel("death", fontsize=8)
        ax.tick_params(labelsize=7)
        head = f"sample {d['center']}" if "center" in d else "neighbourhood"
        if "score" in d:
            head += f", score {d['score']:.3g}"
        ax.set_title(head, fontsize=8)
        ax.legend(fontsize=7, frameon=False, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=9)
    return _png(fig)
