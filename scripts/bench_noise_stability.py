"""Stability of a selection under Gaussian noise on the features, without training.

For each method, noise scale and sampler ('key', the default, and 'draw') select at ``rate`` on the clean
features and on features with noise of σ = scale × (mean per-dimension std) (the bench's
``add_feature_noise``), same seed, and print the Jaccard overlap of the kept indices. Two independent random
subsets of fraction f overlap by about f / (2 − f). Methods that read training dynamics instead of features
(el2n, ccs, forgetting, aum) overlap 1 by construction and are not listed by default.

    python scripts/bench_noise_stability.py --methods topoprune,d2 --scales 0.1,0.25,0.5
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from _bench import parse_hyp

hyp = {
    "dataset": "fashion-mnist",  # cached small-CNN embedding (embed_cached defaults)
    "methods": "moderate,kcenter,d2,topoprune",  # comma-separated
    "samplers": "key,draw",  # comma-separated; only coverage-strategy methods differ between them
    "rate": 0.9,  # fraction removed
    "scales": "0.1,0.25,0.5",  # noise σ in units of the mean per-dimension feature std
    "seed": 0,  # selection seed
}


def main(argv: list[str] | None = None) -> int:
    h, args = parse_hyp(hyp, __doc__, argv)

    from topodata.bench import add_feature_noise, jaccard
    from topodata.embed import embed_cached
    from topodata.select import select

    emb = embed_cached(h["dataset"], model="smallcnn", progress=False)
    scales = [float(s) for s in h["scales"].split(",")]
    # one noise draw per scale, shared by every method and sampler (as the bench does)
    noisy = {s: add_feature_noise(emb.features, s, random_state=h["seed"]) for s in scales}
    rows = []
    for method in h["methods"].split(","):
        for sampler in h["samplers"].split(","):
            t = time.perf_counter()
            clean = select(emb.features, emb.labels, rate=h["rate"], method=method, random_state=h["seed"],
                           sampler=sampler, dynamics=emb.dynamics)
            row = {"method": method, "sampler": sampler}
            for scale in scales:
                kept = select(noisy[scale], emb.labels, rate=h["rate"], method=method, random_state=h["seed"],
                              sampler=sampler, dynamics=emb.dynamics).indices
                row[f"s={scale:g}"] = jaccard(clean.indices, kept)
            row["seconds"] = time.perf_counter() - t
            rows.append(row)
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                  flush=True)
            if clean.manifest["params"].get("sampler") is None:  # not a coverage selection: samplers alike
                break
    keep = 1 - h["rate"]
    print(f"\n## Jaccard overlap with the clean selection, rate {h['rate']}, seed {h['seed']}, {h['dataset']} "
          f"(independent random subsets: {keep / (2 - keep):.3f})")
    cols = ["method", "sampler", *[f"s={s:g}" for s in scales], "seconds"]
    print(" | ".join(cols))
    print("|".join("---" for _ in cols))
    for r in rows:
        print(" | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps({"hyp": h, "rows": rows}, indent=2))
        (args.out / "bench_noise_stability.py").write_text(Path(__file__).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
