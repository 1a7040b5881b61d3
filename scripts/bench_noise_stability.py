"""Stability of a selection under Gaussian noise on the features, without training.

For each sampler ('draw', 'key') select at ``rate`` on the clean features and on features with noise of
σ = scale × (mean per-dimension std) (the bench's ``add_feature_noise``), same seed, and print the Jaccard
overlap of the kept indices. Two independent random subsets of fraction f overlap by about f / (2 − f).

    python scripts/bench_noise_stability.py --method topoprune --scale 0.1
"""

from __future__ import annotations

import json
import time
from pathlib import Path


from _bench import hyp_parser

hyp = {
    "dataset": "fashion-mnist",  # cached small-CNN embedding (embed_cached defaults)
    "method": "topoprune",
    "rate": 0.9,
    "scale": 0.1,  # noise σ in units of the mean per-dimension feature std
    "seed": 0,
}


def main(argv: list[str] | None = None) -> int:
    parser = hyp_parser(hyp, __doc__)
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json")
    args = parser.parse_args(argv)
    h = {k: getattr(args, k) for k in hyp}

    from topodata.bench import add_feature_noise, jaccard
    from topodata.embed import embed_cached
    from topodata.select import select

    emb = embed_cached(h["dataset"], model="smallcnn", progress=False)
    noisy = add_feature_noise(emb.features, h["scale"], random_state=h["seed"])
    rows = []
    for sampler in ("draw", "key"):
        t = time.perf_counter()
        kept = [select(f, emb.labels, rate=h["rate"], method=h["method"], random_state=h["seed"],
                       sampler=sampler, dynamics=emb.dynamics).indices for f in (emb.features, noisy)]
        rows.append({"sampler": sampler, "jaccard": jaccard(*kept), "seconds": time.perf_counter() - t})
    keep = 1 - h["rate"]
    print(f"{h['method']} at rate {h['rate']}, noise scale {h['scale']} on {h['dataset']} "
          f"(independent random subsets: {keep / (2 - keep):.3f})")
    print(f"{'sampler':<8}{'jaccard':>9}{'seconds':>9}")
    for r in rows:
        print(f"{r['sampler']:<8}{r['jaccard']:>9.3f}{r['seconds']:>9.1f}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps({"hyp": h, "rows": rows}, indent=2))
        (args.out / "source.py").write_text(Path(__file__).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
