"""The steps of ``scripts/gpu_check.sh``: one GPU run that checks every CUDA path of topodata.

Each step is one call, ``python scripts/gpu_check.py STEP``, so the shell script can give each its own
time limit; each writes ``$OUT/<step>.json`` (what it measured, and ``ok``). Steps:

- ``knn_h0``: kNN on ``cuda`` (torch brute force) against CPU FAISS exact search, and batched H0
  (``h0_point_cloud`` on cuda tensors) against the numpy path, on the same inputs;
- ``embed``: the Fashion-MNIST proxy (small CNN) trained and its features extracted on ``cuda``;
- ``select``: ``topodata.select`` (TopoPrune, rate 0.9) on 1,280,000 x 512 clustered features
  (1,000 classes), timed per stage;
- ``resnet``: the ResNet-18 row and column of ``pipelines/fashion_mnist_transfer.toml`` (seed 0),
  as derived pipeline files run by ``topodata bench``.

``GPU_CHECK_TINY=1`` runs the same steps at tiny sizes on the CPU (digits for the ResNet cells):
the rehearsal that makes the GPU run succeed first time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TINY = os.environ.get("GPU_CHECK_TINY", "0") == "1"
OUT = Path(os.environ.get("OUT") or "runs/gpu_check")
REPO = Path(__file__).resolve().parents[1]

# Sizes of each step (airbench habit: every knob in one place), full run and tiny rehearsal.
hyp = {
    "knn_rows": 200_000 if not TINY else 2_000, "knn_dim": 128, "knn_k": 16,
    "h0_clouds": 100_000 if not TINY else 500, "h0_points": 17, "h0_dim": 8,
    "select_rows": 1_280_000 if not TINY else 6_000, "select_dim": 512 if not TINY else 32,
    "select_classes": 1_000 if not TINY else 10, "rate": 0.9,
    "embed_spec": "fashion-mnist" if not TINY else "digits", "embed_epochs": None if not TINY else 1,
    "bench_seeds": [0], "bench_steps": None if not TINY else 3,
}


def _device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if not TINY:
        raise SystemExit("no CUDA device: run with GPU_CHECK_TINY=1 for the CPU rehearsal")
    return "cpu"


def _write(step: str, record: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    record = {"step": step, "tiny": TINY, **record}
    (OUT / f"{step}.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    print(json.dumps(record, default=str)[:2000], flush=True)


def step_knn_h0() -> None:
    import torch

    from topodata.neighbors import knn
    from topodata.topology import h0_point_cloud

    dev = _device()
    rng = np.random.default_rng(0)
    n, d, k = hyp["knn_rows"], hyp["knn_dim"], hyp["knn_k"]
    centers = rng.normal(size=(100, d)).astype(np.float32)
    x = centers[rng.integers(0, 100, n)] + 0.3 * rng.standard_normal((n, d), dtype=np.float32)
    t = time.perf_counter()
    idx_c, d_c = knn(x, k, device=dev)
    t_dev = time.perf_counter() - t
    t = time.perf_counter()
    idx_cpu, d_cpu = knn(x, k, method="exact", device="cpu")
    t_cpu = time.perf_counter() - t
    same_rows = float(np.mean([set(a) == set(b) for a, b in zip(idx_c, idx_cpu)]))
    knn_rec = {"rows": n, "dim": d, "k": k, "device": dev, "device_s": t_dev, "cpu_faiss_exact_s": t_cpu,
               "rows_with_same_neighbour_set": same_rows, "max_abs_dist_diff": float(np.abs(d_c - d_cpu).max())}

    clouds = rng.normal(size=(hyp["h0_clouds"], hyp["h0_points"], hyp["h0_dim"])).astype(np.float32)
    t = time.perf_counter()
    h_np = h0_point_cloud(clouds)
    t_np = time.perf_counter() - t
    xt = torch.from_numpy(clouds).to(dev)
    h0_point_cloud(xt[:10])  # warm-up (CUDA context, kernels)
    if dev == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    h_t = h0_point_cloud(xt, batch_size=None if dev == "cuda" else 1024)
    if dev == "cuda":
        torch.cuda.synchronize()
    t_t = time.perf_counter() - t
    deaths_t = h_t.deaths.cpu().numpy()
    h0_rec = {"clouds": clouds.shape[0], "device": dev, "device_s": t_t, "numpy_s": t_np,
              "max_abs_death_diff": float(np.abs(deaths_t - h_np.deaths).max()),
              "edges_equal_fraction": float((h_t.edges.cpu().numpy() == h_np.edges).all(axis=(1, 2)).mean())}
    ok = same_rows >= 0.999 and knn_rec["max_abs_dist_diff"] < 1e-3 and h0_rec["max_abs_death_diff"] < 1e-4
    _write("knn_h0", {"ok": bool(ok), "knn": knn_rec, "h0": h0_rec})


def step_embed() -> None:
    from topodata.embed import embed_cached

    dev = _device()
    t = time.perf_counter()
    res = embed_cached(hyp["embed_spec"], model="smallcnn", device=dev, epochs=hyp["embed_epochs"], progress=False)
    wall = time.perf_counter() - t
    m = res.manifest
    _write("embed", {"ok": res.features.shape[0] > 0 and m.get("device") == dev, "device": dev, "wall_s": wall,
                     "features": list(res.features.shape), "proxy_test_accuracy": m.get("proxy_test_accuracy"),
                     "timings_s": m.get("timings_s")})


def step_select() -> None:
    import topodata

    dev = _device()
    rng = np.random.default_rng(0)
    n, d, c = hyp["select_rows"], hyp["select_dim"], hyp["select_classes"]
    y = np.repeat(np.arange(c), n // c)
    centers = rng.normal(size=(c, d)).astype(np.float32)
    x = np.empty((y.size, d), dtype=np.float32)
    for s in range(0, y.size, 100_000):  # in blocks: no n x d float64 temporary
        e = min(y.size, s + 100_000)
        x[s:e] = centers[y[s:e]] + 0.7 * rng.standard_normal((e - s, d), dtype=np.float32)
    t = time.perf_counter()
    res = topodata.select(x, y, rate=hyp["rate"], random_state=0)
    wall = time.perf_counter() - t
    import resource

    from topodata._meta import n_kept

    _write("select", {"ok": res.indices.size == n_kept(y.size, hyp["rate"]),
                      "device": dev, "rows": int(y.size), "dim": d, "classes": c, "wall_s": wall,
                      "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                      "timings_s": res.manifest["timings_s"], "threads": res.manifest.get("threads")})


def step_resnet() -> None:
    """The ResNet-18 row (A = resnet18) and column (B = resnet18) of the transfer pipeline, seed 0."""
    import tomllib

    dev = _device()
    src = tomllib.loads((REPO / "pipelines" / "fashion_mnist_transfer.toml").read_text())
    work = OUT / "resnet"
    work.mkdir(parents=True, exist_ok=True)
    records = []
    parts = {"row": (["resnet18"], ["mlp", "smallcnn", "resnet18"]), "column": (["mlp", "smallcnn"], ["resnet18"])}
    for name, (embedders, trainers) in parts.items():
        toml = _derived_toml(src, name, embedders, trainers, dev)
        path = work / f"transfer_{name}.toml"
        path.write_text(toml)
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "topodata", "bench", str(path), "--out", str(work / name),
                            "--no-progress"], capture_output=True, text=True)
        records.append({"part": name, "rc": p.returncode, "wall_s": time.perf_counter() - t,
                        "stderr_tail": p.stderr[-1500:], "results_md": _read(work / name / "results.md")})
    _write("resnet", {"ok": all(r["rc"] == 0 for r in records), "device": dev, "parts": records})


def _derived_toml(src: dict, name: str, embedders: list, trainers: list, dev: str) -> str:
    """A pipeline file: the transfer pipeline restricted to some embedders and trainers (and, tiny, digits)."""
    trainer = dict(src["trainer"], device=dev)
    if hyp["bench_steps"]:
        trainer["steps"] = hyp["bench_steps"]
    emb = dict(src["embedder"])
    lines = [f'name = "{src["name"]}_{name}"', f'description = "gpu_check: {name} of the ResNet-18 transfer cells"',
             f'dataset = "{src["dataset"] if not TINY else "digits"}"',
             f'methods = {json.dumps(src["methods"] if not TINY else ["random", "topoprune"])}',
             f'rates = {json.dumps(src["rates"])}', f'seeds = {json.dumps(hyp["bench_seeds"])}', "",
             "[embedder]"] + [f"{k} = {json.dumps(v)}" for k, v in emb.items()]
    lines += ["[embedder.params]", f'device = "{dev}"'] + ([f"epochs = {hyp['embed_epochs']}"] if TINY else [])
    lines += ["", "[trainer]"] + [f"{k} = {json.dumps(v)}" for k, v in trainer.items()]
    lines += ["", "[transfer]", f"embedders = {json.dumps(embedders)}", f"trainers = {json.dumps(trainers)}", ""]
    return "\n".join(lines)


def _read(path: Path) -> str | None:
    return path.read_text()[-4000:] if path.exists() else None


if __name__ == "__main__":
    steps = {"knn_h0": step_knn_h0, "embed": step_embed, "select": step_select, "resnet": step_resnet}
    if len(sys.argv) != 2 or sys.argv[1] not in steps:
        raise SystemExit(f"usage: python scripts/gpu_check.py {{{','.join(steps)}}}")
    steps[sys.argv[1]]()
