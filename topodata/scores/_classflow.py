"""TopoPrune's local stage class by class: one piece of work per class, on the current engine.

With per-class neighbourhoods a sample's neighbourhood, its H0 diagram and the gradient that moves
it involve only samples of its class, so the classes are independent but for one number: the
learning rate, set from the first step's largest gradient and median H0 death over *all* classes.
The flow therefore runs in two rounds of per-class pieces (:func:`topodata._engine.map_tasks`):

1. per class: the kNN neighbourhoods on the manifold, the H0 diagrams and the first gradient;
2. (the driver sets the learning rate from every class's first round) per class: the steps.

Each class's rows keep their order, so the scatter-adds of the backward pass sum the same terms
in the same order as one pass over all samples: the result is the same as
:func:`topodata.scores.topoprune.topological_displacement` on the whole set (tested), and the same
in-process and under Ray. Memory is that of the largest class instead of the whole set.
"""

from __future__ import annotations

import numpy as np

from .. import _validation as V
from .._engine import map_tasks
from .._threads import deterministic

__all__ = ["class_flow", "check_class_sizes", "first_step", "next_steps"]


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
    classes = check_class_sizes(labels, k_local)
    members = [np.flatnonzero(labels == c) for c in classes]  # a loop over classes, not samples
    w = None if weights is None else np.asarray(weights, dtype=np.float32)
    t0 = time.perf_counter()
    first = map_tasks(first_step, [
        (z[m], int(k_local), knn_method, device, int(V.derive_seed(np.random.default_rng([knn_seed, int(c)]))),
         None if w is None else w[m], float(power))
        for c, m in zip(classes, members)
    ], desc="local topology per class")
    t_local = time.perf_counter() - t0

    t0 = time.perf_counter()
    deaths = np.empty((n, k_local), dtype=np.float32)
    neigh = np.empty((n, k_local + 1), dtype=np.int64)
    for m, (nb, d, _, _) in zip(members, first):
        neigh[m] = m[nb]
        deaths[m] = d
    gmax = max(g for *_, g in first)
    med = float(np.median(deaths))
    lr = step_size * med / gmax if gmax > 0 else 0.0
    moved = map_tasks(next_steps, [
        (z[m], nb, None if w is None else w[m], grad, float(lr), int(steps), float(power))
        for m, (nb, _, grad, _) in zip(members, first)
    ], desc="displacement per class")
    disp = np.empty(n, dtype=np.float64)
    for m, dm in zip(members, moved):
        disp[m] = dm
    return neigh, deaths, disp, {"local_topology": t_local, "displacement": time.perf_counter() - t0}


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
def first_step(z_c: np.ndarray, k_local: int, knn_method: str, device: str, seed: int,
               w_c: np.ndarray | None, power: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Round 1 for one class: ``(neighbourhoods in class rows, deaths, first gradient, its largest row norm)``."""
    import torch

    from ..neighbors import knn

    nb, _ = knn(z_c, k_local + 1, method=knn_method, device=device, random_state=seed)
    zt = torch.from_numpy(np.ascontiguousarray(z_c, dtype=np.float32))
    w = None if w_c is None else torch.from_numpy(w_c)
    grad, deaths = _gradient(zt, torch.from_numpy(nb), w, power)
    return nb, deaths.numpy(), grad.numpy(), float(grad.norm(dim=1).max())


@deterministic
def next_steps(z_c: np.ndarray, nb: np.ndarray, w_c: np.ndarray | None, grad0: np.ndarray, lr: float,
               steps: int, power: float) -> np.ndarray:
    """Round 2 for one class: the first step with ``grad0``, the remaining ``steps - 1``; the displacement."""
    import torch

    z0 = torch.from_numpy(np.ascontiguousarray(z_c, dtype=np.float32))
    nbt = torch.from_numpy(np.ascontiguousarray(nb, dtype=np.int64))
    w = None if w_c is None else torch.from_numpy(w_c)
    zt = (z0.clone() - lr * torch.from_numpy(grad0)).detach()
    for _ in range(int(steps) - 1):
        grad, _ = _gradient(zt, nbt, w, power)
        zt = (zt - lr * grad).detach()
    return (zt - z0).norm(dim=1).double().numpy()



def check_class_sizes(labels: np.ndarray, k_local: int) -> np.ndarray:
    """The classes of ``labels``; a one-line error when one is too small for per-class neighbourhoods."""
    classes, counts = np.unique(labels, return_counts=True)
    small = counts <= k_local
    if small.any():
        c, m = int(classes[small][0]), int(counts[small][0])
        raise V.TopodataInputError(
            f"class {c} has {m} samples but k_local={k_local} per-class neighbourhoods need at "
            f"least {k_local + 1}; lower --k-local, use --neighbourhoods global, or drop the class"
        )
    return classes
