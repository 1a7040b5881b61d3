"""Benchmark: wall time of every baseline selection method at the Fashion-MNIST scale.

Times ``topodata.select(x, y, rate, method=m)`` for moderate, kcenter, herding, el2n, forgetting,
aum, ccs and d2 on ``n × d`` random Gaussian features with ``n_classes`` equal classes (60,000 ×
128, 10 classes by default: Fashion-MNIST's training split with a 128-d embedding). The methods
that read training dynamics are timed twice: with a recorded ``TrainingDynamics`` (random but
valid, ``dyn_epochs`` epochs) and with ``dynamics=None``, where they train the linear-head
fallback (``topodata.train.dynamics.dynamics_from_features``, ``fallback_epochs`` epochs); the
difference is the fallback's cost. Random features are the worst case for none of these methods
(their cost depends on n, d, the budget and the class sizes only), so the times carry over.

Usage::

    python scripts/bench_baselines.py                       # 60,000 × 128, rate 0.9
    python scripts/bench_baselines.py --n 10000 --threads 2 --out runs/bench_baselines

Prints a table; with ``--out`` also writes ``results.json`` (with this script's source, airbench
style) and ``times.png``.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
from _bench import hyp_parser

# Every knob of the benchmark, with units (airbench style; override with the flags below).
hyp = {
    "n": 60_000,  # training samples
    "d": 128,  # feature dimension
    "n_classes": 10,  # equal-sized classes
    "rate": 0.9,  # fraction removed
    "dyn_epochs": 20,  # epochs in the synthetic recorded dynamics
    "fallback_epochs": 20,  # epochs of the linear-head fallback (dynamics=None)
    "threads": 1,  # torch intra-op threads
    "seed": 0,  # selection seed
}

METHODS = ["moderate", "kcenter", "herding", "el2n", "forgetting", "aum", "ccs", "d2"]
READS_DYNAMICS = {"el2n", "forgetting", "aum", "ccs", "d2"}


def main(argv: list[str] | None = None) -> int:
    parser = hyp_parser(hyp, __doc__)
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json and times.png")
    args = parser.parse_args(argv)
    h = {k: getattr(args, k) for k in hyp}

    import torch

    from topodata.select import select
    from topodata.train.dynamics import TrainingDynamics

    torch.set_num_threads(h["threads"])
    rng = np.random.default_rng(h["seed"])
    x = rng.normal(size=(h["n"], h["d"]))
    y = np.repeat(np.arange(h["n_classes"]), -(-h["n"] // h["n_classes"]))[: h["n"]]
    margin = rng.normal(size=(h["dyn_epochs"], h["n"])).astype(np.float32)
    dyn = TrainingDynamics(margin > 0, margin, rng.random(margin.shape, dtype=np.float32))

    rows = []
    for m in args.methods:
        reads = m in READS_DYNAMICS
        variants = [("recorded", dyn), ("fallback", None)] if reads else [("-", None)]
        for label, d in variants:
            params = {"fallback_epochs": h["fallback_epochs"]} if reads else {}
            t = time.perf_counter()
            res = select(x, y, rate=h["rate"], method=m, random_state=h["seed"], dynamics=d,
                         method_params=params)
            wall = time.perf_counter() - t
            stages = {k.split(".", 1)[1]: round(v, 3) for k, v in res.manifest["timings_s"].items() if "." in k}
            rows.append({"method": m, "dynamics": label, "seconds": wall, "n_kept": int(res.indices.size),
                         "stages": stages})
            print(f"{m:<11} {label:<9} {wall:8.2f} s   kept {res.indices.size}   {stages}", flush=True)

    print()
    print(f"n={h['n']} d={h['d']} classes={h['n_classes']} rate={h['rate']} threads={h['threads']} "
          f"({platform.processor() or platform.machine()}, torch {torch.__version__})")
    print(f"{'method':<11} {'dynamics':<9} {'seconds':>8}")
    for r in rows:
        print(f"{r['method']:<11} {r['dynamics']:<9} {r['seconds']:8.2f}")

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(
            {"hyp": h, "rows": rows, "platform": platform.platform(), "torch": torch.__version__,
             "source": Path(__file__).read_text()}, indent=2))
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        labels = [r["method"] + ("" if r["dynamics"] == "-" else f" ({r['dynamics']})") for r in rows]
        fig, ax = plt.subplots(figsize=(6, 0.35 * len(rows) + 1))
        ax.barh(labels[::-1], [r["seconds"] for r in rows][::-1])
        ax.set_xlabel("seconds")
        ax.set_title(f"select(rate={h['rate']}) on {h['n']}×{h['d']}, {h['threads']} thread(s)")
        fig.tight_layout()
        fig.savefig(args.out / "times.png", dpi=120)
        print(f"wrote {args.out / 'results.json'} and {args.out / 'times.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
