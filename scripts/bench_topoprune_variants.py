"""TopoPrune variants judged by training, under the protocol of ``pipelines/fashion_mnist_long.toml``.

The benchmark runner compares *methods*; this compares settings of one method (``method_params``) on the
same cached small-CNN embedding, the same subset trainer and step budget, and the same seeds, so its
numbers sit beside that pipeline's table (its ``topoprune`` and ``random`` rows are the reference).
Default variant: TopoPrune without its label-consistency term (``label_weight=0``, topology alone); pass
more with ``--variants "label_weight=0;k_local=32,steps=5;beta=0.3"``. Keys of ``select`` itself (``beta``,
``strategy``, ``n_strata``, ``sampler``, ``class_balance``, ``dedup``) go to it, the others to TopoPrune
(``true``/``false`` are booleans); ``--model`` picks the proxy and the trained model (default: the dataset's
embedder, an MLP for ``digits``). The scores of one
seed and one set of TopoPrune options are computed once and reused by every selection setting.
The selection step hands the cached scores to ``topodata.select(scores=...)`` with the same seed; that
generator starts fresh, so a variant equal to the defaults draws other samples than ``select`` itself (whose
generator the method has already advanced): compare variants with each other and with the pipeline's rows
as a mean over seeds, not seed by seed.

    python scripts/bench_topoprune_variants.py --out runs/topoprune_variants

``--split val`` is for *choosing* settings: per class the last ``val_per_class`` training samples are held
out, a fresh small-CNN proxy is trained on the rest (the pool), selection runs on the pool's features and
every model is scored on the held-out samples; the test split is never read. ``rate`` is a variant key
too (``"rate=0.7,beta=0.025"``), and ``strategy=random,class_balance=proportional`` is the random baseline
under the same glue (the selection step uses TopoPrune's own class budgets unless a variant names others).

    python scripts/bench_topoprune_variants.py --split val --out runs/topoprune_val \
        --variants "strategy=random,class_balance=proportional;beta=0.05;beta=0.1"

A dataset spec with stress variants (``fashion-mnist+long_tail=100``) under ``--split val``: the validation
samples are held out from the *base* training split first and the variant is applied to the rest, so they are
balanced, clean samples of the base distribution. ``--path select`` runs each seed as ``topodata.select(...,
method='topoprune')`` on the feature arrays with the variant's options: the method's default path, with the
noise vote and ``beta='auto'`` (the ``scores`` path hands ``select`` a fixed ``beta`` and no flagged samples).
It finds near-duplicates in the features; ``topodata select --dataset`` and the bench find them in the pixels of
an image dataset, so their subsets, and accuracies, differ a little from these.

    python scripts/bench_topoprune_variants.py --split val --path select --dataset fashion-mnist+long_tail=100 \
        --val-per-class 1000 --variants "vote_weights=uniform;vote_weights=balanced;strategy=random" \
        --out runs/topoprune_val_lt

Prints a table (mean ± std over seeds) and writes ``results.json`` (after every variant) and a copy of this
script to ``--out``.
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
from _bench import parse_hyp, parse_options

hyp = {
    "dataset": "fashion-mnist",  # dataset name (topodata.data)
    "rate": 0.9,  # fraction removed
    "seeds": 3,  # selection and training seeds 0..seeds-1
    "steps": 2000,  # as pipelines/fashion_mnist_long.toml
    "batch_size": 128,  # training batch size
    "lr": 0.05,  # one-cycle peak
    "variants": "label_weight=0",  # ';'-separated, each 'k=v,k=v' of TopoPruneConfig
    "split": "test",  # 'test': score on the test split; 'val': hold out part of the training split
    "val_per_class": 1000,  # with split=val: the last this many training samples of each class
    "path": "scores",  # 'scores': cached scores, then select(scores=); 'select': select(method='topoprune')
    "model": "",  # proxy and trained model; '' = the dataset's default embedder (smallcnn; mlp for digits)
}


SELECT_KEYS = ("rate", "beta", "strategy", "n_strata", "sampler", "class_balance", "dedup")


def holdout(labels: np.ndarray, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """``(pool, val)`` sorted positions: per class the last ``per_class`` samples (training order) are val."""
    val = np.concatenate([np.flatnonzero(labels == c)[-per_class:] for c in np.unique(labels)])
    mask = np.zeros(labels.shape[0], dtype=bool)
    mask[val] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def _validation_data(h: dict, out):
    """Pool-as-train / val-as-test dataset and the pool features of a proxy trained on the pool only."""
    from dataclasses import replace

    from topodata.data import load_dataset
    from topodata.embed import embed

    from topodata.data.variants import apply_variants, split_variants

    base_spec, mods = split_variants(h["dataset"])
    full = load_dataset(base_spec, progress=False)
    pool, val = holdout(full.y_train, h["val_per_class"])
    data = replace(full, name=f"{full.name}[pool]", x_train=full.x_train[pool], y_train=full.y_train[pool],
                   x_test=full.x_train[val], y_test=full.y_train[val])
    if mods:  # the variant on the pool only: the held-out samples stay clean and balanced
        data = apply_variants(data, f"{data.name}+" + "+".join(f"{k}={v}" for k, v in mods.items()), mods)
    cache = None if out is None else out / f"pool_features_{h['val_per_class']}.npy"
    if cache is not None and cache.is_file():
        return data, np.load(cache)
    emb = embed(data, model=h["model"], random_state=0, progress=False, record_dynamics=False)
    print(f"pool proxy: val accuracy {emb.manifest['proxy_test_accuracy']:.4f}", flush=True)
    if cache is not None:
        out.mkdir(parents=True, exist_ok=True)
        np.save(cache, emb.features)
    return data, emb.features


def main(argv: list[str] | None = None) -> int:
    h, args = parse_hyp(hyp, __doc__, argv)

    import topodata
    from topodata.data import load_dataset
    from topodata.embed import embed_cached
    from topodata.scores import METHODS
    from topodata.select import auto_beta
    from topodata.train.subset import train_on_subset

    from topodata.data.variants import split_variants
    from topodata.pipeline import DEFAULT_EMBEDDER

    h["model"] = h["model"] or DEFAULT_EMBEDDER.get(split_variants(h["dataset"])[0], "smallcnn")
    if h["path"] not in ("scores", "select"):
        raise SystemExit(f"--path must be 'scores' or 'select'; got {h['path']!r}")
    if h["split"] == "val":
        data, features = _validation_data(h, args.out)
    elif h["split"] == "test":
        features = embed_cached(h["dataset"], model=h["model"], progress=False).features
        data = load_dataset(h["dataset"], progress=False)
    else:
        raise SystemExit(f"--split must be 'test' or 'val'; got {h['split']!r}")
    labels = data.y_train
    rows = []
    scores: dict[tuple, np.ndarray] = {}
    for text in h["variants"].split(";"):
        params = parse_options(text)
        sel = {k: params.pop(k) for k in list(params) if k in SELECT_KEYS}
        rate = float(sel.get("rate", h["rate"]))
        accs, secs = [], []
        for seed in range(h["seeds"]):
            t = time.perf_counter()
            if h["path"] == "select":
                strategy_random = sel.get("strategy") == "random"
                kept = topodata.select(features, labels, rate=rate, random_state=seed,
                                       method="random" if strategy_random else "topoprune",
                                       method_params=None if strategy_random else params,
                                       **{k: v for k, v in sel.items()
                                          if k != "rate" and not (k == "strategy" and strategy_random)}).indices
            else:
                key = (seed, tuple(sorted(params.items())))
                if key not in scores:
                    # TopoPrune's scores do not depend on the rate
                    scores[key] = topodata.select(features, labels, rate=rate, method="topoprune",
                                                  random_state=seed, method_params=params).scores
                # TopoPrune's own class budgets unless the variant names others (they read the features)
                balance = sel.get("class_balance", METHODS["topoprune"].class_balance)
                kept = topodata.select(features if balance == "boundary" else None, labels, rate=rate,
                                       scores=scores[key], random_state=seed, class_balance=balance,
                                       beta=sel.get("beta", auto_beta(rate, *METHODS["topoprune"].auto_beta)),
                                       **{k: v for k, v in sel.items()
                                          if k not in ("rate", "beta", "class_balance")}).indices
            m = train_on_subset(data, kept, model=h["model"], steps=h["steps"], batch_size=h["batch_size"],
                                lr=h["lr"], random_state=seed, progress=False)
            accs.append(m["accuracy"])
            secs.append(time.perf_counter() - t)
            print(f"{text} seed {seed}: {m['accuracy']:.4f} ({secs[-1]:.0f} s)", flush=True)
        rows.append({"variant": text, "rate": rate, "mean": float(np.mean(accs)), "std": float(np.std(accs)),
                     "per_seed": accs, "seconds": float(np.sum(secs))})
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "results.json").write_text(json.dumps({"hyp": h, "rows": rows}, indent=2) + "\n")
    print(f"\n## TopoPrune variants, {h['dataset']} rate {h['rate']} unless given, {h['model']} {h['steps']} steps, "
          f"{h['seeds']} seeds ({h['split']} accuracy)")
    print("variant | mean ± std | per seed")
    print("---|---|---")
    for r in rows:
        print(f"{r['variant']} | {100 * r['mean']:.2f} ± {100 * r['std']:.2f} | "
              + " ".join(f"{100 * a:.2f}" for a in r["per_seed"]))
    if args.out is not None:
        shutil.copy(__file__, args.out / "bench_topoprune_variants.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
