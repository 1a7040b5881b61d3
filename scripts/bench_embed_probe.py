"""Embed Fashion-MNIST with the small CNN (full proxy and a 10% proxy) and probe the features.

For each proxy fraction: ``topodata.embed.embed_cached`` with the library defaults (the same call
as ``embed_cached("fashion-mnist", model="smallcnn")`` in the other benchmarks, so running this
warms their cache), then a standardised logistic regression fitted on the 60,000 training
features and scored on the 10,000 test features. Prints one table with the time of each stage
(load, proxy training, feature extraction, probe) and the accuracies; target: probe >= 85%.

Stage times of a cache hit are those recorded when the entry was computed (``cached = yes``);
pass ``--cache-dir`` with an empty directory to measure afresh.

Usage::

    python scripts/bench_embed_probe.py [--threads 2] [--out runs/bench_embed_probe]

Writes ``results.json`` and a copy of this script to ``--out`` (airbench style).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path

hyp = {
    "dataset": "fashion-mnist",
    "model": "smallcnn",
    "proxy_fractions": [1.0, 0.1],  # fraction of the training split the proxy trains on
    "seed": 0,  # embed_cached's default random_state
    "threads": 2,  # torch intra-op threads (the machine has 2 cores)
    "probe_c": 1.0,  # inverse L2 strength of the logistic probe
    "probe_max_iter": 300,  # lbfgs iterations of the probe
}


def probe(features, labels, features_test, labels_test, *, c: float, max_iter: int) -> tuple[float, float]:
    """Test accuracy of a standardised multinomial logistic regression, and its fit time."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    scaler = StandardScaler().fit(features)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(C=c, max_iter=max_iter).fit(scaler.transform(features), labels)
    return float(clf.score(scaler.transform(features_test), labels_test)), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=hyp["threads"])
    p.add_argument("--cache-dir", default=None, help="embedding cache (default: the user cache)")
    p.add_argument("--out", type=Path, default=Path("runs/bench_embed_probe"))
    args = p.parse_args(argv)
    hyp["threads"] = args.threads

    import torch

    torch.set_num_threads(args.threads)
    from topodata.embed import embed_cached

    rows = []
    for fraction in hyp["proxy_fractions"]:
        t0 = time.perf_counter()
        res = embed_cached(hyp["dataset"], model=hyp["model"], proxy_fraction=fraction, random_state=hyp["seed"],
                           cache_dir=args.cache_dir)
        wall = time.perf_counter() - t0
        m = res.manifest
        cached = res.from_cache
        acc, t_probe = probe(res.features, res.labels, res.features_test, res.labels_test,
                             c=hyp["probe_c"], max_iter=hyp["probe_max_iter"])
        rows.append({
            "proxy": fraction, "n_proxy": m["n_proxy"], "epochs": m["epochs"], "steps": m["steps"],
            "cached": "yes" if cached else "no", "threads": m.get("torch_threads"),
            "load_s": m["timings_s"]["load"], "train_s": m["timings_s"]["train"],
            "extract_s": m["timings_s"]["extract"], "probe_s": round(t_probe, 1),
            "proxy_test_acc": round(m["proxy_test_accuracy"], 4), "probe_test_acc": round(acc, 4),
        })
        print(f"proxy {fraction}: done ({'cached' if cached else f'{wall:.0f} s'})", file=sys.stderr)

    keys = list(rows[0])
    width = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in keys}
    print(f"\n## {hyp['dataset']} + {hyp['model']}: proxy training, features, logistic probe "
          f"({platform.processor() or platform.machine()}, torch {torch.__version__})")
    print("| " + " | ".join(k.ljust(width[k]) for k in keys) + " |")
    print("|" + "|".join("-" * (width[k] + 2) for k in keys) + "|")
    for r in rows:
        print("| " + " | ".join(str(r[k]).ljust(width[k]) for k in keys) + " |")
    target = all(r["probe_test_acc"] >= 0.85 for r in rows)
    print(f"\nprobe >= 85% on every row: {'yes' if target else 'NO'}")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"hyp": hyp, "rows": rows}, indent=2) + "\n")
    shutil.copy(__file__, args.out / Path(__file__).name)
    return 0 if target else 1


if __name__ == "__main__":
    sys.exit(main())
