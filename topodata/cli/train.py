"""``topodata train``: train a fresh model on a kept subset and evaluate it on the test split.

One call of :func:`topodata.train.subset.train_on_subset`: a fixed step budget whatever the subset
size, SGD with Nesterov momentum and a one-cycle schedule, the dataset's standard augmentation,
seeded, on ``cuda`` when present. Without ``--indices`` it trains on the whole training split (the
full-data reference). Writes ``metrics.json`` and ``model.pt`` (a ``state_dict``) atomically.
"""

from __future__ import annotations

import io
from pathlib import Path


def add_parser(subparsers, help: str):
    from topodata.train.subset import DEFAULT_STEPS

    p = subparsers.add_parser(
        "train", help=help,
        description=help + ". A fixed step budget whatever the subset size, SGD with Nesterov momentum and a "
                    "one-cycle schedule, the dataset's standard augmentation, seeded, on cuda when present. "
                    "Without --indices it trains on the whole training split (the full-data reference). "
                    "Writes metrics.json and model.pt (a state_dict) atomically; bad input writes nothing.",
    )
    p.add_argument("--dataset", required=True, metavar="SPEC",
                   help="dataset spec: digits, mnist, fashion-mnist, cifar10, npz:PATH, ...")
    p.add_argument("--indices", metavar="PATH",
                   help="kept indices: a `topodata select` output folder, its indices.npy, or a .txt with one "
                        "index per line (default: the whole training split)")
    p.add_argument("--model", default="smallcnn", help="mlp, smallcnn, resnet18 or lenet300100 (default: smallcnn)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the data order (default: 0)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                   help=f"optimiser steps, the same for every subset size (default: {DEFAULT_STEPS})")
    p.add_argument("--lr", type=float, default=0.05, help="peak learning rate of the one-cycle schedule (default: 0.05)")
    p.add_argument("--batch-size", type=int, default=128, help="minibatch size (default: 128)")
    p.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda, cuda:1, ... (default: auto)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.add_argument("--out", required=True, metavar="RUN", help="folder for metrics.json and model.pt")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    import torch

    from topodata._io import atomic_write_files, json_bytes
    from topodata._meta import versions
    from topodata._threads import cpu_kernels
    from topodata.train.subset import train_on_subset

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {str(out)!r} exists and is not a folder")
    if args.indices is not None and not Path(args.indices).exists():
        raise FileNotFoundError(f"--indices {args.indices!r} not found")
    metrics, model = train_on_subset(
        args.dataset, args.indices, model=args.model, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, random_state=args.seed, device=args.device, progress=args.progress, return_model=True,
    )
    metrics["indices"] = None if args.indices is None else str(Path(args.indices).resolve())
    metrics["versions"] = {**versions(), "cpu": cpu_kernels()}
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    atomic_write_files(out, {
        "metrics.json": json_bytes(metrics, default=str),
        "model.pt": buf.getvalue(),
    })
    print(f"test accuracy {100 * metrics['accuracy']:.2f}% (loss {metrics['loss']:.4f}) after {metrics['steps']} "
          f"steps on {metrics['n_train']} samples in {metrics['seconds']:.1f} s -> {out}")
    return 0
