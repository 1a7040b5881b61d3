"""TopoPrune variants judged by training, under the protocol of ``pipelines/fashion_mnist_long.toml``.

The benchmark runner compares *methods*; this compares settings of one method (``method_params``) on the
same cached small-CNN embedding, the same subset trainer and step budget, and the same seeds, so its
numbers sit beside that pipeline's table (its ``topoprune`` and ``random`` rows are the reference).
Default variant: TopoPrune without its label-consistency term (``label_weight=0``, topology alone); pass
more with ``--variants "label_weight=0;k_local=32,steps=5;beta=0.3"``. Keys of ``select`` itself (``beta``,
``strategy``, ``n_strata``, ``sampler``, ``class_balance``) go to it, the others to TopoPrune; the scores of one
seed and one set of TopoPrune options are computed once and reused by every selection setting.
The selection step repeats ``topodata.select``'s glue (class budgets, auto β, coverage) on the cached
scores with a fresh ``default_rng(seed)``, so a variant equal to the defaults draws other samples than
``select`` itself (whose generator the method has already advanced): compare variants with each other and
with the pipeline's rows as a mean over seeds, not seed by seed.

    python scripts/bench_topoprune_variants.py --out runs/topoprune_variants

Prints a table (mean ± std over seeds) and writes ``results.json`` and a copy of this script to ``--out``.
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
from _bench import parse_hyp

hyp = {
    "dataset": "fashion-mnist",
    "rate": 0.9,  # fraction removed
    "seeds": 3,  # selection and training seeds 0..seeds-1
    "steps": 2000,  # as pipelines/fashion_mnist_long.toml
    "batch_size": 128,
    "lr": 0.05,  # one-cycle peak
    "variants": "label_weight=0",  # ';'-separated, each 'k=v,k=v' of TopoPruneConfig
}


SELECT_KEYS = ("beta", "strategy", "n_strata", "sampler", "class_balance")


def _parse_variant(text: str) -> dict:
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        key, value = item.split("=", 1)
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    h, args = parse_hyp(hyp, __doc__, argv)

    import topodata
    from topodata.data import load_dataset
    from topodata.embed import embed_cached
    from topodata.select import auto_beta, class_budgets, n_kept, select_from_scores
    from topodata.train.subset import train_on_subset

    emb = embed_cached(h["dataset"], model="smallcnn", progress=False)
    data = load_dataset(h["dataset"], progress=False)
    rows = []
    scores: dict[tuple, np.ndarray] = {}
    for text in h["variants"].split(";"):
        params = _parse_variant(text)
        sel = {k: params.pop(k) for k in list(params) if k in SELECT_KEYS}
        accs, secs = [], []
        for seed in range(h["seeds"]):
            t = time.perf_counter()
            key = (seed, tuple(sorted(params.items())))
            if key not in scores:
                scores[key] = topodata.select(emb.features, emb.labels, rate=h["rate"], method="topoprune",
                                              random_state=seed, method_params=params).scores
            budgets = class_budgets(emb.labels, n_kept(len(emb.labels), h["rate"]),
                                    balance=sel.get("class_balance", "proportional"))
            kept = select_from_scores(
                scores[key], emb.labels, budgets, strategy=sel.get("strategy", "coverage"),
                beta=float(sel.get("beta", auto_beta(h["rate"]))), n_strata=int(sel.get("n_strata", 50)),
                sampler=sel.get("sampler", "key"), rng=np.random.default_rng(seed),
            )
            m = train_on_subset(data, kept, model="smallcnn", steps=h["steps"], batch_size=h["batch_size"],
                                lr=h["lr"], random_state=seed, progress=False)
            accs.append(m["accuracy"])
            secs.append(time.perf_counter() - t)
            print(f"{text} seed {seed}: {m['accuracy']:.4f} ({secs[-1]:.0f} s)", flush=True)
        rows.append({"variant": text, "mean": float(np.mean(accs)), "std": float(np.std(accs)),
                     "per_seed": accs, "seconds": float(np.sum(secs))})
    print(f"\n## TopoPrune variants, {h['dataset']} rate {h['rate']}, smallcnn {h['steps']} steps, "
          f"{h['seeds']} seeds (test accuracy)")
    print("variant | mean ± std | per seed")
    print("---|---|---")
    for r in rows:
        print(f"{r['variant']} | {100 * r['mean']:.2f} ± {100 * r['std']:.2f} | "
              + " ".join(f"{100 * a:.2f}" for a in r["per_seed"]))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps({"hyp": h, "rows": rows}, indent=2) + "\n")
        shutil.copy(__file__, args.out / "bench_topoprune_variants.py")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
