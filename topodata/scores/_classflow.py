"""TopoPrune's local stage class by class: one piece of work per class, on the current engine.

With per-class neighbourhoods a sample's neighbourhood, its H0 diagram and the gradient that moves
it involve only samples of its class, so the classes are independent but for one number: the
learning rate, set from the first step's largest gradient and median H0 death over *all* classes.
The flow therefore runs in two rounds of pieces (:func:`topodata._engine.map_tasks`), a piece being
one class or several small ones (:func:`class_pieces`):

1. per piece: the kNN neighbourhoods on the manifold (class by class), the H0 diagrams and the
   first gradient;
2. (the driver sets the learning rate from every piece's first round) per piece: the steps.

Each class's rows keep their order, so the scatter-adds of the backward pass sum the same terms
in the same order as one pass over all samples: with one thread the result is that of
:func:`topodata.scores.topoprune.topological_displacement` on the whole set (tested; with more
threads the scatter-add splits its work by the size of the piece, and a displacement may differ
in its last float bit), and it is the same in-process and under Ray. Memory is that of the largest class instead of the whole set.
"""

from __future__ import annotations

import numpy as np

from .. import _validation as V
from .._engine import map_tasks
from .._threads import deterministic

__all__ = ["class_flow", "class_pieces", "class_neighbourhoods", "median_death", "first_step", "next_steps",
           "GROUP_BELOW", "PIECE_ROWS"]


def class_flow(
    z: np.ndarray,
    labels: np.ndarray,
    *,
    k_local: int,
    steps: int,
    step_size: float,
    power: float,
    weights: np.ndarray | None,
    knn_method: str,
    device: str,
    knn_seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, float]]:
    """``(neighbourhoods, first-step H0 deaths, displacement, timings)`` over all samples.

    ``neighbourhoods`` (n, k_local + 1) int64 as :func:`~topodata.scores.topoprune.local_neighbourhoods`
    returns them (column 0 the sample), ``deaths`` (n, k_local) float32 at ``Z(0)``, the
    displacement (n,) float64; ``timings`` = seconds of ``local_topology`` (round 1) and
    ``displacement`` (round 2).
    """
    import time

    z = V.as_float32(z)
    n = z.shape[0]
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == c) for c in classes]  # a loop over classes, not samples
    seeds = [int(V.derive_seed(np.random.default_rng([knn_seed, int(c)]))) for c in classes]
    pieces = class_pieces([m.size for m in members])
    rows = [np.concatenate([members[i] for i in p]) for p in pieces]
    w = None if weights is None else np.asarray(weights, dtype=np.float32)
    t0 = time.perf_counter()
    first = map_tasks(first_step, [
        (z[r], [members[i].size for i in p], int(k_local), knn_method, device, [seeds[i] for i in p],
         None if w is None else w[r], float(power))
        for p, r in zip(pieces, rows)
    ], desc="local topology per class")
    t_local = time.perf_counter() - t0

    t0 = time.perf_counter()
    deaths = np.empty((n, k_local), dtype=np.float32)
    neigh = np.empty((n, k_local + 1), dtype=np.int64)
    for r, (nb, d, _, _) in zip(rows, first):
        neigh[r] = r[nb]
        deaths[r] = d
    gmax = max(g for *_, g in first)
    med = median_death(deaths, neigh)
    lr = step_size * med / gmax if gmax > 0 else 0.0
    moved = map_tasks(next_steps, [
        (z[r], nb, None if w is None else w[r], grad, float(lr), int(steps), float(power))
        for r, (nb, _, grad, _) in zip(rows, first)
    ], desc="displacement per class")
    disp = np.empty(n, dtype=np.float64)
    for r, dm in zip(rows, moved):
        disp[r] = dm
    return neigh, deaths, disp, {"local_topology": t_local, "displacement": time.perf_counter() - t0}


#: Classes of fewer than :data:`GROUP_BELOW` rows are grouped, in label order, into pieces of at
#: most :data:`PIECE_ROWS` rows (one task each); a larger class is a piece of its own. A piece has
#: a fixed cost of about 10 ms (FAISS index, autograd calls), which dominated sets of many small
#: classes: the flow over 20,000 rows took 12.5 s as 1,000 classes of 20 against 2.4 s as 10
#: classes of 2,000. A class of 512 rows already does ~60 ms of work.
GROUP_BELOW = 512
PIECE_ROWS = 4096


def class_pieces(sizes: list[int]) -> list[list[int]]:
    """Class positions grouped into pieces: consecutive classes of fewer than :data:`GROUP_BELOW`
    rows together, up to :data:`PIECE_ROWS` rows; any other class alone.

    Neighbourhoods never cross classes, so a piece computes what its classes would one by one; with
    one thread bit for bit (tested), with more the backward scatter-add splits its work by the
    piece's size and a displacement may differ in its last float bit (still the same for a given
    thread count, in-process and under Ray).

    >>> class_pieces([3000, 100, 300, 200, 6000, 10, 10])
    [[0], [1, 2, 3], [4], [5, 6]]
    """
    pieces: list[list[int]] = []
    rows = 0
    for i, size in enumerate(sizes):
        small = size < GROUP_BELOW
        if small and pieces and sizes[pieces[-1][-1]] < GROUP_BELOW and rows + size <= PIECE_ROWS:
            pieces[-1].append(i)
            rows += size
        else:
            pieces.append([i])
            rows = size
    return pieces


def _gradient(zt, nb, w, power: float):
    """``(grad, deaths)`` of the weighted summed total persistence at ``zt`` (as the flow computes it)."""
    import torch

    from ..topology import h0_point_cloud

    zt = zt.detach().requires_grad_(True)
    deaths = h0_point_cloud(zt[nb]).deaths  # gradient flows through the critical edges
    per = (deaths**power).sum(dim=1)
    loss = (per * w).sum() if w is not None else per.sum()
    (grad,) = torch.autograd.grad(loss, zt)
    return grad, deaths.detach()


@deterministic
def first_step(z_p: np.ndarray, sizes: list[int], k_local: int, knn_method: str, device: str, seeds: list[int],
               w_p: np.ndarray | None, power: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Round 1 for one piece (its classes' rows one after the other, ``sizes`` rows each): ``(neighbourhoods
    in piece rows, deaths, first gradient, its largest row norm)``."""
    import torch

    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    nb = np.concatenate([
        start + class_neighbourhoods(z_p[start:start + size], k_local, knn_method=knn_method, device=device,
                                     random_state=seed)
        for start, size, seed in zip(starts.tolist(), sizes, seeds)  # a loop over classes
    ])
    zt = torch.from_numpy(np.ascontiguousarray(z_p, dtype=np.float32))
    w = None if w_p is None else torch.from_numpy(w_p)
    grad, deaths = _gradient(zt, torch.from_numpy(nb), w, power)
    return nb, deaths.numpy(), grad.numpy(), float(grad.norm(dim=1).max())


@deterministic
def next_steps(z_c: np.ndarray, nb: np.ndarray, w_c: np.ndarray | None, grad0: np.ndarray, lr: float,
               steps: int, power: float) -> np.ndarray:
    """Round 2 for one piece: the first step with ``grad0``, the remaining ``steps - 1``; the displacement."""
    import torch

    z0 = torch.from_numpy(np.ascontiguousarray(z_c, dtype=np.float32))
    nbt = torch.from_numpy(np.ascontiguousarray(nb, dtype=np.int64))
    w = None if w_c is None else torch.from_numpy(w_c)
    zt = (z0.clone() - lr * torch.from_numpy(grad0)).detach()
    for _ in range(int(steps) - 1):
        grad, _ = _gradient(zt, nbt, w, power)
        zt = (zt - lr * grad).detach()
    return (zt - z0).norm(dim=1).double().numpy()


def class_neighbourhoods(z_c: np.ndarray, k_local: int, *, knn_method: str = "auto", device: str = "auto",
                         random_state=None) -> np.ndarray:
    """Neighbourhoods ``{i} ∪ N_k(i)`` inside one class, (m, k_local + 1) int64 in class rows.

    A class of at most ``k_local`` samples (a rare class of an imbalanced set) has fewer neighbours
    to give: each sample's neighbourhood is then the whole class, padded with copies of the sample
    itself. A copy adds a zero-length H0 edge, which adds nothing to the total persistence nor to
    its gradient, so the batched H0 and the flow keep one shape for every class; a lone sample's
    neighbourhood is itself only (displacement 0).
    """
    from ..neighbors import knn

    m = z_c.shape[0]
    if m > k_local:
        return knn(z_c, k_local + 1, method=knn_method, device=device, random_state=random_state)[0]
    nb = np.repeat(np.arange(m, dtype=np.int64)[:, None], k_local + 1, axis=1)
    if m > 1:  # the whole class, by distance, after the pads: deaths ascend, so the pads lead
        own, _ = knn(z_c, m, method="exact", device=device)
        nb[:, k_local + 1 - m:] = own
    return nb


def median_death(deaths: np.ndarray, neigh: np.ndarray) -> float:
    """The median H0 death of the neighbourhoods (the flow's step scale), over their real edges.

    The pads of a small class (:func:`class_neighbourhoods`: columns after the first that repeat
    column 0) add zero deaths, which lead their row (deaths ascend); they are left out, so a rare
    class does not shrink every class's step.
    """
    pads = (neigh[:, 1:] == neigh[:, :1]).sum(axis=1)
    if not pads.any():
        return float(np.median(deaths))
    real = deaths[np.arange(deaths.shape[1])[None, :] >= pads[:, None]]
    return float(np.median(real)) if real.size else 0.0
