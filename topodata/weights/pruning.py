"""Iterative magnitude pruning with weight rewinding (IMP) and its topological variant (T-IMP).

IMP (Frankle & Carbin 2019; rewinding as in Frankle et al. 2020): train the dense network, prune
a fraction of the *remaining* weights by magnitude, rewind the survivors to their values after
``rewind_step`` optimiser steps of the first training (0 = the initialisation), retrain, repeat.
``rounds`` rounds reach ``target_sparsity`` exactly: after round ``r`` the sparsity is
``s_r = 1 - (1 - target)^(r / rounds)`` (the same fraction of the remaining weights each round)
and round ``rounds`` uses ``target`` itself.

T-IMP (Balwani & Krzyston 2022): the same loop, but each round first keeps every weight on each
layer's maximum spanning tree (of the trained, already pruned weights; see
:mod:`topodata.weights.graphs`), then fills the rest of the budget by magnitude. If a budget is
smaller than the tree, the tree's largest weights are kept.

Magnitude threshold: ``scope="global"`` (default) ranks all prunable weights of the network
together, so the kept set is ``{|w| >= t}`` for one threshold ``t`` and the *network* keeps exactly
``N - floor(s * N)`` weights (``N`` = all prunable weights); layers with small weights lose more.
``scope="layer"`` ranks each layer on its own, with one threshold per layer, and every layer keeps
exactly ``n_l - floor(s * n_l)``, so the network sparsity differs from ``s`` by less than
``n_layers / N``. Ties in ``|w|`` are broken by position (stable sort), so masks are deterministic.
Only the ``weight`` of ``nn.Linear`` / ``nn.Conv*`` layers is pruned; biases and batch norms stay
dense. Masks are applied with ``torch.nn.utils.prune.custom_from_mask``, so a pruned model keeps
``weight_orig`` and ``weight_mask`` in its state dict and works with the rest of torch's tools.

Deviation from Frankle et al. 2020: ``topodata.nn.fit`` has no "start at step K" option, so
each retraining runs the full training again from the rewound weights (a new optimiser and a
fresh learning-rate schedule) instead of the remaining ``T - K`` steps.
"""

from __future__ import annotations

import io
import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .. import _validation as V
from .._meta import n_kept
from .compression import spanning_tree_retention
from .graphs import CONV_GRAPHS, effective_weight, model_graphs, model_trees, prunable_layers, tree_overlap
from .persistence import NORMALIZATIONS, check_p, graphs_persistence

# torch, the training loop and matplotlib are imported on use (start-up time of `import topodata.weights`).

__all__ = [
    "MODES",
    "SCOPES",
    "sparsity_schedule",
    "pruning_masks",
    "spanning_tree_weights",
    "next_masks",
    "apply_masks",
    "prune_step",
    "WeightSnapshot",
    "rewind",
    "PruningRun",
    "iterative_pruning",
]

MODES = ("imp", "timp")
SCOPES = ("global", "layer")


def _check_sparsity(value: Any, name: str, *, allow_zero: bool) -> float:
    V.check_scalar(value, name, numbers.Real, min_val=0, max_val=1, include_min=allow_zero,
                   include_max=False)
    return float(value)


def sparsity_schedule(target_sparsity: float, rounds: int) -> np.ndarray:
    """Sparsity after each of ``rounds`` rounds; the last entry is ``target_sparsity`` exactly.

    Every round removes the same fraction ``1 - (1 - target)^(1 / rounds)`` of the remaining
    weights, as in iterative magnitude pruning.

    >>> sparsity_schedule(0.75, 2).tolist()
    [0.5, 0.75]
    """
    target = _check_sparsity(target_sparsity, "target_sparsity", allow_zero=False)
    V.check_scalar(rounds, "rounds", numbers.Integral, min_val=1)
    r = np.arange(1, int(rounds) + 1)
    out = 1.0 - (1.0 - target) ** (r / int(rounds))
    out[-1] = target
    return out


def pruning_masks(
    weights: Sequence[Any],
    *,
    sparsity: float,
    masks: Sequence[Any] | None = None,
    keep: Sequence[Any] | None = None,
    scope: str = "global",
) -> list[Any]:
    """Magnitude-pruning masks at a given sparsity, optionally protecting some weights first.

    Parameters
    ----------
    weights : sequence of torch.Tensor
        One tensor per prunable layer (any shape).
    sparsity : float in [0, 1)
        Fraction of *all* the layers' weights to have pruned after this step (not a fraction of
        the remaining ones); see the module docstring for the exact counts per ``scope``.
    masks : sequence of bool tensors, optional
        Current masks; pruned weights stay pruned. Default: nothing pruned yet.
    keep : sequence of bool tensors, optional
        Weights kept before any other (T-IMP passes the spanning-tree weights). If they exceed the
        budget, the largest of them are kept.
    scope : {'global', 'layer'}, default='global'
        One magnitude threshold for all layers, or one per layer.

    Returns
    -------
    list of torch.BoolTensor
        New masks, each of its weight's shape, contained in ``masks``.

    Raises
    ------
    TopodataInputError
        If the sparsity asks for more weights than the current masks hold, or shapes differ.

    Examples
    --------
    >>> import torch
    >>> w = torch.tensor([[0.1, -0.4], [0.3, 0.2]])
    >>> pruning_masks([w], sparsity=0.5)[0].tolist()
    [[False, True], [True, False]]
    """
    import torch

    V.check_options(scope, "scope", SCOPES)
    sparsity = _check_sparsity(sparsity, "sparsity", allow_zero=True)
    flat = [torch.as_tensor(w).detach().abs().reshape(-1).to(torch.float64).cpu() for w in weights]
    if not flat:
        raise V.TopodataInputError("weights is empty; pass one tensor per prunable layer")
    alive = _flat_bools(masks, flat, "masks", default=True)
    forced = _flat_bools(keep, flat, "keep", default=False)
    # Score: |w| for live weights, -1 for pruned ones (never chosen), protected ones lifted above
    # every live weight so that they are taken first and ranked among themselves by |w|.
    top = max(float(f.max()) if f.numel() else 0.0 for f in flat)
    scores = [torch.where(a, f + (1.0 + top) * (k & a).double(), torch.full_like(f, -1.0))
              for f, a, k in zip(flat, alive, forced)]
    sizes = [f.numel() for f in flat]
    groups = [list(range(len(flat)))] if scope == "global" else [[i] for i in range(len(flat))]
    out = [torch.zeros(n, dtype=torch.bool) for n in sizes]
    for group in groups:
        s = torch.cat([scores[i] for i in group])
        k = n_kept(int(s.numel()), sparsity)  # the rounding of ``topodata select``
        n_alive = int(sum(int(alive[i].sum()) for i in group))
        if k > n_alive:
            what = "the network" if scope == "global" else f"layer {group[0]}"
            raise V.TopodataInputError(
                f"sparsity={sparsity} keeps {k} weights of {what} but only {n_alive} are left "
                "unpruned; pruning never grows a mask, so ask for a higher sparsity"
            )
        chosen = torch.zeros(s.numel(), dtype=torch.bool)
        chosen[torch.argsort(s, descending=True, stable=True)[:k]] = True
        for i, part in zip(group, torch.split(chosen, [sizes[i] for i in group])):
            out[i] = part
    return [m.reshape(torch.as_tensor(w).shape) for m, w in zip(out, weights)]


def _flat_bools(values: Sequence[Any] | None, like: list, name: str, *, default: bool) -> list:
    import torch

    if values is None:
        return [torch.full((f.numel(),), default, dtype=torch.bool) for f in like]
    if len(values) != len(like):
        raise V.TopodataInputError(f"{name} has {len(values)} entries but weights has {len(like)}")
    out = []
    for i, (v, f) in enumerate(zip(values, like)):
        t = torch.as_tensor(v).detach().reshape(-1).cpu().bool()
        if t.numel() != f.numel():
            raise V.TopodataInputError(
                f"{name}[{i}] has {t.numel()} entries but weights[{i}] has {f.numel()}; "
                "each must have its weight's shape"
            )
        out.append(t)
    return out


def spanning_tree_weights(
    model: Any, *, conv: str = "aggregate", trees: dict[str, np.ndarray] | None = None
) -> dict[str, Any]:
    """Boolean mask per prunable layer of the weights on its maximum spanning tree.

    The tree is that of the layer graph on the *effective* weights (pruned = 0); for a conv
    layer under ``conv='aggregate'`` each tree edge is the strongest tap of its kernel.
    ``trees``: the trees' weight indices if already computed (:func:`model_trees`).
    """
    import torch

    trees = model_trees(model, conv=conv) if trees is None else trees
    out = {}
    for name, module in prunable_layers(model):
        shape = module.weight_orig.shape if hasattr(module, "weight_orig") else module.weight.shape
        m = torch.zeros(math.prod(shape), dtype=torch.bool)
        m[torch.from_numpy(trees[name])] = True
        out[name] = m.reshape(shape)
    return out


def next_masks(
    model: Any, *, sparsity: float, mode: str = "imp", scope: str = "global", conv: str = "aggregate",
    trees: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The masks one IMP / T-IMP step would install, computed from the current effective weights.

    See :func:`pruning_masks`; with ``mode='timp'`` the weights of each layer's maximum spanning
    tree (:func:`spanning_tree_weights`; from ``trees`` when given) are kept first. The model is
    not changed.

    Returns
    -------
    dict of name -> torch.BoolTensor
    """
    import torch

    V.check_options(mode, "mode", MODES)
    V.check_options(conv, "conv", CONV_GRAPHS)
    layers = prunable_layers(model)
    weights = [effective_weight(m) for _, m in layers]
    masks = [getattr(m, "weight_mask", None) for _, m in layers]
    current = None if all(m is None for m in masks) else [
        torch.ones_like(w, dtype=torch.bool) if m is None else m for w, m in zip(weights, masks)]
    keep = None
    if mode == "timp":
        tree = spanning_tree_weights(model, conv=conv, trees=trees)
        keep = [tree[n] for n, _ in layers]
    new = pruning_masks(weights, sparsity=sparsity, masks=current, keep=keep, scope=scope)
    return {n: m for (n, _), m in zip(layers, new)}


def apply_masks(model: Any, masks: dict[str, Any]) -> None:
    """Install masks with ``torch.nn.utils.prune.custom_from_mask`` (combined with any earlier mask)."""
    from torch.nn.utils import prune

    layers = dict(prunable_layers(model))
    unknown = sorted(set(masks) - set(layers))
    if unknown:
        raise V.TopodataInputError(f"masks name layers the model does not have: {unknown}")
    for name, mask in masks.items():
        module = layers[name]
        prune.custom_from_mask(module, "weight", mask.to(module.weight.device))


def prune_step(
    model: Any, *, sparsity: float, mode: str = "imp", scope: str = "global", conv: str = "aggregate"
) -> dict[str, Any]:
    """One pruning step in place: :func:`next_masks` then :func:`apply_masks`; returns the masks."""
    masks = next_masks(model, sparsity=sparsity, mode=mode, scope=scope, conv=conv)
    apply_masks(model, masks)
    return masks


class WeightSnapshot:
    """``fit`` callback that copies the model's state after ``step`` optimiser steps.

    ``step=0`` takes the copy at construction (the initialisation), since ``fit`` calls
    ``on_batch`` only after an optimiser step. The copy is on the CPU in ``state_``.
    """

    def __init__(self, model: Any, step: int = 0):
        V.check_scalar(step, "rewind_step", numbers.Integral, min_val=0)
        self.model, self.step = model, int(step)
        self.state_: dict[str, Any] | None = _cpu_state(model) if self.step == 0 else None

    def on_batch(self, *, epoch: int, step: int, **_: Any) -> None:
        if step + 1 == self.step:  # fit's ``step`` counts from 0 and is passed after the update
            self.state_ = _cpu_state(self.model)


def _cpu_state(model: Any) -> dict[str, Any]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def rewind(model: Any, state: dict[str, Any]) -> None:
    """Load a snapshot of the unpruned model into a pruned one, keeping its masks.

    Every parameter and buffer gets its snapshot value; a pruned layer's ``weight_orig`` gets the
    snapshot's ``weight`` and its ``weight_mask`` is left as it is.
    """
    pruned = {f"{n}.weight_orig" if n else "weight_orig": f"{n}.weight" if n else "weight"
              for n, m in prunable_layers(model) if hasattr(m, "weight_orig")}
    current = model.state_dict()
    new = {}
    for key, value in current.items():
        if key.endswith("weight_mask") and key[: -len("_mask")] + "_orig" in pruned:
            new[key] = value
            continue
        src = pruned.get(key, key)
        if src not in state:
            raise V.TopodataInputError(
                f"snapshot has no entry {src!r}; it must be a state dict of the same (unpruned) model"
            )
        new[key] = state[src]
    model.load_state_dict(new)


# ----------------------------------------------------------------------------- the driver
@dataclass
class PruningRun:
    """Per-round record of an IMP / T-IMP run.

    Round 0 is the dense network. Each later round's ``tree_kept`` is the fraction of the trained
    network's maximum-spanning-tree edges that round's mask keeps (before retraining); its
    accuracy, neural persistence and ``overlap`` (fraction of each layer's tree among its top-alpha
    weights, :func:`top_weight_tree_overlap`) are those of the retrained pruned network.
    """

    rounds: list[dict[str, Any]]
    layer_names: list[str]
    params: dict[str, Any]
    model: Any = field(repr=False, default=None)

    def columns(self) -> list[str]:
        base = ["round", "target_sparsity", "sparsity", "n_kept", "n_weights", "test_accuracy",
                "test_loss", "np_mean", "np_total", "tree_kept", "seconds"]
        per = [f"{kind}.{n}" for kind in ("np_norm", "tree_kept", "overlap", "kept") for n in self.layer_names]
        return base + per

    def to_csv(self) -> str:
        cols = self.columns()
        lines = [",".join(cols)]
        for row in self.rounds:
            lines.append(",".join(_fmt(row.get(c, "")) for c in cols))
        return "\n".join(lines) + "\n"

    def plot_png(self) -> bytes:
        """Accuracy and neural persistence against sparsity, as PNG bytes."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        s = np.array([r["sparsity"] for r in self.rounds])
        remaining = 100 * (1 - s)
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
        a.plot(remaining, [100 * r["test_accuracy"] for r in self.rounds], "o-")
        a.set_ylabel("test accuracy (%)")
        for n in self.layer_names:
            b.plot(remaining, [r[f"np_norm.{n}"] for r in self.rounds], ".-", label=n)
        b.plot(remaining, [r["np_mean"] for r in self.rounds], "k-", lw=2, label="mean")
        b.set_ylabel("normalised neural persistence")
        b.legend(fontsize=7)
        for ax in (a, b):
            ax.set_xscale("log")
            ax.invert_xaxis()
            ax.set_xlabel("weights remaining (%)")
            ax.grid(alpha=0.3)
        fig.suptitle(f"{self.params.get('mode', '').upper()} ({self.params.get('scope')} threshold)")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        return buf.getvalue()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else str(v)
    return str(v)


def _record(model, *, round_, target, x_test, y_test, p, normalization, conv, retention, device,
            seconds) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One round's row, and the trees' weight indices of the trained weights (the next round's)."""
    from ..nn.loop import evaluate

    layers = prunable_layers(model)
    n_w = sum(int(m.weight.numel()) for _, m in layers)
    kept = {n: int(m.weight_mask.sum()) if hasattr(m, "weight_mask") else int(m.weight.numel())
            for n, m in layers}
    ev = evaluate(model, x_test, y_test, device=device)
    # One set of graphs and trees for this weight state serves NP and the overlap.
    graphs = model_graphs(model, conv=conv)
    res = graphs_persistence(graphs, p=p, normalization=normalization, conv=conv)
    overlap = {g.name: tree_overlap(g, layer.edge_ids) for g, layer in zip(graphs, res.layers)}
    tree_sizes = {layer.name: len(layer.weight_index) for layer in res.layers}
    row = {
        "round": round_, "target_sparsity": target, "n_weights": n_w, "n_kept": sum(kept.values()),
        "sparsity": 1.0 - sum(kept.values()) / n_w, "test_accuracy": ev["accuracy"],
        "test_loss": ev["loss"], "np_mean": res.mean_normalized, "np_total": res.total,
        "tree_kept": sum(retention[n] * tree_sizes[n] for n in tree_sizes) / sum(tree_sizes.values()),
        "seconds": seconds,
    }
    for layer in res.layers:
        row[f"np_norm.{layer.name}"] = layer.np_normalized
        row[f"tree_kept.{layer.name}"] = retention[layer.name]
        row[f"overlap.{layer.name}"] = overlap[layer.name]
        row[f"kept.{layer.name}"] = kept[layer.name]
    return row, {layer.name: layer.weight_index for layer in res.layers}


def iterative_pruning(
    model: Any,
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    *,
    target_sparsity: float,
    rounds: int,
    mode: str = "imp",
    scope: str = "global",
    epochs: int = 2,
    rewind_step: int = 0,
    conv: str = "aggregate",
    p: float = 2.0,
    normalization: str = "global",
    random_state: Any = 0,
    fit_params: dict[str, Any] | None = None,
    device: str = "auto",
    progress: bool = False,
) -> PruningRun:
    """Lottery-ticket IMP with weight rewinding, or T-IMP, on a freshly initialised model.

    Parameters
    ----------
    model : torch.nn.Module
        Freshly initialised network (e.g. ``topodata.nn.build_model``); trained and pruned in
        place.
    x_train, y_train, x_test, y_test : arrays
        Training and test split (``topodata.data.Dataset`` arrays).
    target_sparsity : float in (0, 1)
        Fraction of the prunable weights removed after the last round (exactly; see the module
        docstring for the rounding per ``scope``).
    rounds : int >= 1
        Pruning rounds; each removes the same fraction of the remaining weights.
    mode : {'imp', 'timp'}, default='imp'
        Plain magnitude pruning, or keep each layer's maximum spanning tree first.
    scope : {'global', 'layer'}, default='global'
        One magnitude threshold for the whole network, or one per layer.
    epochs : int, default=2
        Epochs of every (re)training, passed to ``topodata.nn.fit``.
    rewind_step : int, default=0
        Survivors are reset to their values after this many optimiser steps of the first
        training (0 = initialisation, the original lottery-ticket procedure).
    conv : str, default='aggregate'
        Layer graph of convolutions for the spanning tree and NP (:mod:`topodata.weights.graphs`).
    p, normalization : float, str
        Neural persistence settings recorded each round (:func:`neural_persistence`).
    random_state : None, int or numpy Generator, default=0
        Source of each training's seed.
    fit_params : dict, optional
        Extra keyword arguments for ``fit`` (``batch_size``, ``lr``, ``schedule``, ...).
    device, progress
        Passed to ``fit`` / ``evaluate``.

    Returns
    -------
    PruningRun
        ``rounds`` + 1 records (round 0 = dense) and the final pruned model.

    Raises
    ------
    TopodataInputError
        Bad options, or ``rewind_step`` beyond the first training's steps.
    """
    from ..nn.loop import fit

    target = _check_sparsity(target_sparsity, "target_sparsity", allow_zero=False)
    schedule = sparsity_schedule(target, rounds)
    V.check_options(mode, "mode", MODES)
    V.check_options(scope, "scope", SCOPES)
    V.check_options(conv, "conv", CONV_GRAPHS)
    V.check_options(normalization, "normalization", NORMALIZATIONS)
    p = check_p(p)
    V.check_scalar(epochs, "epochs", numbers.Integral, min_val=1)
    V.check_scalar(rewind_step, "rewind_step", numbers.Integral, min_val=0)
    fit_params = dict(fit_params or {})
    for key in ("epochs", "steps", "random_state", "callbacks", "device", "progress"):
        if key in fit_params:
            raise V.TopodataInputError(f"fit_params may not set {key!r}; it is an argument of iterative_pruning")
    prunable_layers(model)
    n_train = len(x_train)
    steps_per_epoch = math.ceil(n_train / int(fit_params.get("batch_size", 128)))
    if rewind_step > epochs * steps_per_epoch:
        raise V.TopodataInputError(
            f"rewind_step={rewind_step} is beyond the {epochs * steps_per_epoch} steps of one training "
            f"({epochs} epochs x {steps_per_epoch} steps); pick a smaller rewind_step"
        )
    rng = V.check_random_state(random_state)
    common = dict(epochs=int(epochs), device=device, progress=progress, **fit_params)
    rec = dict(x_test=x_test, y_test=y_test, p=p, normalization=normalization, conv=conv, device=device)

    t0 = time.perf_counter()
    snap = WeightSnapshot(model, rewind_step)
    fit(model, x_train, y_train, random_state=V.derive_seed(rng), callbacks=[snap], **common)
    ones = {n: 1.0 for n, _ in prunable_layers(model)}
    row, trees = _record(model, round_=0, target=0.0, retention=ones, seconds=time.perf_counter() - t0, **rec)
    rows = [row]
    for r, s in enumerate(schedule, start=1):
        # One graph and one tree per layer and weight state: ``trees`` come from the last record
        # (NP's trees of the trained weights) and serve this round's T-IMP masks and retention.
        t0 = time.perf_counter()
        masks = next_masks(model, sparsity=float(s), mode=mode, scope=scope, conv=conv, trees=trees)
        # how much of the trained network's tree this round's mask keeps (before retraining)
        retention = spanning_tree_retention(model, masks, conv=conv, trees=trees)
        apply_masks(model, masks)
        rewind(model, snap.state_)
        fit(model, x_train, y_train, random_state=V.derive_seed(rng), **common)
        row, trees = _record(model, round_=r, target=float(s), retention=retention,
                             seconds=time.perf_counter() - t0, **rec)
        rows.append(row)
    params = {"target_sparsity": target, "rounds": int(rounds), "mode": mode, "scope": scope,
              "epochs": int(epochs), "rewind_step": int(rewind_step), "conv": conv, "p": p,
              "normalization": normalization, "fit_params": fit_params,
              "schedule": [float(x) for x in schedule]}
    return PruningRun(rows, [n for n, _ in prunable_layers(model)], params, model)
